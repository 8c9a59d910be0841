"""The blocklist catalogue as plain data: validation, and the `[[blocklists]]` section of the
configuration document (config_export / config_import).

Access keys are secrets: the export never contains them; an import may set one
(`access_key = "..."`), and a blocklist imported without one keeps the key it has.
"""

from __future__ import annotations

import ipaddress
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from reputation import dnsbl
from routing.configdoc import DocumentError, Plan, Section


@dataclass
class BlocklistState:
    zone: str
    kind: str = dnsbl.IP
    weight: str = "minor"
    enabled: bool = True
    ipv6: bool = False
    codes: dict[str, str] = field(default_factory=dict)
    bitmask: bool = False
    error_codes: list[str] = field(default_factory=list)
    not_listing_codes: list[str] = field(default_factory=list)
    delist_url: str = ""
    max_in_flight: int = 20
    max_qps: int = 50
    max_per_day: int = 0
    clean_to_close: int = 2
    requires_key: bool = False
    description: str = ""

    def to_toml(self) -> dict:
        return asdict(self)


FIELDS = {f.name: f for f in fields(BlocklistState)}
COUNTS = ("max_in_flight", "max_qps", "max_per_day", "clean_to_close")
FLAGS = ("enabled", "ipv6", "bitmask", "requires_key")
TEXTS = ("delist_url", "description")


def state_of(blocklist: Any) -> BlocklistState:
    """A BlocklistState from a Blocklist model instance."""
    return BlocklistState(**{name: getattr(blocklist, name) for name in FIELDS})


def _code_problem(code: Any, cidr: bool = False) -> str:
    try:
        parsed = (
            ipaddress.IPv4Network(code, strict=False)
            if cidr and "/" in str(code)
            else ipaddress.IPv4Address(code)
        )
    except (ValueError, TypeError):
        return f"{code!r} is not an IPv4 return code"
    first = parsed.network_address if isinstance(parsed, ipaddress.IPv4Network) else parsed
    return "" if first in dnsbl.LOOPBACK else f"{code} is outside 127.0.0.0/8"


def spec_problems(state: BlocklistState) -> list[str]:
    """Every problem with one blocklist's settings, each naming the field."""
    from reputation.models import ZONE, Blocklist

    problems = []
    if not ZONE.match(state.zone or ""):
        problems.append(f"zone: {state.zone!r} is not a lowercase DNS zone name")
    if state.kind not in Blocklist.Kind.values:
        problems.append(f"kind: expected one of {Blocklist.Kind.values}")
    if state.weight not in Blocklist.Weight.values:
        problems.append(f"weight: expected one of {Blocklist.Weight.values}")
    if not isinstance(state.codes, dict):
        problems.append("codes: expected a table of code = meaning")
    else:
        problems += [f"codes: {p}" for p in map(_code_problem, state.codes) if p]
        problems += [
            f"codes: the meaning of {code} must be text"
            for code, meaning in state.codes.items()
            if not isinstance(meaning, str)
        ]
    for name in ("error_codes", "not_listing_codes"):
        value = getattr(state, name)
        if not isinstance(value, list):
            problems.append(f"{name}: expected a list of codes")
            continue
        problems += [f"{name}: {p}" for p in (_code_problem(c, cidr=True) for c in value) if p]
    if state.kind == dnsbl.DOMAIN and state.ipv6:
        problems.append("ipv6: a domain list answers for names, not addresses")
    return problems


class BlocklistSection(Section):
    """`[[blocklists]]`: the catalogue, one table per list, keyed by zone."""

    key = "blocklists"

    def export(self) -> list[dict]:
        from reputation.models import Blocklist

        return [state_of(b).to_toml() for b in Blocklist.objects.order_by("zone")]

    def plan(self, value: Any, *, prune: bool) -> Plan:
        from reputation.models import Blocklist

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
    from reputation.models import Blocklist

    values = {name: getattr(state, name) for name in FIELDS if name != "zone"}
    if key is not None:
        values["access_key"] = key
    Blocklist.objects.update_or_create(zone=state.zone, defaults=values)
