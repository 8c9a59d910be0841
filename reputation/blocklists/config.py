"""The `[[blocklists]]` section of the configuration document (config_export /
config_import): the catalogue, one table per list, keyed by zone.

Access keys are secrets: the export never contains them; an import may set one
(`access_key = "..."`), and a blocklist imported without one keeps the key it has.
`nameservers` is a list in the document (the model keeps it as comma-separated text). A key
the document leaves out takes its default (`ipv4 = true`, no own nameservers, ...).
"""

from __future__ import annotations

from typing import Any

from reputation.blocklists import dnsbl
from reputation.blocklists.catalogue import (
    FIELDS,
    BlocklistState,
    join_servers,
    spec_problems,
    state_of,
)
from reputation.models import Blocklist
from routing.configdoc import DocumentError, Plan, Section

# How an entry's values are typed in the document (the rest are checked by spec_problems).
COUNTS = ("max_in_flight", "max_qps", "max_per_day", "clean_to_close")
FLAGS = ("enabled", "ipv4", "ipv6", "mirror", "bitmask", "requires_key")
TEXTS = ("delist_url", "description")


class BlocklistSection(Section):
    """`[[blocklists]]`: the catalogue, one table per list, keyed by zone."""

    key = "blocklists"

    def export(self) -> list[dict]:
        return [state_of(b).to_toml() for b in Blocklist.objects.order_by("zone")]

    def plan(self, value: Any, *, prune: bool) -> Plan:
        wanted, keys = self.parse(value)
        current = {b.zone: b for b in Blocklist.objects.all()}
        plan = Plan()
        for zone in sorted(set(current) - set(wanted)) if prune else []:
            plan.changes.append(f"- blocklist {zone}")
            plan.actions.append(lambda zone=zone: Blocklist.objects.filter(zone=zone).delete())
        for zone, state in wanted.items():
            old = current.get(zone)
            key = keys.get(zone)
            new_key = key is not None and (old is None or key != old.access_key)
            changes = describe_changes(old and state_of(old), state, new_key)
            if changes:
                plan.changes += changes
                plan.actions.append(lambda s=state, k=key: store(s, k))
        return plan

    def parse(self, value: Any) -> tuple[dict[str, BlocklistState], dict[str, str]]:
        if not isinstance(value, list):
            raise DocumentError(["blocklists: expected an array of tables ([[blocklists]])"])
        wanted, keys, problems = {}, {}, []
        for index, entry in enumerate(value):
            where = f"blocklists[{index}]"
            try:
                state, key = parse_entry(entry, where)
            except DocumentError as exc:
                problems += exc.problems
                continue
            if state.zone in wanted:
                problems.append(f"{where}: blocklist {state.zone!r} appears twice")
            wanted[state.zone] = state
            if key is not None:
                keys[state.zone] = key
        if problems:
            raise DocumentError(problems)
        return wanted, keys


def parse_entry(entry: Any, where: str) -> tuple[BlocklistState, str | None]:
    """One [[blocklists]] table as (state, access key or None); raises DocumentError."""
    if not isinstance(entry, dict):
        raise DocumentError([f"{where}: expected a table"])
    known = set(FIELDS) | {"access_key"}
    problems = [f"{where}: unknown key {key!r}" for key in sorted(set(entry) - known)]
    if not isinstance(entry.get("zone"), str):
        problems.append(f"{where}.zone: required, a DNS zone name")
    for name in COUNTS:
        number = entry.get(name, 0)
        if not isinstance(number, int) or isinstance(number, bool) or not 0 <= number < 10**9:
            problems.append(f"{where}.{name}: expected a whole number >= 0")
    problems += [
        f"{where}.{name}: expected true or false"
        for name in FLAGS
        if not isinstance(entry.get(name, False), bool)
    ]
    problems += [
        f"{where}.{name}: expected text"
        for name in (*TEXTS, "kind", "weight")
        if not isinstance(entry.get(name, ""), str)
    ]
    key = entry.get("access_key")
    if key is not None and (not isinstance(key, str) or dnsbl.access_key_problem(key)):
        problems.append(f"{where}.access_key: {dnsbl.access_key_problem('!')}")
    if problems:
        raise DocumentError(problems)
    state = BlocklistState(**{k: v for k, v in entry.items() if k in FIELDS})
    if entry.get("clean_to_close", 2) < 1:
        problems.append(f"{where}.clean_to_close: at least 1")
    problems += [f"{where}.{p}" for p in spec_problems(state)]
    if problems:
        raise DocumentError(problems)
    return state, key


def describe_changes(old: BlocklistState | None, new: BlocklistState, new_key: bool) -> list[str]:
    if old is None:
        return [f"+ blocklist {new.zone} ({new.kind}, {new.weight})"]
    changes = [
        f"~ blocklist {new.zone}: {name} {getattr(old, name)!r} -> {getattr(new, name)!r}"
        for name in FIELDS
        if getattr(old, name) != getattr(new, name)
    ]
    if new_key:
        changes.append(f"~ blocklist {new.zone}: access key set")
    return changes


def store(state: BlocklistState, key: str | None) -> None:
    values = {name: getattr(state, name) for name in FIELDS if name != "zone"}
    values["nameservers"] = join_servers(state.nameservers)
    if key is not None:
        values["access_key"] = key
    Blocklist.objects.update_or_create(zone=state.zone, defaults=values)
