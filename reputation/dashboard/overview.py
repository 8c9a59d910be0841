"""The dashboard's first screen: per pool what is listed now (on which lists with which codes,
since when, how much mail the address sent in 24 h, whether it still sends, where to ask for
removal), the last complete sweep and the last partial run, open spikes, recent alerts and
recent setting changes.

A handful of queries whatever the data's age: open listings are few even when 1,024 addresses
are checked on 20 lists, and the rest are the latest rows of indexed tables.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Sum
from django.utils import timezone

from reputation import schedules
from reputation.alerts.events import listing_severity
from reputation.blocklists.listings import LEASE
from reputation.blocklists.sweep import unknown_total
from reputation.models import Blocklist, CheckRun, Listing, ReverseDNSCheck, Spike
from reputation.models.alerts import SEVERITY_RANK, Event
from routing.models import AddressCount, Pool, PoolAddress, SettingChange

RECENT = 10
SENT_WINDOW = timedelta(hours=24)
# A complete run has no pool, list or address of its own and left no list out.
COMPLETE = {"pool": "", "zones": [], "address": "", "skipped": {}}


@dataclass(frozen=True)
class ListedOn:
    zone: str
    weight: str
    since: datetime
    codes: list[str]
    meanings: list[str]
    severity: str
    delist_url: str = ""

    @property
    def codes_text(self) -> str:
        """ "127.0.0.2 SBL, 127.0.0.4 XBL"."""
        pairs = zip(self.codes, [*self.meanings, *[""] * len(self.codes)], strict=False)
        return ", ".join(f"{code} {meaning}".strip() for code, meaning in pairs)


@dataclass
class ListedAddress:
    address: str
    in_rotation: bool
    lists: list[ListedOn] = field(default_factory=list)
    sent_24h: int = 0  # messages routed through it in the last 24 hours

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
    partial: list[str] = field(default_factory=list)  # why it covered less than everything

    @property
    def duration_text(self) -> str:
        return human_duration(self.duration) if self.duration is not None else ""

    @property
    def running(self) -> bool:
        """Started within the lease and not finished: still going (else it stopped)."""
        return self.run.finished is None and timezone.now() - self.run.started < LEASE


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
    last_sweep: SweepState | None  # the last complete sweep: every list, every pool
    last_partial: SweepState | None  # a partial or unfinished run started after it
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
        last_sweep=(complete := last_sweep()),
        last_partial=last_partial(after=complete.run if complete else None),
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
    """Open listings grouped by pool and address, most severe and oldest first, with each
    address's mail of the last 24 hours."""
    rows = Listing.objects.filter(closed=None).select_related("blocklist").order_by("opened")
    addresses = {row.address for row in rows}
    rotating = {a.address: a.in_rotation for a in PoolAddress.objects.filter(address__in=addresses)}
    sent = sent_since(addresses, timezone.now() - SENT_WINDOW)
    grouped: dict[str, dict[str, ListedAddress]] = defaultdict(dict)
    for row in rows:
        item = grouped[row.pool].setdefault(
            row.address,
            ListedAddress(
                row.address, rotating.get(row.address, False), sent_24h=sent.get(row.address, 0)
            ),
        )
        blocklist = row.blocklist
        severity = listing_severity(kinds.get(row.pool), blocklist.weight, opened=True)
        item.lists.append(
            ListedOn(
                blocklist.zone,
                blocklist.weight,
                row.opened,
                row.codes,
                row.meanings,
                severity,
                blocklist.delist_url,
            )
        )
    return {
        pool: sorted(items.values(), key=lambda a: (-SEVERITY_RANK[a.severity], a.since))
        for pool, items in grouped.items()
    }


def sent_since(addresses: set[str], since: datetime) -> dict[str, int]:
    """Messages routed through each of `addresses` since `since` (hourly counts)."""
    if not addresses:
        return {}
    rows = AddressCount.objects.filter(address__in=addresses, hour__gte=since)
    grouped = rows.order_by().values("address").annotate(n=Sum("count"))
    return {row["address"]: row["n"] for row in grouped}


def last_sweep() -> SweepState | None:
    """The last complete sweep: finished, of every pool on every enabled list."""
    done = CheckRun.objects.filter(finished__isnull=False, **COMPLETE).order_by("-started")
    run = done.first()
    return sweep_state(run) if run is not None else None


def last_partial(*, after: CheckRun | None) -> SweepState | None:
    """The latest run started after `after` (all of them when None): it is partial (a pool,
    some lists, one address, lists left out) or not finished, since the complete one is
    `after`."""
    runs = CheckRun.objects.order_by("-started")
    if after is not None:
        runs = runs.filter(started__gt=after.started)
    run = runs.first()
    return sweep_state(run) if run is not None else None


def sweep_state(run: CheckRun) -> SweepState:
    duration = run.finished - run.started if run.finished else None
    errors = run.errors if isinstance(run.errors, dict) else {}  # {zone: {kind: n}}
    totals = {zone: unknown_total(kinds) for zone, kinds in errors.items()}
    worst = sorted(totals.items(), key=lambda item: -item[1])[:5]
    misbehaving = sorted(run.misbehaving) if isinstance(run.misbehaving, dict) else []
    return SweepState(run, duration, run.unknown, worst, misbehaving, partial_reasons(run))


def partial_reasons(run: CheckRun) -> list[str]:
    """Why a run covered less than every enabled list on every pool address."""
    reasons = []
    if run.address:
        reasons.append(f"one address ({run.address}, check now)")
    if run.pool:
        reasons.append(f"pool {run.pool} only")
    if run.zones:
        reasons.append(f"{len(run.zones)} list{'s' if len(run.zones) != 1 else ''} only")
    if run.skipped:
        skipped = ", ".join(sorted(run.skipped))
        reasons.append(f"left out (another run held them): {skipped}")
    if run.finished is None and run.chunks_done < run.chunks:
        reasons.append(f"{run.chunks - run.chunks_done} of {run.chunks} chunks not applied")
    return reasons


def human_duration(span: timedelta) -> str:
    """A run's duration for people: "0.4 s", "23 s", "4 min 10 s", "2 h 5 min"."""
    seconds = span.total_seconds()
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"
