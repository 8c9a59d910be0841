"""Events to alert about, collected from the rows the monitoring writes.

`collect()` turns new `BlocklistEvent` rows, opened and closed `Spike`s and stuck sweeps into
`Event` rows, each once (an event's `source` is unique, so two workers collecting at the same
time create nothing twice). Severity is decided here: by pool kind and list weight for
listings, by size and cause for spikes. Listings of addresses seen for the first time are
summarised in one "initial state" event; a listing that reopens soon after it closed
(flapping) is recorded but not alerted, unless it is still open when the flap window has
passed: then it is alerted once (and so is its closing).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q, Sum
from django.utils import timezone

from reputation import schedules
from reputation.models import AddressCheck, BlocklistEvent, CheckRun, Listing, Spike
from reputation.models.alerts import SEVERITY_RANK, Event, KnownAddress, Severity
from routing.models import AddressCount, Pool, PoolAddress, RoutingCount

K = Event.Kind
BLOCKED_AT_RECEIVER = "blocked-at-receiver"
STUCK_RUN = dt.timedelta(hours=2)


def collect(now: dt.datetime | None = None) -> int:
    """Create the events for everything new; returns how many were created."""
    now = now or timezone.now()
    created = _from_blocklist_events(now) + _from_spikes(now) + _from_stuck_runs(now)
    created += _from_persisting_flaps(now)
    _remember()
    return created


def _store(events: Iterable[Event]) -> int:
    events = list(events)
    if not events:
        return 0
    before = Event.objects.filter(source__in=[e.source for e in events]).count()
    Event.objects.bulk_create(events, ignore_conflicts=True)
    return Event.objects.filter(source__in=[e.source for e in events]).count() - before


# --- listings ---------------------------------------------------------------------------------


def pool_kinds() -> dict[str, str]:
    return dict(Pool.objects.values_list("name", "kind"))


def listing_severity(pool_kind: str | None, weight: str, *, opened: bool) -> str:
    """Normal pool: critical on a major list, warning on a minor one; high-risk pool: info.
    A delisting is at most a warning."""
    if pool_kind == "high-risk":
        return Severity.INFO
    severity = Severity.CRITICAL if weight == "major" else Severity.WARNING
    return severity if opened else Severity.WARNING


@transaction.atomic
def _from_blocklist_events(now: dt.datetime) -> int:
    rows = list(
        BlocklistEvent.objects.select_for_update()
        .filter(processed__isnull=True)
        .select_related("blocklist")
        .order_by("created", "pk")
    )
    if not rows:
        return 0
    kinds, known = pool_kinds(), _known([r.address for r in rows if r.address])
    events, first_seen = [], []
    for row in rows:
        if row.kind == BlocklistEvent.Kind.OPENED and row.address not in known:
            first_seen.append(row)
        else:
            events.append(_blocklist_event(row, kinds))
    if first_seen:
        events.append(_initial_state(first_seen, kinds, now))
    count = _store(events)
    KnownAddress.objects.bulk_create(
        [KnownAddress(address=r.address) for r in rows if r.address], ignore_conflicts=True
    )
    BlocklistEvent.objects.filter(pk__in=[r.pk for r in rows]).update(processed=now)
    return count


def _known(addresses: list[str]) -> set[str]:
    return set(KnownAddress.objects.filter(address__in=addresses).values_list("address", flat=True))


def _remember() -> None:
    """Every address checked so far is known from now on (those checked clean too)."""
    known = KnownAddress.objects.values("address")
    new = AddressCheck.objects.exclude(address__in=known).values_list("address", flat=True)
    KnownAddress.objects.bulk_create(
        [KnownAddress(address=a) for a in set(new)], ignore_conflicts=True
    )


def _listing_for(row: BlocklistEvent) -> Listing | None:
    found = Listing.objects.filter(
        address=row.address, blocklist=row.blocklist, opened__lte=row.created
    )
    if row.kind == BlocklistEvent.Kind.CLOSED:
        found = found.filter(closed__isnull=False)
    return found.order_by("-opened").first()


def _blocklist_event(row: BlocklistEvent, kinds: dict[str, str]) -> Event:
    source = f"blocklistevent:{row.pk}"
    zone = row.blocklist.zone
    if row.kind in (BlocklistEvent.Kind.MISBEHAVING, BlocklistEvent.Kind.RECOVERED):
        bad = row.kind == BlocklistEvent.Kind.MISBEHAVING
        return Event(
            kind=K.LIST_MISBEHAVING if bad else K.LIST_RECOVERED,
            severity=Severity.WARNING if bad else Severity.INFO,
            source=source,
            zone=zone,
            subject=f"{zone} {'fails its self-test' if bad else 'passes its self-test again'}",
            data={"detail": row.detail, "blocklist_id": row.blocklist_id},
            created=row.created,
        )
    listing = _listing_for(row)
    opened = row.kind == BlocklistEvent.Kind.OPENED
    pool = listing.pool if listing else ""
    event = Event(
        kind=K.LISTING_OPENED if opened else K.LISTING_CLOSED,
        severity=listing_severity(kinds.get(pool), row.blocklist.weight, opened=opened),
        source=source,
        pool=pool,
        address=row.address,
        zone=zone,
        subject=f"{row.address} {'listed on' if opened else 'delisted from'} {zone}",
        data=listing_data(row, listing),
        created=row.created,
    )
    if opened or listing is None:
        quiet = _flapping(row, row.created)
    else:  # quiet when its opening was, and was not alerted later for lasting
        lasted = row.created - listing.opened
        quiet = _flapping(row, listing.opened) and not _persisted(listing)
        event.subject += f" (listed for {duration_text(lasted)})"
        event.data["listed_seconds"] = int(lasted.total_seconds())
    if quiet:
        event.suppressed = "flapping: the previous listing closed a short while before"
    return event


def _persisted(listing: Listing) -> bool:
    """Whether the listing, quiet as flapping when it opened, was alerted for lasting."""
    return Event.objects.filter(
        source__startswith="persisting:",
        kind=K.LISTING_OPENED,
        address=listing.address,
        zone=listing.blocklist.zone,
        created__gte=listing.opened,
    ).exists()


def flap_window() -> dt.timedelta:
    return dt.timedelta(seconds=settings.POOLWARDEN_FLAP_SECONDS)


def duration_text(span: dt.timedelta) -> str:
    """A duration as people say it: "3 h 20 min", "2 d 5 h", "45 min", "under a minute"."""
    minutes = int(span.total_seconds()) // 60
    days, hours, minutes = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min" if minutes else "under a minute"


def listing_data(row: BlocklistEvent, listing: Listing | None) -> dict:
    data = {
        "weight": row.blocklist.weight,
        "delist_url": row.blocklist.delist_url,
        "detail": row.detail,
        "codes": listing.codes if listing else [],
        "meanings": listing.meanings if listing else [],
        "reason": listing.reason if listing else "",
    }
    if listing is not None:
        data["listing_id"] = listing.pk
        data["pool_sent_24h"] = pool_volume(listing.pool, row.created)
        data["address_sent_24h"] = address_volume(row.address, row.created)
    return data


def _flapping(row: BlocklistEvent, opened: dt.datetime) -> bool:
    """Whether the listing (re)opened at `opened` soon after an earlier one closed: neither
    its opening nor its closing is alerted."""
    since = opened - dt.timedelta(seconds=settings.POOLWARDEN_FLAP_SECONDS)
    return Listing.objects.filter(
        address=row.address, blocklist=row.blocklist, closed__gte=since, closed__lt=opened
    ).exists()


def address_volume(address: str, at: dt.datetime) -> int:
    """Mail routed from the address in the hours of the 24 h before `at`."""
    found = AddressCount.objects.filter(
        address=address, hour__gt=at - dt.timedelta(hours=25), hour__lte=at
    ).aggregate(total=Sum("count"))
    return found["total"] or 0


def pool_volume(pool: str, at: dt.datetime) -> int:
    """Mail routed through the pool in the 24 h before `at`."""
    found = RoutingCount.objects.filter(
        pool=pool, minute__gt=at - dt.timedelta(hours=24), minute__lte=at
    ).aggregate(total=Sum("count"))
    return found["total"] or 0


def _initial_state(rows: list[BlocklistEvent], kinds: dict[str, str], now) -> Event:
    items, severities, pools = [], [], set()
    for row in rows:
        listing = _listing_for(row)
        pool = listing.pool if listing else ""
        pools.add(pool)
        severities.append(listing_severity(kinds.get(pool), row.blocklist.weight, opened=True))
        items.append({"address": row.address, "zone": row.blocklist.zone, "pool": pool})
        items[-1].update(listing_data(row, listing))
    addresses = {i["address"] for i in items}
    return Event(
        kind=K.INITIAL_STATE,
        severity=max(severities, key=_rank),
        source=f"initial:{rows[0].pk}-{rows[-1].pk}",
        pool=pools.pop() if len(pools) == 1 else "",
        subject=f"First check of new addresses: {len(addresses)} listed, {len(items)} listings",
        data={"listings": items},
        created=now,
    )


def _rank(severity: str) -> int:
    return SEVERITY_RANK[severity]


# --- rotation ---------------------------------------------------------------------------------


def rotation_changed(addresses: Iterable) -> None:
    """Record each pool address that went out of or back into rotation (`listed` changed)."""
    now = timezone.now()
    addresses = list(addresses)
    known = _known([a.address for a in addresses])
    _store(_rotation_event(a, known, now) for a in addresses)


def _rotation_event(address, known: set[str], now: dt.datetime) -> Event:
    out = address.listed
    severity = Severity.CRITICAL if out else Severity.WARNING
    return Event(
        kind=K.ROTATION_OUT if out else K.ROTATION_IN,
        severity=severity if address.pool.kind != "high-risk" else Severity.INFO,
        source=f"rotation:{address.pk}:{'out' if out else 'in'}:{now.isoformat()}",
        pool=address.pool.name,
        address=address.address,
        subject=f"{address.address} {'taken out of' if out else 'back in'} rotation",
        data={"reason": address.listed_reason},
        suppressed=_rotation_quiet(address.address, out, known, now),
        created=now,
    )


def _rotation_quiet(address: str, out: bool, known: set[str], now: dt.datetime) -> str:
    """Why a rotation change is not alerted: a first check (the initial-state summary tells),
    flapping (back in rotation a short while ago), or a return whose going out was not."""
    if address not in known:
        return "first check of the address: reported in the initial-state summary"
    if not out:
        last_out = Event.objects.filter(kind=K.ROTATION_OUT, address=address).first()
        return "its going out was not alerted" if last_out and last_out.suppressed else ""
    since = now - dt.timedelta(seconds=settings.POOLWARDEN_FLAP_SECONDS)
    if Event.objects.filter(kind=K.ROTATION_IN, address=address, created__gte=since).exists():
        return "flapping: back in rotation a short while ago"
    return ""


# --- flapping that lasts ---------------------------------------------------------------------

PERSISTING_HORIZON = dt.timedelta(days=7)  # flapping events older than this are not revisited


def _from_persisting_flaps(now: dt.datetime) -> int:
    """A relisting, or a going out of rotation again, that was not alerted as flapping and
    still holds when the flap window has passed: alerted once (source `persisting:<id>`)."""
    window = flap_window()
    quiet = Event.objects.filter(
        kind__in=[K.LISTING_OPENED, K.ROTATION_OUT],
        suppressed__startswith="flapping",
        created__lte=now - window,
        created__gt=now - window - PERSISTING_HORIZON,
    )
    flaps = {f"persisting:{event.pk}": event for event in quiet}
    done = set(Event.objects.filter(source__in=list(flaps)).values_list("source", flat=True))
    return _store(
        _persisting(source, event, now)
        for source, event in flaps.items()
        if source not in done and _still_so(event)
    )


def _still_so(event: Event) -> bool:
    """Whether the flapping event's state holds: its listing open, its address out."""
    if event.kind == K.LISTING_OPENED:
        listing_id = (event.data or {}).get("listing_id")
        return Listing.objects.filter(pk=listing_id, closed__isnull=True).exists()
    later = Event.objects.filter(address=event.address, created__gt=event.created)
    listed = PoolAddress.objects.filter(address=event.address, listed=True).exists()
    return listed and not later.filter(kind=K.ROTATION_IN).exists()


