"""The `[[spike_thresholds]]` part of the configuration document."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from reputation.models import SpikeThreshold
from routing.configdoc import DocumentError, Plan, Section

TYPES: dict[str, type | tuple[type, ...]] = {
    "dimension": str,
    "value": str,
    "enabled": bool,
    "window_minutes": int,
    "sensitivity": (int, float),
    "min_count": int,
    "quiet_minutes": int,
    "days": int,
}
FIELDS = tuple(TYPES)


def wrong_type(key: str, value: Any) -> bool:
    kind = TYPES[key]
    return not isinstance(value, kind) or (kind is not bool and isinstance(value, bool))


def row_data(row: SpikeThreshold) -> dict:
    return {name: getattr(row, name) for name in FIELDS}


class SpikeThresholdSection(Section):
    key = "spike_thresholds"

    def export(self) -> list[dict]:
        return [row_data(row) for row in SpikeThreshold.objects.order_by("dimension", "value")]

    def plan(self, value: Any, *, prune: bool) -> Plan:
        if not isinstance(value, list):
            raise DocumentError(["spike_thresholds: expected an array of tables"])
        wanted = self.parse(value)
        current = {(r.dimension, r.value): r for r in SpikeThreshold.objects.all()}
        plan = Plan()
        for key, data in wanted.items():
            old = current.get(key)
            if old is None or row_data(old) != data:
                plan.changes.append(f"{'~' if old else '+'} spike threshold {describe(key)}")
                plan.actions.append(lambda data=data: store(data))
        if prune:
            for key in sorted(set(current) - set(wanted)):
                plan.changes.append(f"- spike threshold {describe(key)}")
                plan.actions.append(
                    lambda pk=current[key].pk: SpikeThreshold.objects.filter(pk=pk).delete()
                )
        return plan

    def parse(self, value: list) -> dict[tuple[str, str], dict]:
        wanted, problems = {}, []
        for index, entry in enumerate(value):
            where = f"spike_thresholds[{index}]"
            if not isinstance(entry, dict):
                problems.append(f"{where}: expected a table")
                continue
            problems += [f"{where}: unknown key {k!r}" for k in sorted(set(entry) - set(FIELDS))]
            wrong = [
                f"{where}.{k}: wrong type {type(v).__name__}"
                for k, v in entry.items()
                if k in TYPES and wrong_type(k, v)
            ]
            if wrong:
                problems += wrong
                continue
            row = SpikeThreshold(**{k: v for k, v in entry.items() if k in FIELDS})
            try:
                row.full_clean(validate_unique=False, validate_constraints=False)
            except (ValidationError, TypeError, ValueError) as exc:
                details = getattr(exc, "message_dict", {"": [str(exc)]})
                problems += [f"{where}.{f}: {' '.join(m)}" for f, m in details.items()]
                continue
            key = (row.dimension, row.value)
            if key in wanted:
                problems.append(f"{where}: {describe(key)} appears twice")
            wanted[key] = row_data(row)
        if problems:
            raise DocumentError(problems)
        return wanted


def describe(key: tuple[str, str]) -> str:
    dimension, value = key
    return "global" if not dimension else f"{dimension}" + (f"={value}" if value else "")


def store(data: dict) -> None:
    SpikeThreshold.objects.update_or_create(
        dimension=data["dimension"], value=data["value"], defaults=data
    )
