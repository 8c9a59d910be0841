"""DNS blocklists: query names and the meaning of answers. Plain data in, plain data out.

A `ListSpec` says how one list answers; `query_name()` builds the name to look up for an
address or domain; `interpret()` turns one lookup's `Reply` into a `Verdict`: listed (with
codes, their meanings and the TXT reason), clean, or unknown (with the kind of error).
`self_test_probes()` and `self_test_failure()` implement RFC 5782 §5 on those verdicts.

An IP list answers for IPv4, IPv6 or both (`ipv4`, `ipv6`); it is asked only addresses, and
only self-test points, of the families it answers for. A domain list ignores both flags.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

LISTED, CLEAN, UNKNOWN = "listed", "clean", "unknown"
IP, DOMAIN = "ip", "domain"
NAME = 0  # the family of a domain name, beside 4 and 6 (see ListSpec.answers_for)

# Unknown kinds, as reported in `errors` of check_blocklists --json.
TIMEOUT, SERVFAIL, REFUSED = "timeout", "servfail", "refused"
ERROR_CODE, OUTSIDE_127 = "error-code", "outside-127"

NOERROR, RCODE_SERVFAIL, NXDOMAIN, RCODE_REFUSED = 0, 2, 3, 5
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
UNRECOGNISED = "unrecognised code"
ACCESS_KEY = re.compile(r"^[a-z0-9]{8,63}$")


@dataclass(frozen=True)
class ListSpec:
    """How one blocklist is queried and how its answers read.

    `codes` maps a return code ("127.0.0.2") to its meaning; for a `bitmask` list each key's
    last octet is one bit. `error_codes` (addresses or CIDRs) are refusals, not listings;
    `not_listing` codes are positive answers that list nothing (e.g. a whitelist code).
    `ipv4` and `ipv6` say which addresses an IP list answers for.
    """

    zone: str
    kind: str = IP
    ipv4: bool = True
    ipv6: bool = False
    codes: dict[str, str] = field(default_factory=dict)
    error_codes: tuple[str, ...] = ()
    not_listing: tuple[str, ...] = ()
    bitmask: bool = False
    access_key: str = field(default="", repr=False)  # never in repr, hence never in logs

    @property
    def query_zone(self) -> str:
        """The zone actually queried: `<key>.<zone>` for keyed (DQS-style) access."""
        return f"{self.access_key}.{self.zone}" if self.access_key else self.zone

    def applies_to(self, target: str) -> bool:
        """Whether this list answers for `target` (an IP address or a domain name)."""
        ip = ip_or_none(target)
        return self.answers_for(NAME if ip is None else ip.version)

    def answers_for(self, family: int) -> bool:
        """Whether this list answers for targets of `family`: 4 or 6 (addresses; an
        IPv4-mapped IPv6 address counts as 4) or NAME (domain names)."""
        if self.kind == DOMAIN:
            return family == NAME
        return (family == 4 and self.ipv4) or (family == 6 and self.ipv6)


class Reply(NamedTuple):
    """One lookup as it came back: rcode (None on timeout), A addresses (AAAA to an AAAA
    question), TXT strings, TTL, and PTR names (reverse DNS).

    A named tuple rather than a dataclass: a sweep makes tens of thousands of them.
    """

    rcode: int | None
    addresses: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    ttl: int = 0
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Verdict:
    status: str  # LISTED, CLEAN or UNKNOWN
    codes: tuple[str, ...] = ()
    meanings: tuple[str, ...] = ()
    reason: str = ""
    error: str = ""  # the unknown kind
    ttl: int = 0


def ip_or_none(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def reversed_name(address: str) -> str:
    """The DNSBL label sequence for an address: reversed octets, or 32 reversed nibbles.

    An IPv4-mapped IPv6 address is queried as IPv4.
    """
    ip = ip_or_none(address)
    if ip is None:
        raise ValueError(f"{address!r} is not an IP address")
    if ip.version == 4:
        return ".".join(reversed(str(ip).split(".")))
    return ".".join(reversed(ip.exploded.replace(":", "")))


def domain_label(name: str) -> str:
    """A domain as a DNSBL query prefix: lowercase IDNA, no trailing dot."""
    name = name.strip().rstrip(".").lower()
    if not name:
        raise ValueError("empty domain name")
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{name!r} is not a valid domain name") from None


def query_name(spec: ListSpec, target: str) -> str:
    """The name to look up for `target` on `spec`'s list (raises ValueError when the list
    does not answer for that kind of target)."""
    if not spec.applies_to(target):
        raise ValueError(f"{spec.zone} does not answer for {target}")
    prefix = reversed_name(target) if spec.kind == IP else domain_label(target)
    return f"{prefix}.{spec.query_zone}"


def _matches(code: ipaddress.IPv4Address, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        if "/" in pattern:
            if code in ipaddress.ip_network(pattern, strict=False):
                return True
        elif str(code) == pattern:
            return True
    return False


def _meanings(spec: ListSpec, code: str) -> list[str]:
    if not spec.bitmask:
        return [spec.codes.get(code, UNRECOGNISED)]
    value = int(code.rsplit(".", 1)[1])
    bits = [m for key, m in spec.codes.items() if value & int(key.rsplit(".", 1)[1])]
    return bits or [UNRECOGNISED]


@functools.lru_cache(maxsize=256)
def _clean(ttl: int) -> Verdict:
    return Verdict(CLEAN, ttl=ttl)  # shared: a sweep makes tens of thousands


def interpret(spec: ListSpec, reply: Reply) -> Verdict:
    """What one reply means for one list (the rules of DNSBL.md, "Interpretation rules")."""
    rcode = reply.rcode
    if rcode is None:
        return Verdict(UNKNOWN, error=TIMEOUT)
    if rcode == NXDOMAIN:
        return _clean(reply.ttl)
    if rcode != NOERROR:
        kind = {RCODE_SERVFAIL: SERVFAIL, RCODE_REFUSED: REFUSED}.get(rcode, f"rcode-{rcode}")
        return Verdict(UNKNOWN, error=kind)
    if not reply.addresses:
        return _clean(reply.ttl)
    codes = sorted({ipaddress.IPv4Address(a) for a in reply.addresses})
    if any(code not in LOOPBACK for code in codes):
        return Verdict(UNKNOWN, codes=tuple(map(str, codes)), error=OUTSIDE_127)
    if any(_matches(code, spec.error_codes) for code in codes):
        return Verdict(UNKNOWN, codes=tuple(map(str, codes)), error=ERROR_CODE)
    listing = [str(code) for code in codes if not _matches(code, spec.not_listing)]
    if not listing:
        return Verdict(CLEAN, ttl=reply.ttl)
    meanings = list(dict.fromkeys(m for code in listing for m in _meanings(spec, code)))
    reason = " / ".join(dict.fromkeys(t for t in reply.texts if t))
    return Verdict(LISTED, tuple(listing), tuple(meanings), reason, ttl=reply.ttl)


# --- RFC 5782 §5 self-test ----------------------------------------------------------------

MUST_LIST, MUST_NOT_LIST = "must-list", "must-not-list"


@dataclass(frozen=True)
class Probe:
    target: str  # an address, or a bare name for domain lists
    expect: str  # MUST_LIST or MUST_NOT_LIST


DOMAIN_PROBES = (Probe("test", MUST_LIST), Probe("invalid", MUST_NOT_LIST))
IPV4_PROBES = (Probe("127.0.0.2", MUST_LIST), Probe("127.0.0.1", MUST_NOT_LIST))
IPV6_PROBES = (Probe("::ffff:7f00:2", MUST_LIST), Probe("::ffff:7f00:1", MUST_NOT_LIST))


def self_test_probes(spec: ListSpec) -> list[Probe]:
    """The RFC 5782 §5 test points to ask `spec`: TEST / INVALID of a domain list; of an IP
    list 127.0.0.2 / 127.0.0.1 if it answers for IPv4, ::FFFF:7F00:2 / ::FFFF:7F00:1 if it
    answers for IPv6 (an IPv6-only list does not know IPv4 names)."""
    if spec.kind == DOMAIN:
        return list(DOMAIN_PROBES)
    return [*(IPV4_PROBES if spec.ipv4 else ()), *(IPV6_PROBES if spec.ipv6 else ())]


def probe_prefix(spec: ListSpec, probe: Probe) -> str:
    """The query name of a self-test probe, without the zone."""
    if spec.kind == DOMAIN:
        return probe.target
    ip = ipaddress.ip_address(probe.target)
    if ip.version == 6:  # ::FFFF:7F00:2 is queried as written (nibbles), not folded to IPv4
        return ".".join(reversed(ip.exploded.replace(":", "")))
    return reversed_name(probe.target)


def probe_name(spec: ListSpec, probe: Probe) -> str:
    return f"{probe_prefix(spec, probe)}.{spec.query_zone}"


def self_test_failure(results: Sequence[tuple[Probe, Verdict]]) -> str:
    """Why a list failed its self-test, or "" when it passed."""
    for probe, verdict in results:
        if verdict.status == UNKNOWN:
            return f"{probe.target}: no usable answer ({verdict.error})"
        if probe.expect == MUST_NOT_LIST and verdict.status == LISTED:
            return f"{probe.target} is listed: the list answers for everything"
        if probe.expect == MUST_LIST and verdict.status != LISTED:
            return f"{probe.target} is not listed: the list answers nothing"
    return ""


def access_key_problem(key: str) -> str:
    """Why `key` cannot be a DQS-style access key, or ""; the message never repeats it."""
    if key and not ACCESS_KEY.match(key):
        return "an access key is 8 to 63 lowercase letters and digits (one DNS label)"
    return ""
