"""The dashboard's first screen: per pool what is listed now (on which lists, since when,
whether it still sends), the last sweep, open spikes, recent alerts and recent setting changes.

A handful of queries whatever the data's age: open listings are few even when 1,024 addresses
are checked on 20 lists, and the rest are the latest rows of indexed tables.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count

from reputation import schedules
from reputation.alerts.events import listing_severity
from reputation.blocklists.sweep import unknown_total
from reputation.models import Blocklist, CheckRun, Listing, ReverseDNSCheck, Spike
from reputation.models.alerts import SEVERITY_RANK, Event
from routing.models import Pool, PoolAddress, SettingChange

RECENT = 10


@dataclass(frozen=True)
class ListedOn:
    zone: str
    weight: str
    since: datetime
    codes: list[str]
    meanings: list[str]
    severity: str


@dataclass
class ListedAddress:
    address: str
    in_rotation: bool
    lists: list[ListedOn] = field(default_factory=list)

    @property
    def since(self) -> datetime:
        return min(item.since for item in self.lists)

    @property
    def severity(self) -> str:
        return max((item.severity for item in self.lists), key=SEVERITY_RANK.__getitem__)


@dataclass
class PoolState:
    name: str
    kind: str
    addresses: int
    in_rotation: int
    listed: list[ListedAddress] = field(default_factory=list)


@dataclass(frozen=True)
class SweepState:
    run: CheckRun
    duration: timedelta | None
    errors: int  # unknown answers
    worst_zones: list[tuple[str, int]]  # zones with the most unknown answers
    misbehaving: list[str]


@dataclass(frozen=True)
class ReverseDNSState:
    checked: int  # pool addresses with a check
    failing: list[ReverseDNSCheck]  # at most RECENT, longest failing first
    failing_total: int

    @property
    def more(self) -> int:
        return self.failing_total - len(self.failing)


@dataclass
class Overview:
    pools: list[PoolState]
    last_sweep: SweepState | None
    schedule: schedules.SweepSchedule  # as stored: what beat runs, not the environment
    open_spikes: list[Spike]
    recent_alerts: list[Event]
    recent_changes: list[SettingChange]
    misbehaving_lists: list[Blocklist]
    rdns: ReverseDNSState

    @property
    def listed_total(self) -> int:
        return sum(len(p.listed) for p in self.pools)


def overview() -> Overview:
    return Overview(
        pools=pool_states(),
        last_sweep=last_sweep(),
        schedule=schedules.sweep_schedule(),
        open_spikes=list(Spike.objects.filter(ended=None).order_by("-started")[:20]),
        recent_alerts=list(Event.objects.order_by("-created")[:RECENT]),
        recent_changes=list(SettingChange.objects.order_by("-created", "-id")[:RECENT]),
        misbehaving_lists=list(Blocklist.objects.filter(enabled=True, misbehaving=True)),
        rdns=rdns_state(),
    )


def rdns_state() -> ReverseDNSState:
    """Reverse DNS of the addresses in pools now (a removed address's old row is left out)."""
    # Compared in Python's terms: the address column is inet on PostgreSQL, this one text.
    addresses = list(PoolAddress.objects.values_list("address", flat=True))
    current = ReverseDNSCheck.objects.filter(address__in=addresses).order_by("since", "address")
    failing = current.filter(failing=True)
    return ReverseDNSState(current.count(), list(failing[:RECENT]), failing.count())


def pool_states() -> list[PoolState]:
    pools = Pool.objects.annotate(
        n=Count("addresses"),
        rotating=Count("addresses", filter=PoolAddress.in_rotation_q("addresses__")),
    )
    states = {p.name: PoolState(p.name, p.kind, p.n, p.rotating) for p in pools}
    for name, listed in listed_by_pool(kinds={p.name: p.kind for p in pools}).items():
        if name not in states:  # a listing of a pool since removed
            states[name] = PoolState(name, "", 0, 0)
        states[name].listed = listed
    return list(states.values())


def listed_by_pool(*, kinds: dict[str, str]) -> dict[str, list[ListedAddress]]:
    """Open listings grouped by pool and address, most severe and oldest first."""
    rows = Listing.objects.filter(closed=None).select_related("blocklist").order_by("opened")
    addresses = {row.address for row in rows}
    rotating = {a.address: a.in_rotation for a in PoolAddress.objects.filter(address__in=addresses)}
    grouped: dict[str, dict[str, ListedAddress]] = defaultdict(dict)
    for row in rows:
        item = grouped[row.pool].setdefault(
            row.address, ListedAddress(row.address, rotating.get(row.address, False))
        )
        weight = row.blocklist.weight
        severity = listing_severity(kinds.get(row.pool), weight, opened=True)
        item.lists.append(
            ListedOn(row.blocklist.zone, weight, row.opened, row.codes, row.meanings, severity)
        )
    return {
        pool: sorted(items.values(), key=lambda a: (-SEVERITY_RANK[a.severity], a.since))
        for pool, items in grouped.items()
    }


def last_sweep() -> SweepState | None:
    run = CheckRun.objects.order_by("-started").first()
    if run is None:
        return None
    duration = run.finished - run.started if run.finished else None
    errors = run.errors if isinstance(run.errors, dict) else {}  # {zone: {kind: n}}
    totals = {zone: unknown_total(kinds) for zone, kinds in errors.items()}
    worst = sorted(totals.items(), key=lambda item: -item[1])[:5]
    misbehaving = sorted(run.misbehaving) if isinstance(run.misbehaving, dict) else []
    return SweepState(run, duration, run.unknown, worst, misbehaving)
