"""The configuration document: everything an admin configures, as one TOML file.

`config_export` writes it, `config_import` reads it. Each part of the document is a
*section* (pools here; routing policy, blocklists and channels register their own): it
exports its objects as plain TOML data, and on import first *plans* (validates the whole
document and lists the changes, touching nothing), then *applies* the plan in one
transaction. Import of an exported document plans no change.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

import tomli_w
from django.db import transaction
from django.utils import timezone

from routing import pools, scores
from routing.limits import rules as limit_rules
from routing.models import IPRange, Pool, PoolAddress, RoutingPolicy, SenderLimit

SLUG = re.compile(r"^[-a-zA-Z0-9_]{1,64}$")


class DocumentError(ValueError):
    """The document cannot be imported; `problems` lists every reason, each for a person."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass
class Plan:
    changes: list[str] = field(default_factory=list)  # "+ pool x", "~ ...", "- ..."
    actions: list[Any] = field(default_factory=list)  # callables run by apply()


class Section:
    key: str

    def export(self) -> Any:
        raise NotImplementedError

    def plan(self, value: Any, *, prune: bool) -> Plan:
        raise NotImplementedError


SECTIONS: list[Section] = []


def register(section: Section) -> Section:
    SECTIONS.append(section)
    return section


def export_document() -> str:
    data = {}
    for section in SECTIONS:
        data[section.key] = section.export()
    return tomli_w.dumps(data)


def parse_document(text: str) -> dict:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DocumentError([f"not valid TOML: {exc}"]) from None
    known = {section.key for section in SECTIONS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise DocumentError([f"unknown key {key!r} (known: {sorted(known)})" for key in unknown])
    return data


def plan_document(text: str, *, prune: bool = False) -> Plan:
    """Validate the whole document and list its changes; raises DocumentError."""
    data = parse_document(text)
    plan, problems = Plan(), []
    for section in SECTIONS:
        if section.key not in data:
            continue
        try:
            part = section.plan(data[section.key], prune=prune)
        except DocumentError as exc:
            problems += exc.problems
            continue
        plan.changes += part.changes
        plan.actions += part.actions
    if problems:
        raise DocumentError(problems)
    return plan


@transaction.atomic
def apply_plan(plan: Plan, *, record_as: str = "") -> None:
    """Apply every change, and record them as setting changes by `record_as` if given."""
    for action in plan.actions:
        action()
    if record_as:
        from routing.changes import record_plan

        record_plan(plan.changes, username=record_as)


# --- pools -------------------------------------------------------------------------------


@dataclass
class PoolState:
    name: str
    kind: str
    description: str = ""
    take_listed_out: bool = True
    ranges: list[str] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)  # explicit, inside larger IPv6 ranges
    out_of_rotation: dict[str, str] = field(default_factory=dict)
    in_rotation: list[str] = field(default_factory=list)  # overrides of a default-out address
    hostnames: dict[str, str] = field(default_factory=dict)  # address -> HELO/rDNS name

    def to_toml(self) -> dict:
        data = {
            "name": self.name,
            "kind": self.kind,
            "description": self.description,
            "take_listed_out": self.take_listed_out,
            "ranges": self.ranges,
        }
        if self.addresses:
            data["addresses"] = self.addresses
        if self.out_of_rotation:
            data["out_of_rotation"] = self.out_of_rotation
        if self.in_rotation:
            data["in_rotation"] = self.in_rotation
        if self.hostnames:
            data["hostnames"] = self.hostnames
        return data


def default_states(ranges: list[str]) -> dict[str, pools.AddressSpec]:
    states = {}
    for cidr in ranges:
        for spec in pools.enumerated(ipaddress.ip_network(cidr)):
            states[spec.address] = spec
    return states


