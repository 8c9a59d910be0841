"""The dashboard's detail pages: one pool address, one blocklist, one DSN spike. Each has a
function returning what the page shows and one returning its chart (a Plotly figure dict).

Every page is a handful of indexed queries whatever the data's age: listings and events are
capped, per-bucket sums are grouped in the database (`timerange.bucket_sums`), and DSN
series read the per-minute and hourly tables over the same span (they never overlap: minute
rows are deleted once rolled up).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from itertools import zip_longest

from django.conf import settings
from django.db.models import F, Q, QuerySet, Value
from django.db.models.fields.json import KeyTransform
from django.utils import timezone

from reputation.blocklists import dnsbl
from reputation.blocklists.listings import last_answered
from reputation.blocklists.sweep import unknown_total
from reputation.dashboard import figures
from reputation.dashboard.figures import COLOURS, detail_url, iso
from reputation.dashboard.timerange import (
    TimeRange,
    bucket_expression,
    bucket_sums,
    rows_in,
    to_datetime,
)
from reputation.models import (
    AddressCheck,
    Blocklist,
    BlocklistEvent,
    CheckRun,
    DSNHourly,
    Listing,
    QueryUsage,
    ReverseDNSCheck,
    Spike,
    SpikeThreshold,
)
from reputation.spikes.baseline import Thresholds
from reputation.spikes.series import DIMENSIONS
from routing.models import AddressCount, DSNCount, PoolAddress

LISTING_CAP = 200
EVENT_CAP = 50
SPIKE_BEFORE = timedelta(hours=6)
SPIKE_AFTER = timedelta(hours=1)
SPIKE_MAX_SPAN = timedelta(days=2)
SPIKE_MINUTE_SPAN = timedelta(hours=12)  # longer series are drawn per hour
DAY = timedelta(days=1)


def span_text(delta: timedelta) -> str:
    """A duration for people: "3 d 4 h", "2 h 5 min", "12 min"."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    days, minutes = divmod(minutes, 1440)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days} d {hours} h"
    return f"{hours} h {minutes} min" if hours else f"{minutes} min"


def local_text(at: datetime) -> str:
    """A time in the active time zone, labelled with it, as templates and charts show it."""
    return figures.local_text(at)


# --- listings, as both the address and the blocklist page show them -------------------------


@dataclass(frozen=True)
class ListingRow:
    address: str  # the listed target: an address, or a HELO/rDNS name on a domain list
    pool: str
    zone: str
    weight: str
    codes: list[str]
    meanings: list[str]
    reason: str
    opened: datetime
    closed: datetime | None
    duration: timedelta  # so far, while open
    delist_url: str
    address_url: str
    blocklist_url: str

    @property
    def is_open(self) -> bool:
        return self.closed is None

    @property
    def duration_text(self) -> str:
        return span_text(self.duration)

    @property
    def codes_text(self) -> str:
        """Each code with its meaning: "127.0.0.2 SBL, 127.0.0.4 XBL"."""
        pairs = zip_longest(self.codes, self.meanings, fillvalue="")
        return ", ".join(f"{code} {meaning}".strip() for code, meaning in pairs)


def listing_row(listing: Listing, now: datetime) -> ListingRow:
    """One listing for display; `listing.blocklist` should be selected with it."""
    blocklist = listing.blocklist
    return ListingRow(
        address=listing.address,
        pool=listing.pool,
        zone=blocklist.zone,
        weight=blocklist.weight,
        codes=list(listing.codes),
        meanings=list(listing.meanings),
        reason=listing.reason,
        opened=listing.opened,
        closed=listing.closed,
        duration=(listing.closed or now) - listing.opened,
        delist_url=blocklist.delist_url,
        address_url=detail_url("address")(listing.address),
        blocklist_url=detail_url("blocklist")(blocklist.pk),
    )


def _open_first(listings: QuerySet) -> QuerySet:
    # Open listings (closed is null) first, newest opened first; then by closing, newest first.
    return listings.order_by(F("closed").desc(nulls_first=True), "-opened", "-id")


# --- one address ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckRow:
    address: str  # the target asked about: the address or its HELO/rDNS name
    zone: str
    status: str  # "listed" or "clean" (unknown answers are never stored)
    codes: list[str]
    checked: datetime
    blocklist_url: str