def _persisting(source: str, event: Event, now: dt.datetime) -> Event:
    since = duration_text(now - event.created)
    if event.kind == K.LISTING_OPENED:
        subject = f"{event.address} still listed on {event.zone} {since} after it was relisted"
    else:
        subject = f"{event.address} still out of rotation {since} after it was taken out again"
    return Event(
        kind=event.kind,
        severity=event.severity,
        source=source,
        pool=event.pool,
        address=event.address,
        zone=event.zone,
        subject=subject,
        data={**(event.data or {}), "flapping_since": event.created.isoformat()},
        created=now,
    )


# --- reverse DNS ------------------------------------------------------------------------------


def rdns_changed(checks: Iterable) -> None:
    """One event per address that started failing its reverse DNS check (a warning) or passes
    again (info); a sweep that finds it as it was raises nothing."""
    checks = list(checks)
    pools = dict(
        PoolAddress.objects.filter(address__in=[c.address for c in checks]).values_list(
            "address", "pool__name"
        )
    )
    _store(_rdns_event(check, pools.get(check.address, "")) for check in checks)


def _rdns_event(check, pool: str) -> Event:
    failing = check.failing
    return Event(
        kind=K.RDNS_FAILED if failing else K.RDNS_RECOVERED,
        severity=Severity.WARNING if failing else Severity.INFO,
        source=f"rdns:{check.address}:{'failed' if failing else 'ok'}:{check.since.isoformat()}",
        pool=pool,
        address=check.address,
        subject=f"{check.address}: reverse DNS {'fails' if failing else 'confirmed again'}"
        + (f" ({check.get_status_display().lower()})" if failing else ""),
        data={"status": check.status, "ptr_names": check.ptr_names, "detail": check.detail},
        created=check.since,
    )