def current_pools() -> dict[str, PoolState]:
    result = {}
    for pool in Pool.objects.prefetch_related("ranges", "addresses").order_by("name"):
        ranges = sorted((r.cidr for r in pool.ranges.all()), key=_range_order)
        defaults = default_states(ranges)
        state = PoolState(pool.name, pool.kind, pool.description, pool.take_listed_out, ranges)
        for address in sorted(pool.addresses.all(), key=lambda a: _range_order(a.address)):
            default = defaults.get(address.address)
            if default is None:
                state.addresses.append(address.address)
            if not address.active and (default is None or default.reason != address.reason):
                state.out_of_rotation[address.address] = address.reason
            if address.active and default is not None and not default.active:
                state.in_rotation.append(address.address)
            if address.hostname:
                state.hostnames[address.address] = address.hostname
        result[pool.name] = state
    return result


def _range_order(text: str) -> tuple:
    network = ipaddress.ip_network(text)
    return (network.version, network.network_address, network.prefixlen)


class PoolSection(Section):
    key = "pools"

    def export(self) -> list[dict]:
        return [state.to_toml() for state in current_pools().values()]

    def plan(self, value: Any, *, prune: bool) -> Plan:
        wanted = self.parse(value)
        current = current_pools()
        kept = {name: state for name, state in current.items() if name not in wanted}
        if prune:
            kept = {}
        self.validate(wanted, kept)
        plan = Plan()
        for name in sorted(set(current) - set(wanted) - set(kept)):
            plan.changes.append(f"- pool {name}")
            plan.actions.append(lambda name=name: Pool.objects.filter(name=name).delete())
        changed = []
        for name, state in wanted.items():
            changes = describe_pool_changes(current.get(name), state)
            if changes:
                plan.changes += changes
                changed.append(state)
        # Ranges leave their old pools before any pool takes them (they may move).
        plan.actions += [lambda s=state: drop_other_ranges(s) for state in changed]
        plan.actions += [lambda s=state: store_pool(s) for state in changed]
        return plan

    def parse(self, value: Any) -> dict[str, PoolState]:
        if not isinstance(value, list):
            raise DocumentError(["pools: expected an array of tables ([[pools]])"])
        wanted, problems = {}, []
        for index, entry in enumerate(value):
            where = f"pools[{index}]"
            try:
                state = pool_state(entry, where)
            except DocumentError as exc:
                problems += exc.problems
                continue
            if state.name in wanted:
                problems.append(f"{where}: pool {state.name!r} appears twice")
            wanted[state.name] = state
        if problems:
            raise DocumentError(problems)
        return wanted

    def validate(self, wanted: dict[str, PoolState], kept: dict[str, PoolState]) -> None:
        specs = [
            pools.RangeSpec(state.name, cidr)
            for state in [*wanted.values(), *kept.values()]
            for cidr in state.ranges
        ]
        problems = pools.range_errors(specs)
        for state in wanted.values():
            problems += address_problems(state)
        if problems:
            raise DocumentError(problems)


POOL_KEYS = {
    "name",
    "kind",
    "description",
    "take_listed_out",
    "ranges",
    "addresses",
    "out_of_rotation",
    "in_rotation",
    "hostnames",
}