@dataclass(frozen=True)
class AddressDetail:
    address: str
    pool_address: PoolAddress | None  # with .pool and .ip_range; None: not (any more) in a pool
    rotation: str  # the rotation state in plain words
    listings: list[ListingRow]  # open first, then closed newest first; at most LISTING_CAP
    listings_total: int
    checks: list[CheckRow]  # the latest trusted answer per list
    rdns: ReverseDNSCheck | None  # the latest forward-confirmed reverse DNS check
    traffic: list[tuple[datetime, int]]  # messages routed from the address per bucket
    traffic_bucket: str  # "hour" or "day" (the counts are hourly: never per minute)
    rng: TimeRange


def address_detail(
    *, address: str, rng: TimeRange, now: datetime | None = None
) -> AddressDetail | None:
    """What the address page shows; None for an address of no pool that was never listed.
    A pool address's HELO/rDNS name counts with it (its listings and answers)."""
    now = now or timezone.now()
    address = normalised(address)
    pool_address = _pool_address(address)
    hostname = pool_address.hostname if pool_address else ""
    targets = [address, hostname] if hostname else [address]
    listings = Listing.objects.filter(address__in=targets)
    total = listings.count()
    if pool_address is None and not total:
        return None
    rows = list(_open_first(listings.select_related("blocklist"))[:LISTING_CAP])
    traffic_rng = _traffic_range(rng)
    return AddressDetail(
        address=address,
        pool_address=pool_address,
        rotation=rotation_state(pool_address=pool_address, listings=rows),
        listings=[listing_row(x, now) for x in rows],
        listings_total=total,
        checks=_checks(targets, pool_address.pool.name if pool_address else ""),
        rdns=ReverseDNSCheck.objects.filter(address=address).first(),
        traffic=_traffic(address, traffic_rng),
        traffic_bucket=traffic_rng.bucket,
        rng=rng,
    )


def normalised(address: str) -> str:
    """An address as stored (IPv6 compressed, IPv4-mapped as IPv4), a name lower-case."""
    text = address.strip()
    ip = dnsbl.ip_or_none(text)
    return str(ip) if ip else text.lower().rstrip(".")


def _pool_address(address: str) -> PoolAddress | None:
    # An address column (inet on PostgreSQL) cannot be compared with a host name.
    if dnsbl.ip_or_none(address) is None:
        return None
    found = PoolAddress.objects.select_related("pool", "ip_range").filter(address=address)
    return found.first()


def rotation_state(*, pool_address: PoolAddress | None, listings: Iterable[Listing]) -> str:
    """Whether routing may use the address, and why, in plain words. `listings` are the
    address's listings with their blocklists (only open ones count)."""
    if pool_address is None:
        return "not a pool address"
    if not pool_address.active:
        return f"out: {pool_address.reason or 'taken out of rotation'}"
    if not pool_address.listed:
        return "in rotation"
    if pool_address.keep_in_rotation:
        return "in rotation although listed (admin override)"
    major = sorted(
        (
            x
            for x in listings
            if x.closed is None
            and x.address == pool_address.address
            and x.blocklist.weight == Blocklist.Weight.MAJOR
            and x.blocklist.enabled
        ),
        key=lambda x: x.opened,
    )
    if not major:  # the sweep's rotation state is ahead of (or behind) the listings
        return f"out: listed ({pool_address.listed_reason or 'on a major list'})"
    zones = ", ".join(dict.fromkeys(x.blocklist.zone for x in major))
    return f"out: listed on {zones} since {local_text(major[0].opened)}"


def _checks(targets: list[str], pool: str) -> list[CheckRow]:
    found = AddressCheck.objects.filter(address__in=targets).select_related("blocklist")
    found = list(found.order_by("blocklist__zone", "address"))
    answered = last_answered(found, dict.fromkeys(targets, pool))
    return [
        CheckRow(
            address=c.address,
            zone=c.blocklist.zone,
            status=c.status,
            codes=list(c.codes),
            checked=answered[c.pk],
            blocklist_url=detail_url("blocklist")(c.blocklist_id),
        )
        for c in found
    ]


def _traffic_range(rng: TimeRange) -> TimeRange:
    """The range in buckets the hourly address counts can fill."""
    bucket = "day" if rng.bucket == "day" else "hour"
    at = TimeRange(rng.key, rng.start, rng.end, bucket)
    return TimeRange(rng.key, at.floor(rng.start), rng.end, bucket)


