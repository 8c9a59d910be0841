"""The blocklist catalogue as plain data: one list's settings (`BlocklistState`) and their
validation, shared by the model, the admin and the configuration document.

Default limits: a list is queried through the operator's own recursive resolver, and the
public lists' free tiers cap the daily volume (`max_per_day`), not the rate. Per second, the
limits that matter are the resolver's and the uplink's, and a bound on the queries in flight
already paces a list to its round-trip time (100 in flight at 20-50 ms a cache miss is at
most 2,000-5,000 queries a second). So a list gets 100 in flight (the sweep's whole default
window, `POOLWARDEN_DNSBL_WINDOW`) and no rate limit unless its operator asks for one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from config.env import split_nameserver
from reputation.blocklists import dnsbl

ZONE = re.compile(r"^(?=.{1,253}$)([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)+[a-z0-9-]{2,63}$")
BRACKETED = re.compile(r"^\[[^\]]+\](:[0-9]+)?$")
MAJOR, MINOR = "major", "minor"
KINDS = [dnsbl.IP, dnsbl.DOMAIN]
WEIGHTS = [MAJOR, MINOR]
DEFAULT_IN_FLIGHT, DEFAULT_QPS = 100, 0


@dataclass
class BlocklistState:
    zone: str
    kind: str = dnsbl.IP
    weight: str = MINOR
    enabled: bool = True
    ipv4: bool = True
    ipv6: bool = False
    codes: dict[str, str] = field(default_factory=dict)
    bitmask: bool = False
    error_codes: list[str] = field(default_factory=list)
    not_listing_codes: list[str] = field(default_factory=list)
    delist_url: str = ""
    nameservers: list[str] = field(default_factory=list)  # [] = POOLWARDEN_NAMESERVERS
    mirror: bool = False
    max_in_flight: int = DEFAULT_IN_FLIGHT
    max_qps: int = DEFAULT_QPS
    max_per_day: int = 0
    clean_to_close: int = 2
    requires_key: bool = False
    description: str = ""

    def to_toml(self) -> dict:
        return asdict(self)


FIELDS = {f.name: f for f in fields(BlocklistState)}


def state_of(blocklist: Any) -> BlocklistState:
    """A BlocklistState from a Blocklist model instance."""
    values = {name: getattr(blocklist, name) for name in FIELDS}
    values["nameservers"] = split_servers(values["nameservers"])
    return BlocklistState(**values)


def split_servers(text: str) -> list[str]:
    """The entries of a comma-separated `nameservers` text (as the model stores it)."""
    return [entry.strip() for entry in text.split(",") if entry.strip()]


def join_servers(entries: list[str]) -> str:
    return ", ".join(entries)


def parse_server(entry: str) -> tuple[str, int]:
    """One resolver as (address, port): `host`, `host:port`, `[v6]:port` or a bare IPv6
    address, with an IP address for host (a name would need a resolver to find it).
    Raises ValueError for anything else."""
    if entry.startswith("[") and not BRACKETED.match(entry):
        raise ValueError(entry)
    host, port = split_nameserver(entry)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(entry)
    return host, port


def server_problems(entries: Any) -> list[str]:
    """Why `entries` are not a list of resolvers (see parse_server), one line each."""
    if not isinstance(entries, list) or not all(isinstance(e, str) for e in entries):
        return ['expected a list of resolvers, e.g. ["127.0.0.1:5353", "[::1]:5353"]']
    problems = []
    for entry in entries:
        try:
            parse_server(entry)
        except ValueError:
            problems.append(
                f"{entry!r} is not an IP address with an optional port "
                "(host, host:port or [v6]:port; names are not resolved)"
            )
    return problems


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
    if state.kind == dnsbl.IP and not (state.ipv4 or state.ipv6):
        problems.append(
            "ipv4, ipv6: an IP list answers for IPv4, IPv6 or both: turn at least one on"
        )
    problems += [f"nameservers: {p}" for p in server_problems(state.nameservers)]
    if state.mirror and not state.nameservers:
        problems.append("mirror: a mirror is queried on the list's own nameservers; set them")
    return problems