def pool_state(entry: Any, where: str) -> PoolState:
    """A PoolState from one [[pools]] table; raises DocumentError naming each bad key."""
    if not isinstance(entry, dict):
        raise DocumentError([f"{where}: expected a table"])
    problems = [f"{where}: unknown key {key!r}" for key in sorted(set(entry) - POOL_KEYS)]
    name = entry.get("name")
    if not isinstance(name, str) or not SLUG.match(name):
        problems.append(f"{where}.name: expected a short name of letters, digits, - and _")
    kind = entry.get("kind")
    if kind not in Pool.Kind.values:
        problems.append(f"{where}.kind: expected one of {Pool.Kind.values}, got {kind!r}")
    checks = [
        ("description", str, ""),
        ("take_listed_out", bool, kind != Pool.Kind.HIGH_RISK),
        ("ranges", list, []),
        ("addresses", list, []),
        ("out_of_rotation", dict, {}),
        ("in_rotation", list, []),
        ("hostnames", dict, {}),
    ]
    values = {}
    for key, kind_of, default in checks:
        values[key] = entry.get(key, default)
        if not isinstance(values[key], kind_of):
            problems.append(f"{where}.{key}: expected {kind_of.__name__}")
    if problems:
        raise DocumentError(problems)

    def each(parse, items) -> list[str]:
        parsed = []
        for item in items:
            try:
                parsed.append(str(parse(str(item))))
            except pools.RangeError as exc:
                problems.append(f"pool {name!r}: {exc}")
        return parsed

    ranges = each(pools.normalized, values["ranges"])
    addresses = each(pools.parse_address, values["addresses"])
    out = dict(
        zip(
            each(pools.parse_address, values["out_of_rotation"]),
            map(str, values["out_of_rotation"].values()),
            strict=False,
        )
    )
    back = each(pools.parse_address, values["in_rotation"])
    hostnames = dict(
        zip(
            each(pools.parse_address, values["hostnames"]),
            each(pools.normalized_hostname, values["hostnames"].values()),
            strict=False,
        )
    )
    if problems:
        raise DocumentError(problems)
    return PoolState(
        name,
        kind,
        values["description"],
        values["take_listed_out"],
        sorted(ranges, key=_range_order),
        sorted(addresses, key=_range_order),
        dict(sorted(out.items(), key=lambda item: _range_order(item[0]))),
        sorted(back, key=_range_order),
        dict(sorted(hostnames.items(), key=lambda item: _range_order(item[0]))),
    )


def address_problems(state: PoolState) -> list[str]:
    defaults = default_states(state.ranges)
    problems = []
    for address in state.addresses:
        if address in defaults:
            problems.append(f"pool {state.name!r}: {address} is already part of a range")
        elif pools.containing_range(address, state.ranges) is None:
            problems.append(f"pool {state.name!r}: {address} is in none of the pool's ranges")
    known = set(defaults) | set(state.addresses)
    for address in [*state.out_of_rotation, *state.in_rotation]:
        if address not in known:
            problems.append(f"pool {state.name!r}: {address} is not an address of the pool")
    for address in state.hostnames:
        if address not in known:
            problems.append(f"pool {state.name!r}: {address} is not an address of the pool")
    for address, reason in state.out_of_rotation.items():
        if not reason.strip():
            problems.append(f"pool {state.name!r}: say why {address} is out of rotation")
    return problems


def describe_pool_changes(old: PoolState | None, new: PoolState) -> list[str]:
    if old is None:
        return [f"+ pool {new.name} ({new.kind}, ranges {', '.join(new.ranges) or 'none'})"]
    changes = []
    for attr in ("kind", "description", "take_listed_out"):
        if getattr(old, attr) != getattr(new, attr):
            changes.append(
                f"~ pool {new.name}: {attr} {getattr(old, attr)!r} -> {getattr(new, attr)!r}"
            )
    for attr in ("ranges", "addresses", "in_rotation"):
        before, after = set(getattr(old, attr)), set(getattr(new, attr))
        changes += [f"+ pool {new.name}: {attr[:-1]} {x}" for x in sorted(after - before)]
        changes += [f"- pool {new.name}: {attr[:-1]} {x}" for x in sorted(before - after)]
    if old.out_of_rotation != new.out_of_rotation:
        changes.append(f"~ pool {new.name}: out_of_rotation changed")
    if old.hostnames != new.hostnames:
        changes.append(f"~ pool {new.name}: hostnames changed")
    return changes


def drop_other_ranges(state: PoolState) -> None:
    IPRange.objects.filter(pool__name=state.name).exclude(cidr__in=state.ranges).delete()