def _traffic(address: str, rng: TimeRange) -> list[tuple[datetime, int]]:
    if dnsbl.ip_or_none(address) is None:
        return [(at, 0) for at in rng.buckets()]
    rows = AddressCount.objects.filter(address=address, hour__gte=rng.start, hour__lt=rng.end)
    sums = bucket_sums(rows, field="hour", bucket=rng.bucket)
    return [(at, sums[(at,)]) for at in rng.buckets()]


def address_figure(*, detail: AddressDetail) -> dict:
    """Messages routed per bucket as bars, each listing period in the range shaded in its
    list's weight colour, with a marker per listing whose hover tells it (click: the list)."""
    rng = detail.rng
    kind = detail.pool_address.pool.kind if detail.pool_address else "normal"
    bars = {
        "type": "bar",
        "name": f"messages per {detail.traffic_bucket}",
        "x": [iso(at) for at, _ in detail.traffic],
        "y": [count for _, count in detail.traffic],
        "marker": {"color": COLOURS.get(kind, COLOURS["normal"])},
    }
    periods = [row for row in detail.listings if _overlaps(row, rng)]
    shapes = [_shade(row, rng) for row in periods]
    data = [bars, _listing_markers(periods, rng)]
    layout = figures.layout(
        rng,
        shapes=shapes,
        yaxis={"rangemode": "tozero", "title": {"text": f"messages per {detail.traffic_bucket}"}},
        yaxis2={"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        hovermode="closest",
    )
    return figures.figure(data, layout)


def _overlaps(row: ListingRow, rng: TimeRange) -> bool:
    return row.opened < rng.end and (row.closed is None or row.closed > rng.start)


def _listing_colour(row: ListingRow) -> str:
    return COLOURS["listed-major" if row.weight == Blocklist.Weight.MAJOR else "listed-minor"]


def _shade(row: ListingRow, rng: TimeRange) -> dict:
    return figures.shade(rng, row.opened, row.closed, _listing_colour(row), 0.2)


def _listing_text(row: ListingRow) -> str:
    until = f"closed {local_text(row.closed)}" if row.closed else "still listed"
    return (
        f"{row.address} on {row.zone} ({row.weight})<br>{row.codes_text}<br>"
        f"opened {local_text(row.opened)}, {until} ({row.duration_text})"
    )


def _listing_markers(rows: list[ListingRow], rng: TimeRange) -> dict:
    # Shapes cannot carry hover text: a marker at the top of each shaded period does.
    return {
        "type": "scatter",
        "mode": "markers",
        "name": "listings",
        "yaxis": "y2",
        "x": [iso(max(row.opened, rng.start)) for row in rows],
        "y": [0.97] * len(rows),
        "text": [_listing_text(row) for row in rows],
        "customdata": [row.blocklist_url for row in rows],
        "hoverinfo": "text",
        "marker": {"symbol": "square", "size": 9, "color": [_listing_colour(r) for r in rows]},
        "showlegend": bool(rows),
    }


# --- one blocklist ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeSeen:
    code: str
    meaning: str
    listings: int  # listings in the range that carried the code


@dataclass(frozen=True)
class BlocklistDay:
    day: date  # UTC
    unknown: int  # unknown answers in the day's runs
    queries: int  # queries sent to the list that day (QueryUsage)
    opened: int  # listings opened that day

    @property
    def error_percent(self) -> float | None:
        """Unknown answers per hundred queries; None on a day without queries."""
        return 100 * self.unknown / self.queries if self.queries else None


@dataclass(frozen=True)
class BlocklistDetail:
    blocklist: Blocklist
    settings: list[tuple[str, str]]  # (label, value) for a summary table
    open_listings: list[ListingRow]  # newest first, at most LISTING_CAP
    closed_listings: list[ListingRow]  # closed in the range, newest first, at most LISTING_CAP
    open_count: int
    opened_in_range: int
    codes_seen: list[CodeSeen]  # most listings first
    days: list[BlocklistDay]  # every day of the range
    events: list[BlocklistEvent]  # the latest up to the range's end, at most EVENT_CAP
    rng: TimeRange


def blocklist_detail(
    *, blocklist: Blocklist, rng: TimeRange, now: datetime | None = None
) -> BlocklistDetail:
    """What the blocklist page shows for the range."""
    now = now or timezone.now()
    listings = Listing.objects.filter(blocklist=blocklist)
    open_now = listings.filter(closed__isnull=True)
    closed = listings.filter(closed__gte=rng.start, closed__lt=rng.end).order_by("-closed", "-id")
    days = blocklist_days(blocklist=blocklist, rng=rng)
    return BlocklistDetail(
        blocklist=blocklist,
        settings=settings_summary(blocklist),
        open_listings=_rows(open_now.order_by("-opened", "-id"), blocklist, now),
        closed_listings=_rows(closed, blocklist, now),
        open_count=open_now.count(),
        opened_in_range=sum(day.opened for day in days),
        codes_seen=codes_seen(listings=listings, rng=rng),
        days=days,
        events=list(
            BlocklistEvent.objects.filter(blocklist=blocklist, created__lt=rng.end).order_by(
                "-created", "-id"
            )[:EVENT_CAP]
        ),
        rng=rng,
    )


def _rows(listings: QuerySet, blocklist: Blocklist, now: datetime) -> list[ListingRow]:
    rows = []
    for listing in listings[:LISTING_CAP]:
        listing.blocklist = blocklist  # known already: no query per row
        rows.append(listing_row(listing, now))
    return rows


def settings_summary(blocklist: Blocklist) -> list[tuple[str, str]]:
    cap = f"{blocklist.daily_cap:,} queries" if blocklist.daily_cap else "none"
    if blocklist.mirror:
        cap = "none (local mirror)"
    self_test = "passing"
    if blocklist.misbehaving:
        self_test = f"misbehaving: {blocklist.misbehaving_reason or 'failed its self-test'}"
    return [
        ("Zone", blocklist.zone),
        ("Kind", blocklist.get_kind_display()),
        ("Weight", blocklist.get_weight_display()),
        ("Enabled", "yes" if blocklist.enabled else "no"),
        ("Self-test", self_test),
        ("Daily cap", cap),
    ]


def codes_seen(*, listings: QuerySet, rng: TimeRange) -> list[CodeSeen]:
    """Per (code, meaning), how many of the listings open at some time in the range had it."""
    in_range = listings.filter(opened__lt=rng.end).filter(
        Q(closed__isnull=True) | Q(closed__gte=rng.start)
    )
    counts: Counter = Counter()
    for codes, meanings in in_range.values_list("codes", "meanings"):
        counts.update(set(zip_longest(codes or [], meanings or [], fillvalue="")))
    ranked = sorted(counts.items(), key=lambda item: (-item[1], str(item[0][0])))
    return [CodeSeen(str(code), str(meaning), n) for (code, meaning), n in ranked]


def blocklist_days(*, blocklist: Blocklist, rng: TimeRange) -> list[BlocklistDay]:
    """Per UTC day of the range: unknown answers, queries and listings opened."""
    first, last = rng.start.astimezone(UTC).date(), (rng.end - timedelta(microseconds=1)).date()
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    unknown = _unknown_per_day(blocklist.zone, rng)
    usage = QueryUsage.objects.filter(blocklist=blocklist, day__gte=first, day__lte=last)
    queries = dict(usage.values_list("day", "queries"))
    opened_rows = Listing.objects.filter(
        blocklist=blocklist, opened__gte=rng.start, opened__lt=rng.end
    ).annotate(pw_one=Value(1))
    opened = bucket_sums(opened_rows, field="opened", bucket="day", value="pw_one")
    return [
        BlocklistDay(
            day=day,
            unknown=unknown[day],
            queries=queries.get(day, 0),
            opened=opened[(_midnight(day),)],
        )
        for day in days
    ]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _unknown_per_day(zone: str, rng: TimeRange) -> Counter:
    # Only the runs with errors on this list, and only this list's part of each run's errors.
    runs = CheckRun.objects.filter(
        started__gte=rng.start, started__lt=rng.end, errors__has_key=zone
    ).values_list(bucket_expression("started", "day"), KeyTransform(zone, "errors"))
    per_day: Counter = Counter()
    for day, errors in runs:
        per_day[to_datetime(day).date()] += unknown_total(errors)
    return per_day


def blocklist_figure(*, detail: BlocklistDetail) -> dict:
    """Unknown answers (% of queries) per day as a line; listings opened per day as bars on
    a second axis."""
    x = [iso(_midnight(day.day)) for day in detail.days]
    per_day = {"xperiod": DAY.total_seconds() * 1000, "xperiodalignment": "middle"}
    errors = {
        "type": "scatter",
        "mode": "lines+markers",
        "name": "unknown answers (% of queries)",
        "x": x,
        "y": [_rounded(day.error_percent) for day in detail.days],
        "text": [f"{day.unknown} unknown / {day.queries} queries" for day in detail.days],
        "line": {"color": COLOURS["unknown"]},
        **per_day,
    }
    opened = {
        "type": "bar",
        "name": "listings opened",
        "yaxis": "y2",
        "x": x,
        "y": [day.opened for day in detail.days],
        "marker": {"color": COLOURS["listed-major"], "opacity": 0.6},
        **per_day,
    }
    first, last = detail.days[0].day, detail.days[-1].day
    layout = figures.layout(
        detail.rng,
        xaxis=figures.time_axis(detail.rng)
        | {"range": [iso(_midnight(first)), iso(_midnight(last) + DAY)]},
        yaxis={"rangemode": "tozero", "title": {"text": "unknown answers %"}},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "title": {"text": "listings opened"},
        },
    )
    return figures.figure([opened, errors], layout)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