# --- spikes -----------------------------------------------------------------------------------


def spike_severity(spike: Spike) -> str:
    """Critical when receivers block us or the peak is ten times the baseline."""
    if spike.cause == BLOCKED_AT_RECEIVER or spike.peak >= 10 * max(spike.baseline, 1.0):
        return Severity.CRITICAL
    return Severity.WARNING


@transaction.atomic
def _from_spikes(now: dt.datetime) -> int:
    rows = list(
        Spike.objects.select_for_update().filter(
            Q(processed__isnull=True) | Q(ended__isnull=False, processed__lt=F("ended"))
        )
    )
    events = []
    for spike in rows:
        events.append(_spike_event(spike, opened=True))
        if spike.ended is not None:
            events.append(_spike_event(spike, opened=False))
    count = _store(events)
    Spike.objects.filter(pk__in=[s.pk for s in rows]).update(processed=now)
    return count


MAX_SERIES = 20  # series of an incident named in its alert (most DSNs above usual first)
TOP_KEYS = ("top_sources", "top_recipient_domains", "top_original_domains", "top_statuses")
TOP_KEYS += ("top_refined_classes", "top_reporting_mtas")


def _spike_event(spike: Spike, *, opened: bool) -> Event:
    """One event per incident: its lead series in the subject; the cause, confidence, peak,
    baseline, the series involved and the evidence's top keys as structured data."""
    series = spike.dimension + (f" {spike.value}" if spike.value else "")
    involved = [item for item in spike.series or [] if isinstance(item, dict)]
    others = len(involved) - 1
    if others > 0:
        series += f" and {others} related series"
    severity = spike_severity(spike)
    pools = {item.get("value") for item in involved if item.get("dimension") == "pool"}
    pool = spike.value if spike.dimension == "pool" else (pools.pop() if len(pools) == 1 else "")
    evidence = spike.evidence if isinstance(spike.evidence, dict) else {}
    return Event(
        kind=K.SPIKE_OPENED if opened else K.SPIKE_CLOSED,
        severity=severity if opened else Severity.WARNING,
        source=f"spike:{spike.pk}:{'opened' if opened else 'closed'}",
        pool=pool,
        subject=f"DSN spike {'in' if opened else 'over in'} {series} ({spike.cause})",
        data={
            "spike_id": spike.pk,
            "peak": spike.peak,
            "baseline": round(spike.baseline, 1),
            "cause": spike.cause,
            "confidence": spike.confidence,
            "summary": list(evidence.get("summary", [])),
            "lead": {"dimension": spike.dimension, "value": spike.value},
            "series": [
                {key: item.get(key) for key in ("dimension", "value", "peak", "baseline")}
                for item in involved[:MAX_SERIES]
            ],
            "series_count": len(involved),
            "dimensions": sorted({str(item.get("dimension")) for item in involved}),
            "started": spike.started.isoformat(),
            "ended": spike.ended.isoformat() if spike.ended else None,
        }
        | {key: evidence[key][:5] for key in TOP_KEYS if isinstance(evidence.get(key), list)},
        created=spike.started if opened else spike.ended,
    )


