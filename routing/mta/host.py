"""Which pool addresses this host can send from.

A `pw-*` transport binds its address with `smtp_bind_address_enforce = yes`, so an address
missing from the host defers its mail. `missing()` finds those addresses before mail piles up:
an address is configured when bind() on it works and, where Linux shows it
(/proc/net/fib_trie, /proc/net/if_inet6), it is one of the host's local addresses. Both,
because bind() alone also succeeds for any address under `net.ipv4.ip_nonlocal_bind = 1`
(common on failover hosts), and /proc alone does not exist elsewhere. Standard library only.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from pathlib import Path

from routing.mta.postfix import SourceAddress
from routing.pools import IPNetwork

FIB_TRIE = Path("/proc/net/fib_trie")
IF_INET6 = Path("/proc/net/if_inet6")
UNUSABLE6 = 0x40 | 0x08  # IFA_F_TENTATIVE, IFA_F_DADFAILED: not bindable yet, or never


def bindable(address: str) -> bool:
    """Whether a socket can bind `address` (port 0: any free port), as Postfix's smtp does."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


def local_networks(fib_trie: Path = FIB_TRIE, if_inet6: Path = IF_INET6) -> list[IPNetwork] | None:
    """The host's local addresses and ranges (IPv4 `LOCAL` routes such as 127.0.0.0/8, and
    usable IPv6 addresses); None where /proc does not show them."""
    try:
        trie, inet6 = fib_trie.read_text(), if_inet6.read_text()
    except OSError:
        return None
    return [*local_ipv4(trie), *local_ipv6(inet6)]


def local_ipv4(trie: str) -> set[IPNetwork]:
    """The `/N host LOCAL` entries of /proc/net/fib_trie: each follows its `|-- address` line."""
    networks, leaf = set(), ""
    for line in trie.splitlines():
        words = line.split()
        if words[:1] == ["|--"] and len(words) == 2:
            leaf = words[1]
        elif leaf and words and words[0].startswith("/") and words[-1] == "LOCAL":
            networks.add(ipaddress.ip_network(f"{leaf}{words[0]}", strict=False))
    return networks


def local_ipv6(if_inet6: str) -> set[IPNetwork]:
    """The addresses of /proc/net/if_inet6 (32 hex digits, index, prefix, scope, flags, name)
    that can be bound now."""
    networks = set()
    for line in if_inet6.splitlines():
        words = line.split()
        if len(words) >= 5 and not int(words[4], 16) & UNUSABLE6:
            packed = bytes.fromhex(words[0])
            networks.add(ipaddress.ip_network(ipaddress.IPv6Address(packed)))
    return networks


def configured(address: str, networks: list[IPNetwork] | None) -> bool:
    ip = ipaddress.ip_address(address)
    local = networks is None or any(ip.version == n.version and ip in n for n in networks)
    return local and bindable(address)


def missing(addresses: Iterable[SourceAddress]) -> list[SourceAddress]:
    """The addresses in rotation that this host cannot send from."""
    networks = local_networks()
    return [a for a in addresses if a.in_rotation and not configured(a.address, networks)]