# --- one DSN spike ----------------------------------------------------------------------------

TABLES = {
    "top_sources": "Top sources",
    "top_recipient_domains": "Top DSN recipient domains",
    "top_original_domains": "Top original-recipient domains",
    "top_statuses": "Top statuses",
    "top_refined_classes": "Top refined classes",
    "top_reporting_mtas": "Top reporting MTAs",
    "source_baselines": "Usual DSNs per window, by source",
}


@dataclass(frozen=True)
class EvidenceTable:
    key: str
    title: str
    rows: list[tuple[str, float]]  # (label, count), most first


@dataclass(frozen=True)
class CauseCase:
    name: str
    confidence: float
    lines: list[str]


@dataclass(frozen=True)
class EvidenceView:
    summary: list[str]  # why the likely cause was chosen
    total: int | None  # DSNs in the window judged
    tables: list[EvidenceTable]
    causes: list[CauseCase]  # every cause's case, most likely first
    raw: list[tuple[str, str]]  # keys this page does not know (or cannot read), as stored


@dataclass(frozen=True)
class SpikeDetail:
    spike: Spike  # dimension, value, started, ended, peak, baseline, cause, confidence, evidence
    rng: TimeRange  # the span of the series: 6 h before the spike to 1 h after (at most 2 d)
    series: list[tuple[datetime, int]]  # the series' DSNs per bucket of rng
    window_minutes: int  # the detection window `spike.baseline` and `spike.peak` count
    baseline_per_bucket: float
    evidence: EvidenceView
    involved: list[dict]  # every series of the incident (Spike.series)