def store_pool(state: PoolState) -> None:
    """Make the database hold exactly `state` for this pool."""
    pool, _ = Pool.objects.update_or_create(
        name=state.name,
        defaults={
            "kind": state.kind,
            "description": state.description,
            "take_listed_out": state.take_listed_out,
        },
    )
    existing = set(pool.ranges.values_list("cidr", flat=True))
    IPRange.objects.bulk_create(
        IPRange(pool=pool, cidr=cidr) for cidr in state.ranges if cidr not in existing
    )
    pool.sync_addresses()
    defaults = default_states(state.ranges)
    pool.addresses.exclude(address__in=[*defaults, *state.addresses]).delete()
    ranges = list(pool.ranges.all())
    have = set(pool.addresses.values_list("address", flat=True))
    for address in state.addresses:
        if address not in have:
            holder = pools.containing_range(address, [r.cidr for r in ranges])
            PoolAddress.objects.create(
                pool=pool, ip_range=next(r for r in ranges if r.cidr == holder), address=address
            )
    now = timezone.now()
    for address in pool.addresses.all():
        default = defaults.get(address.address, pools.AddressSpec(address.address))
        active, reason = default.active, default.reason
        if address.address in state.out_of_rotation:
            active, reason = False, state.out_of_rotation[address.address]
        elif address.address in state.in_rotation:
            active, reason = True, ""
        if (address.active, address.reason) != (active, reason):
            address.active, address.reason, address.state_changed = active, reason, now
            address.save(update_fields=["active", "reason", "state_changed"])
        hostname = state.hostnames.get(address.address, "")
        if address.hostname != hostname:
            address.hostname = hostname
            address.save(update_fields=["hostname"])


# --- routing policy ----------------------------------------------------------------------


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


POLICY_FIELDS = {
    "spam_threshold": _number,
    "trusted_score_headers": lambda v: isinstance(v, list),
    "on_dns_failure": lambda v: isinstance(v, str),
    "fallback": lambda v: isinstance(v, str),
    "spamd_enabled": lambda v: isinstance(v, bool),
    "spamd_address": lambda v: isinstance(v, str) and 0 < len(v) <= 200,
    "spamd_timeout": lambda v: _number(v) and 0 < v <= 300,
    "spamd_max_bytes": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "internal_domains": lambda v: (
        isinstance(v, list) and all(isinstance(d, str) and DOMAIN.match(d) for d in v)
    ),
    "sender_identity": lambda v: isinstance(v, str),
    "on_limit_store_failure": lambda v: isinstance(v, str),
}
DOMAIN = re.compile(r"^(?=.{1,253}$)[a-zA-Z0-9_-]{1,63}(\.[a-zA-Z0-9_-]{1,63})*$")


class RoutingSection(Section):
    key = "routing"

    def export(self) -> dict:
        policy = RoutingPolicy.load()
        return {name: getattr(policy, name) for name in POLICY_FIELDS}

    def plan(self, value: Any, *, prune: bool) -> Plan:
        if not isinstance(value, dict):
            raise DocumentError(["routing: expected a table ([routing])"])
        problems = self.problems(value)
        if problems:
            raise DocumentError(problems)
        current = self.export()
        changes = [
            f"~ routing: {name} {current[name]!r} -> {value[name]!r}"
            for name in POLICY_FIELDS
            if name in value and value[name] != current[name]
        ]
        plan = Plan(changes=changes)
        if changes:
            plan.actions.append(lambda: self.store(value))
        return plan

    def problems(self, value: dict) -> list[str]:
        problems = [f"routing: unknown key {k!r}" for k in sorted(set(value) - set(POLICY_FIELDS))]
        for name, valid in POLICY_FIELDS.items():
            if name in value and not valid(value[name]):
                problems.append(f"routing.{name}: bad value {value[name]!r}")
        if problems:
            return problems
        choices = {
            "on_dns_failure": RoutingPolicy.OnDNSFailure.values,
            "fallback": RoutingPolicy.Fallback.values,
            "sender_identity": limit_rules.IDENTITIES,
            "on_limit_store_failure": (limit_rules.STORE_DELIVER, limit_rules.STORE_DEFER),
        }
        for name, allowed in choices.items():
            if name in value and value[name] not in allowed:
                problems.append(f"routing.{name}: expected one of {allowed}")
        if "spam_threshold" in value and not -1000 < value["spam_threshold"] < 1000:
            problems.append("routing.spam_threshold: expected a number between -1000 and 1000")
        problems += [
            f"routing.trusted_score_headers: {p}"
            for p in scores.header_list_problems(value.get("trusted_score_headers", []))
        ]
        return problems

    def store(self, value: dict) -> None:
        policy = RoutingPolicy.load()
        for name in POLICY_FIELDS:
            if name in value:
                setattr(policy, name, value[name])
        for name in ("spam_threshold", "spamd_timeout"):
            if name in value:
                setattr(policy, name, float(value[name]))
        if "internal_domains" in value:
            policy.internal_domains = [d.lower() for d in value["internal_domains"]]
        policy.save()


