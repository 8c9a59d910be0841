"""The blocklist catalogue as plain data: one list's settings (`BlocklistState`) and their
validation, shared by the model, the admin and the configuration document."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from reputation.blocklists import dnsbl

ZONE = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")
MAJOR, MINOR = "major", "minor"
KINDS = [dnsbl.IP, dnsbl.DOMAIN]
WEIGHTS = [MAJOR, MINOR]


@dataclass
class BlocklistState:
    zone: str
    kind: str = dnsbl.IP
    weight: str = MINOR
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
    problems = []
    if not ZONE.match(state.zone or ""):
        problems.append(f"zone: {state.zone!r} is not a lowercase DNS zone name")
    if state.kind not in KINDS:
        problems.append(f"kind: expected one of {KINDS}")
    if state.weight not in WEIGHTS:
        problems.append(f"weight: expected one of {WEIGHTS}")
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
