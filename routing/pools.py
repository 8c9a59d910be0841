"""Pool address ranges: parsing, validation and the addresses they contain.

Plain functions on plain data, used by the admin, `config_import` and the routing engine.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# 4,096 addresses: each is queried against every blocklist on every sweep.
MAX_IPV4_PREFIX = 20
NETWORK_OR_BROADCAST = "network or broadcast address of its range"


class RangeError(ValueError):
    """A range or address that a pool cannot hold; the message says why, for a person."""


@dataclass(frozen=True)
class RangeSpec:
    pool: str
    cidr: str


@dataclass(frozen=True)
class AddressSpec:
    address: str
    active: bool = True
    reason: str = ""


def parse_range(text: str) -> IPNetwork:
    """Parse an IPv4 or IPv6 range in CIDR notation (a bare address is a /32 or /128).

    Raises RangeError when the text is not a range, has host bits set, or is an IPv4
    range larger than a /20.
    """
    text = (text or "").strip()
    try:
        network = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            loose = ipaddress.ip_network(text, strict=False)
            raise RangeError(f"{text}: host bits are set; did you mean {loose}?") from None
        raise RangeError(f"{text!r} is not an IPv4 or IPv6 range in CIDR notation") from None
    if network.version == 4 and network.prefixlen < MAX_IPV4_PREFIX:
        raise RangeError(
            f"{network}: too large to monitor ({network.num_addresses} addresses); "
            f"split it into ranges of /{MAX_IPV4_PREFIX} or smaller"
        )
    return network


def parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        return ipaddress.ip_address((text or "").strip())
    except ValueError:
        raise RangeError(f"{text!r} is not an IPv4 or IPv6 address") from None


def overlaps(specs: Sequence[RangeSpec]) -> list[str]:
    """Messages for every pair of ranges in `specs` that overlap (within or across pools)."""
    parsed = sorted(
        ((parse_range(spec.cidr), spec.pool) for spec in specs),
        key=lambda item: (item[0].version, item[0].network_address, item[0].prefixlen),
    )
    errors = []
    widest: tuple[IPNetwork, str] | None = None  # the range reaching furthest so far
    for network, pool in parsed:
        if widest and widest[0].version == network.version and widest[0].overlaps(network):
            other, other_pool = widest
            where = "the same pool" if other_pool == pool else f"pool {other_pool!r}"
            errors.append(f"{network} (pool {pool!r}) overlaps {other} in {where}")
        if (
            widest is None
            or widest[0].version != network.version
            or network.broadcast_address > widest[0].broadcast_address
        ):
            widest = (network, pool)
    return errors


def range_errors(specs: Sequence[RangeSpec]) -> list[str]:
    """Every problem with a complete set of ranges (all pools): bad ranges, then overlaps."""
    errors = []
    for spec in specs:
        try:
            parse_range(spec.cidr)
        except RangeError as exc:
            errors.append(f"pool {spec.pool!r}: {exc}")
    return errors or overlaps(specs)


def enumerated(network: IPNetwork) -> list[AddressSpec]:
    """The addresses a range puts in its pool.

    IPv4 ranges are enumerated; the network and broadcast addresses of a /30 or larger are
    kept for monitoring but out of rotation. IPv6 ranges give only their single address
    when they are a /128: larger IPv6 ranges are monitored by explicitly listed addresses.
    """
    if network.version == 6:
        return [AddressSpec(str(network.network_address))] if network.prefixlen == 128 else []
    edges = set()
    if network.prefixlen <= 30:
        edges = {network.network_address, network.broadcast_address}
    return [
        AddressSpec(str(ip), active=False, reason=NETWORK_OR_BROADCAST)
        if ip in edges
        else AddressSpec(str(ip))
        for ip in network
    ]


def containing_range(address: str, ranges: Iterable[str]) -> str | None:
    """The range (as given) that holds `address`, or None."""
    ip = parse_address(address)
    for cidr in ranges:
        network = ipaddress.ip_network(cidr)
        if network.version == ip.version and ip in network:
            return cidr
    return None


def normalized(cidr: str) -> str:
    return str(parse_range(cidr))


def normalized_hostname(text: str) -> str:
    """A HELO/rDNS host name, lowercase IDNA without the root dot; RangeError if invalid."""
    from routing.dns import idna_name

    try:
        return idna_name(text or "")
    except ValueError:
        raise RangeError(f"{text!r} is not a host name") from None