# --- sender limits -------------------------------------------------------------------------

LIMIT_FIELDS = ("external_per_hour", "internal_per_hour", "per_day", "high_risk_per_hour")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10**9


class SenderLimitSection(Section):
    """`[[sender_limits]]`: replaces the limits it names (by `match`); a limit missing from
    the document is removed only with --prune."""

    key = "sender_limits"

    def export(self) -> list[dict]:
        return [self.entry(row) for row in SenderLimit.objects.order_by("match")]

    def entry(self, row: SenderLimit) -> dict:
        data = {"match": row.match}
        data |= {n: getattr(row, n) for n in LIMIT_FIELDS if getattr(row, n) is not None}
        return data | {"action": row.action}

    def plan(self, value: Any, *, prune: bool) -> Plan:
        if not isinstance(value, list):
            raise DocumentError(["sender_limits: expected an array of tables ([[sender_limits]])"])
        wanted, problems = {}, []
        for index, item in enumerate(value):
            problems += self.problems(item, f"sender_limits[{index}]")
            if isinstance(item, dict) and isinstance(item.get("match"), str):
                if item["match"] in wanted:
                    problems.append(f"sender_limits: match {item['match']!r} given twice")
                wanted[item["match"]] = item
        if problems:
            raise DocumentError(problems)
        current = {e["match"]: e for e in self.export()}
        plan = Plan()
        for match, item in wanted.items():
            entry = {"match": match} | {n: item[n] for n in LIMIT_FIELDS if n in item}
            entry["action"] = item.get("action", limit_rules.BLOCK_TODAY)
            if current.get(match) == entry:
                continue
            sign = "~" if match in current else "+"
            plan.changes.append(f"{sign} sender_limits: {match} {entry}")
            plan.actions.append(lambda entry=entry: self.store(entry))
        for match in sorted(set(current) - set(wanted)) if prune else ():
            plan.changes.append(f"- sender_limits: {match}")
            plan.actions.append(
                lambda match=match: SenderLimit.objects.filter(match=match).delete()
            )
        return plan

    def problems(self, item: Any, where: str) -> list[str]:
        if not isinstance(item, dict):
            return [f"{where}: expected a table"]
        known = {"match", "action", *LIMIT_FIELDS}
        problems = [f"{where}: unknown key {k!r}" for k in sorted(set(item) - known)]
        match = item.get("match")
        if not isinstance(match, str) or not 0 < len(match) <= 255:
            problems.append(f'{where}.match: expected a glob such as "*" or "*@example.com"')
        for name in LIMIT_FIELDS:
            if name in item and not _count(item[name]):
                problems.append(f"{where}.{name}: expected a whole number of at least 0")
        if item.get("action", limit_rules.BLOCK_TODAY) not in limit_rules.ACTIONS:
            problems.append(f"{where}.action: expected one of {list(limit_rules.ACTIONS)}")
        return problems

    def store(self, entry: dict) -> None:
        fields = {n: entry.get(n) for n in LIMIT_FIELDS} | {"action": entry["action"]}
        SenderLimit.objects.update_or_create(match=entry["match"], defaults=fields)


register(RoutingSection())
register(SenderLimitSection())
register(PoolSection())