# --- sweeps -----------------------------------------------------------------------------------


def _from_stuck_runs(now: dt.datetime) -> int:
    """A run that did not finish in STUCK_RUN, and a schedule that stopped: no run for three
    sweep intervals after the last one (beat down, or each sweep failing before it starts)."""
    stuck = CheckRun.objects.filter(finished__isnull=True, started__lt=now - STUCK_RUN)
    return _from_missing_runs(now) + _store(
        Event(
            kind=K.SWEEP_FAILED,
            severity=Severity.WARNING,
            source=f"run:{run.pk}",
            subject=f"Blocklist sweep of {run.started:%Y-%m-%d %H:%M} did not finish",
            data={"run_id": run.pk, "chunks": run.chunks, "chunks_done": run.chunks_done},
            created=now,
        )
        for run in stuck
    )


def _from_missing_runs(now: dt.datetime) -> int:
    last = CheckRun.objects.filter(trigger=CheckRun.Trigger.SCHEDULE).order_by("-started").first()
    if last is None or not schedules.sweep_schedule(now).overdue(last.started, now):
        return 0  # the schedule as stored: an admin's 10 minutes, or a disabled sweep
    return _store(
        [
            Event(
                kind=K.SWEEP_FAILED,
                severity=Severity.WARNING,
                source=f"no-sweep-after:{last.pk}",
                subject=f"No blocklist sweep since {last.started:%Y-%m-%d %H:%M}",
                data={"reason": "Scheduled sweeps stopped: check the worker, beat and their logs."},
                created=now,
            )
        ]
    )


def sweep_failed(reason: str, now: dt.datetime | None = None) -> None:
    """Record a sweep that could not start (e.g. a missing access key)."""
    now = now or timezone.now()
    _store(
        [
            Event(
                kind=K.SWEEP_FAILED,
                severity=Severity.WARNING,
                source=f"sweep-failed:{now.isoformat()}",
                subject="Blocklist sweep could not run",
                data={"reason": reason[:500]},
                created=now,
            )
        ]
    )


# --- sender limits (written by routing.limits.restrictions) ---------------------------------

SENDER_RESTRICTED = "sender-restricted"  # a sender reached a limit: alerted, moved or blocked
SENDER_RELEASED = "sender-released"  # an operator released a restricted sender
