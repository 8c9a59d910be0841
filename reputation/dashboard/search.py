"""The dashboard's address search: an address (IPv4 or IPv6, any spelling), a network
("192.0.2.0/28"), the start of an address or of a HELO name. One match goes straight to the
address page; several are listed.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from reputation.blocklists import dnsbl
from reputation.models import Listing
from routing.models import PoolAddress

LIMIT = 50


@dataclass(frozen=True)
class Match:
    address: str
    pool: str  # "" for an address in no pool now (listed in the past)
    hostname: str = ""


@dataclass
class SearchResult:
    query: str
    matches: list[Match] = field(default_factory=list)  # at most LIMIT
    more: bool = False  # there were more than LIMIT
    problem: str = ""

    @property
    def only(self) -> Match | None:
        """The one match, when there is exactly one."""
        return self.matches[0] if len(self.matches) == 1 and not self.more else None


def search(*, query: str) -> SearchResult:
    text = query.strip().lower()
    if not text:
        return SearchResult(query, problem="Type an address, a network or the start of one.")
    ip = dnsbl.ip_or_none(text)
    if ip is not None:
        return SearchResult(query, _exact(str(ip)))
    if "/" in text:
        return _in_network(query, text)
    return _by_prefix(query, text)


def _exact(address: str) -> list[Match]:
    found = PoolAddress.objects.filter(address=address).values_list("address", "pool__name")
    matches = [Match(a, pool) for a, pool in found]
    if not matches and Listing.objects.filter(address=address).exists():
        matches = [Match(address, "")]
    return matches


def _in_network(query: str, text: str) -> SearchResult:
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        return SearchResult(query, problem=f"{query.strip()} is not a network.")
    rows = PoolAddress.objects.order_by("id").values_list("address", "pool__name", "hostname")
    inside = [Match(*row) for row in rows if ipaddress.ip_address(row[0]) in network]
    return SearchResult(query, inside[:LIMIT], more=len(inside) > LIMIT)


def _by_prefix(query: str, text: str) -> SearchResult:
    rows = PoolAddress.objects.order_by("id").values_list("address", "pool__name", "hostname")
    by_address = rows.filter(address__startswith=text)
    by_name = rows.filter(hostname__istartswith=text)
    matches = list(dict.fromkeys(Match(*row) for row in [*by_address[:LIMIT], *by_name[:LIMIT]]))
    if len(matches) < LIMIT:  # addresses no longer in a pool, listed in the past
        known = {m.address for m in matches}
        past = Listing.objects.filter(address__startswith=text).order_by("address")
        for address in past.values_list("address", flat=True).distinct()[: LIMIT + 1]:
            if address not in known:
                matches.append(Match(address, ""))
                known.add(address)
    return SearchResult(query, matches[:LIMIT], more=len(matches) > LIMIT)
