"""The listing matrix: every address listed now or in the last days, down, against the lists
that list (or listed) one of them, across; a page of rows at a time, sorted by severity (the
pool's kind and the list's weight, as alerts rank them), by address or by the newest listing.

It replaces a heat map of every address on every list: a thousand rows squeezed into a chart
hid the one listing that mattered. Reads open listings and those closed in the window (an
index on `closed`), so a year of history costs what the last week does.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.core.paginator import Page, Paginator
from django.db.models import Q
from django.utils import timezone

from reputation.alerts.events import listing_severity
from reputation.models import Blocklist, Listing
from reputation.models.alerts import SEVERITY_RANK
from routing.models import Pool

RECENT = timedelta(days=7)
PAGE_SIZE = 50
SORTS = {
    "severity": "most severe first",
    "address": "by address",
    "newest": "newest listing first",
}


@dataclass(frozen=True)
class Cell:
    """One address on one list: listed now (`closed` None) or listed until `closed`."""

    opened: datetime
    closed: datetime | None
    codes: list[str]
    severity: str  # as alerts rank the listing; "" once closed

    @property
    def is_open(self) -> bool:
        return self.closed is None


@dataclass
class Row:
    address: str
    pool: str
    pool_kind: str
    cells: dict[int, Cell] = field(default_factory=dict)  # by blocklist id
    line: list[Cell | None] = field(default_factory=list)  # cells in column order

    @property
    def severity(self) -> str:
        """The most severe open listing's, "" when none is open any more."""
        open_ = [c.severity for c in self.cells.values() if c.is_open]
        return max(open_, key=SEVERITY_RANK.__getitem__) if open_ else ""

    @property
    def newest(self) -> datetime:
        return max(c.opened for c in self.cells.values())

    @property
    def since(self) -> datetime:
        """When its oldest open listing opened (of any listing, when none is open)."""
        cells = [c for c in self.cells.values() if c.is_open] or list(self.cells.values())
        return min(c.opened for c in cells)


@dataclass(frozen=True)
class Column:
    pk: int
    zone: str
    weight: str


@dataclass(frozen=True)
class ListingMatrix:
    columns: list[Column]
    page: Page  # of Row
    sort: str
    total: int  # rows on every page
    recent: timedelta


def listing_matrix(
    *, sort: str = "severity", page: int | str = 1, recent: timedelta = RECENT
) -> ListingMatrix:
    """The matrix's page `page` (a bad number gives the nearest page), sorted by `sort` (a
    key of SORTS; anything else: severity)."""
    sort = sort if sort in SORTS else "severity"
    since = timezone.now() - recent
    rows = Listing.objects.filter(Q(closed__isnull=True) | Q(closed__gte=since))
    values = rows.order_by("opened").values_list(
        "address", "pool", "blocklist_id", "opened", "closed", "codes"
    )
    kinds = dict(Pool.objects.values_list("name", "kind"))
    lists = {b.pk: b for b in Blocklist.objects.filter(pk__in={v[2] for v in values})}
    found: dict[str, Row] = {}
    for address, pool, blocklist, opened, closed, codes in values:
        row = found.setdefault(address, Row(address, pool, kinds.get(pool, "")))
        weight = lists[blocklist].weight
        severity = "" if closed else listing_severity(row.pool_kind, weight, opened=True)
        current = row.cells.get(blocklist)
        if current is None or current.closed is not None:  # an open listing wins, else the latest
            row.cells[blocklist] = Cell(opened, closed, list(codes or []), severity)
    columns = [
        Column(b.pk, b.zone, b.weight)
        for b in sorted(lists.values(), key=lambda b: (b.weight != "major", b.zone))
    ]
    ordered = sorted(found.values(), key=SORT_KEYS[sort])
    shown = Paginator(ordered, PAGE_SIZE).get_page(page)
    for row in shown.object_list:
        row.line = [row.cells.get(column.pk) for column in columns]
    return ListingMatrix(columns, shown, sort, len(ordered), recent)


def _address_key(address: str) -> tuple:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a HELO name on a domain list
        return (2, 0, address)
    return (ip.version, int(ip), "")


SORT_KEYS = {
    "severity": lambda row: (
        -SEVERITY_RANK.get(row.severity, -1),
        -sum(c.is_open for c in row.cells.values()),
        row.since,
        _address_key(row.address),
    ),
    "address": lambda row: _address_key(row.address),
    "newest": lambda row: (-row.newest.timestamp(), _address_key(row.address)),
}