def spike_detail(*, spike: Spike, now: datetime | None = None) -> SpikeDetail:
    """What the spike page shows: the series around the spike with its usual level per
    bucket, and the evidence for people to read."""
    now = now or timezone.now()
    rng = spike_range(spike=spike, now=now)
    window = window_minutes(dimension=spike.dimension, value=spike.value)
    return SpikeDetail(
        spike=spike,
        rng=rng,
        series=series(dimension=spike.dimension, value=spike.value, rng=rng),
        window_minutes=window,
        baseline_per_bucket=spike.baseline / window * (rng.step / timedelta(minutes=1)),
        evidence=evidence_view(spike.evidence),
        involved=[item for item in spike.series or [] if isinstance(item, dict)][:50],
    )


def spike_range(*, spike: Spike, now: datetime) -> TimeRange:
    """From 6 h before the spike to 1 h after its end (or now), at most 2 days from its
    start (its onset is what explains it); per hour when longer than 12 h or older than the
    per-minute retention."""
    start = spike.started - SPIKE_BEFORE
    end = min((spike.ended or now) + SPIKE_AFTER, start + SPIKE_MAX_SPAN, max(now, spike.started))
    minutes_kept = now - timedelta(days=settings.POOLWARDEN_DSN_MINUTE_DAYS)
    long = end - start > SPIKE_MINUTE_SPAN or start < minutes_kept
    bucket = "hour" if long else "minute"
    floor = TimeRange("custom", start, end, bucket).floor(start)
    return TimeRange("custom", floor, end, bucket)


def window_minutes(*, dimension: str, value: str) -> int:
    """The detection window of the series: its own threshold row, its dimension's, or the
    global one (as detection chooses them)."""
    rows = SpikeThreshold.objects.filter(enabled=True).filter(
        Q(dimension="", value="") | Q(dimension=dimension, value__in=[value, ""])
    )
    found = {(row.dimension, row.value): row.window_minutes for row in rows}
    for key in ((dimension, value), (dimension, ""), ("", "")):
        if found.get(key):
            return found[key]
    return Thresholds().window_minutes


def series(*, dimension: str, value: str, rng: TimeRange) -> list[tuple[datetime, int]]:
    """DSNs of one series per bucket of `rng`, zeros filled in: per-minute rows for minute
    buckets while they are kept, else the hourly rows (every hour)."""
    rows, field = rows_in(rng, minutes=DSNCount, hours=DSNHourly)
    sums = bucket_sums(_one_series(rows, dimension, value), field=field, bucket=rng.bucket)
    return [(at, sums[(at,)]) for at in rng.buckets()]


def _one_series(rows: QuerySet, dimension: str, value: str) -> QuerySet:
    expression = DIMENSIONS[dimension]
    if expression is None:
        return rows
    return rows.alias(pw_series=expression).filter(pw_series=value)


def evidence_view(evidence: object) -> EvidenceView:
    """`Spike.evidence` (see detection.evidence_document) ready for display."""
    if not isinstance(evidence, dict):
        return EvidenceView([], None, [], [], [("evidence", _raw(evidence))])
    tables, causes, raw = [], [], []
    for key, item in evidence.items():
        if key in ("summary", "total"):
            continue
        parsed = _table(key, item) if key in TABLES else None
        cases = _causes(item) if key == "causes" else None
        if parsed is not None:
            tables.append(parsed)
        elif cases is not None:
            causes = cases
        else:
            raw.append((key, _raw(item)))
    summary = evidence.get("summary", [])
    if not isinstance(summary, list):
        summary, raw = [], [("summary", _raw(summary)), *raw]
    total = evidence.get("total")
    return EvidenceView(
        summary=[str(line) for line in summary],
        total=total if isinstance(total, int) else None,
        tables=sorted(tables, key=lambda t: list(TABLES).index(t.key)),
        causes=causes,
        raw=raw,
    )


def _table(key: str, item: object) -> EvidenceTable | None:
    pairs = item.items() if isinstance(item, dict) else item
    if not isinstance(pairs, Iterable) or isinstance(pairs, str):
        return None
    rows = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            return None
        label, count = pair
        if not isinstance(count, int | float):
            return None
        rows.append((str(label), round(count, 1) if isinstance(count, float) else count))
    rows.sort(key=lambda row: -row[1])
    return EvidenceTable(key, TABLES[key], rows)


def _causes(item: object) -> list[CauseCase] | None:
    if not isinstance(item, list):
        return None
    try:
        return [
            CauseCase(str(c["name"]), float(c.get("confidence", 0)), list(c.get("evidence", [])))
            for c in item
        ]
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


def _raw(item: object) -> str:
    return json.dumps(item, ensure_ascii=False, default=str)


def spike_figure(*, detail: SpikeDetail) -> dict:
    """The series as a line, its usual level per bucket as a dashed line, the spike shaded."""
    rng, spike = detail.rng, detail.spike
    label = spike.dimension + (f" {spike.value}" if spike.value else "")
    line = {
        "type": "scatter",
        "mode": "lines",
        "name": f"DSNs per {rng.bucket} ({label})",
        "x": [iso(at) for at, _ in detail.series],
        "y": [count for _, count in detail.series],
        "line": {"color": COLOURS["high-risk"]},
    }
    usual = {
        "type": "scatter",
        "mode": "lines",
        "name": f"usual: {detail.baseline_per_bucket:.3g} per {rng.bucket}",
        "x": [iso(rng.start), iso(rng.end)],
        "y": [detail.baseline_per_bucket] * 2,
        "line": {"color": COLOURS["normal"], "dash": "dash"},
        "hoverinfo": "name",
    }
    shade = figures.shade(rng, spike.started, spike.ended, COLOURS["high-risk"], 0.12)
    yaxis = {"rangemode": "tozero", "title": {"text": f"DSNs per {rng.bucket}"}}
    return figures.figure([line, usual], figures.layout(rng, shapes=[shade], yaxis=yaxis))
