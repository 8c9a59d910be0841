"""The dashboard's history charts: DSN volume against its usual band with the spikes on it, the
listing timeline, and sweep health (the current listings are a paged table:
`reputation.dashboard.matrix`).

Each reads grouped or capped rows (a handful of queries per chart, none per bucket, address or
list), so a year of data for a thousand addresses draws about as fast as a day. Points that
link to a detail page carry its URL as `customdata` (the dashboard's click-through contract).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, FloatField, Func, Q, QuerySet, Sum

from reputation.alerts.events import listing_severity, pool_kinds
from reputation.dashboard import figures
from reputation.dashboard.figures import COLOURS, detail_url, iso
from reputation.dashboard.timerange import (
    TimeRange,
    bucket_expression,
    bucket_sql,
    bucket_sums,
    rows_in,
    to_datetime,
)
from reputation.models import CheckRun, Listing, Spike
from reputation.spikes.baseline import (
    HOUR_OF_DAY,
    HOUR_OF_WEEK,
    Thresholds,
    season,
    spread_of,
    threshold_of,
)
from reputation.spikes.detection import thresholds_by_series, thresholds_of
from routing.models import DSNCount, DSNTotal

DAY = timedelta(days=1)
MAX_SPIKES = 200
MAX_SWEEP_POINTS = 400
TOP_ZONES = 10
SPIKE_SETTINGS = ("sensitivity", "min_count", "window_minutes", "days")
SEVERITIES = ("critical", "warning", "info")
SEVERITY_COLOURS = {
    "critical": COLOURS["listed-major"],
    "warning": COLOURS["listed-minor"],
    "info": "#5bc0de",
}


# --- DSN volume --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpikeMark:
    pk: int
    dimension: str
    value: str
    started: datetime
    ended: datetime | None  # None: still going on
    peak: int
    cause: str
    url: str


@dataclass(frozen=True)
class DSNVolume:
    buckets: list[datetime]
    counts: list[int]  # DSNs per bucket, aligned with buckets
    baseline: list[float]  # the detection's baseline of the bucket: the median of its season
    threshold: list[float]  # above this a bucket would be a spike (same rule as detection)
    spikes: list[SpikeMark]  # newest first, at most MAX_SPIKES
    season: str  # the last bucket's: "hour-of-week" or "hour-of-day"


def dsn_volume(*, rng: TimeRange, pool: str | None = None) -> DSNVolume:
    """DSNs per bucket of the range (of one pool, or all), the band that detection would use
    for such a bucket (`reputation.spikes.baseline`: the same bucket on the same weekday of
    previous weeks once three weeks are kept, else on previous days; median, MAD spread and
    its floor), and the spikes overlapping the range. The last bucket of a range ending now
    may still be filling."""
    thresholds = chart_thresholds(pool)
    buckets = rng.buckets()
    oldest = DSNTotal.objects.order_by("hour").values_list("hour", flat=True).first()
    seasons = [
        season(at - oldest if oldest else timedelta(), rng.step, thresholds.days) for at in buckets
    ]
    reach = max((max(x.all_offsets, default=timedelta()) for x in seasons), default=timedelta())
    sums = dsn_sums(start=rng.start - reach, end=rng.end, bucket=rng.bucket, pool=pool)
    # The detection's minimum count is per window; a bucket of another width scales it.
    scaled = replace(
        thresholds, min_count=max(1, round(thresholds.min_count * (rng.step / thresholds.window)))
    )
    baseline, threshold = [], []
    for at, the_season in zip(buckets, seasons, strict=True):
        past = the_season.split([sums.get(at - o, 0) for o in the_season.all_offsets])
        middle, spread = spread_of(*past)
        baseline.append(middle)
        threshold.append(threshold_of(middle, spread, scaled))
    return DSNVolume(
        buckets=buckets,
        counts=[sums.get(at, 0) for at in buckets],
        baseline=baseline,
        threshold=threshold,
        spikes=spikes_in(rng=rng, pool=pool),
        season=seasons[-1].mode if seasons else HOUR_OF_DAY,
    )


def chart_thresholds(pool: str | None) -> Thresholds:
    """The thresholds detection uses for the series charted: all DSNs, or one pool."""
    default, overrides = thresholds_by_series()
    return (
        thresholds_of(default, overrides, "pool", pool)
        if pool
        else thresholds_of(default, overrides, "all", "")
    )


def dsn_sums(*, start: datetime, end: datetime, bucket: str, pool: str | None) -> Counter:
    """{bucket start: DSNs} over [start, end): per-minute rows for minute buckets while they
    are kept, else the hourly totals per pool (every hour); one grouped query."""
    span = TimeRange("custom", start, end, bucket)
    # Per hour, the per-pool totals: DSNHourly's other dimensions would mean 100 times the rows.
    rows, field = rows_in(span, minutes=DSNCount, hours=DSNTotal)
    if pool:
        rows = rows.filter(pool=pool)
    return Counter({key[0]: n for key, n in bucket_sums(rows, field=field, bucket=bucket).items()})


def spikes_in(
    *, rng: TimeRange, pool: str | None = None, limit: int = MAX_SPIKES
) -> list[SpikeMark]:
    """Spikes overlapping the range, newest first. With a pool: the incidents that involve
    that pool's series (or whose lead is all DSNs); an incident of other series only (a
    domain, a status) spans pools, so it is shown only without a pool filter."""
    found = Spike.objects.filter(started__lt=rng.end).filter(
        Q(ended__isnull=True) | Q(ended__gte=rng.start)
    )
    url = detail_url("spike")
    fields = ("pk", "dimension", "value", "started", "ended", "peak", "cause")
    if not pool:
        rows = found.order_by("-started", "-pk").values_list(*fields)[:limit]
        return [SpikeMark(*row, url=url(row[0])) for row in rows]
    marks = []
    # The series involved are JSON, which SQLite cannot search: filtered here, in pages.
    for row in found.order_by("-started", "-pk").values_list(*fields, "series").iterator(500):
        if _involves_pool(row[1], row[2], row[-1], pool):
            marks.append(SpikeMark(*row[:-1], url=url(row[0])))
            if len(marks) >= limit:
                break
    return marks


def _involves_pool(dimension: str, value: str, series: object, pool: str) -> bool:
    if dimension == "all" or (dimension, value) == ("pool", pool):
        return True
    items = series if isinstance(series, list) else []
    return any(
        isinstance(x, dict) and x.get("dimension") == "pool" and x.get("value") == pool
        for x in items
    )


def dsn_figure(*, rng: TimeRange, pool: str | None = None) -> dict:
    """DSN volume, its usual band (detection's baseline and threshold), spikes shaded (click
    one: its page) and changes of the spike settings."""
    volume = dsn_volume(rng=rng, pool=pool)
    x = [iso(at) for at in volume.buckets]
    data = [
        *_band_traces(x, volume),
        {
            "type": "scatter",
            "mode": "lines",
            "name": "DSNs",
            "x": x,
            "y": volume.counts,
            "line": {"color": COLOURS["high-risk"], "width": 2},
        },
        _spike_markers(rng, volume),
        figures.change_markers(rng, fields=SPIKE_SETTINGS),
    ]
    shapes = [_spike_shape(rng, spike) for spike in volume.spikes]
    yaxis = {"rangemode": "tozero", "title": {"text": f"DSNs per {rng.bucket}"}}
    return figures.figure(data, figures.layout(rng, shapes=shapes, yaxis=yaxis))


def _band_traces(x: list[str], volume: DSNVolume) -> list[dict]:
    """The usual level and the spike threshold, shaded between: the band detection uses."""
    line = {"width": 0, "color": COLOURS["normal"]}
    kind = "same hour of the week" if volume.season == HOUR_OF_WEEK else "same hour, previous days"
    return [
        {"type": "scatter", "mode": "lines", "name": f"usual ({kind})", "x": x}
        | {"y": volume.baseline, "line": {"width": 1, "dash": "dot", "color": COLOURS["normal"]}},
        {"type": "scatter", "mode": "lines", "name": "spike threshold", "x": x}
        | {"y": volume.threshold, "line": line, "fill": "tonexty"}
        | {"fillcolor": "rgba(47, 126, 216, 0.15)"},
    ]


def _spike_shape(rng: TimeRange, spike: SpikeMark) -> dict:
    return figures.shade(rng, spike.started, spike.ended, COLOURS["high-risk"], 0.15)


def _spike_markers(rng: TimeRange, volume: DSNVolume) -> dict:
    """One clickable point per spike, on the bucket where it starts (so the unified hover of
    that bucket holds it), as high as the volume gets during the spike."""
    spikes = volume.spikes
    return {
        "type": "scatter",
        "mode": "markers",
        "name": "spikes",
        "x": [iso(rng.floor(max(s.started, rng.start))) for s in spikes],
        "y": [_spike_height(volume, s) for s in spikes],
        "customdata": [s.url for s in spikes],
        "hovertext": [f"spike: {_series(s)}, cause {s.cause}" for s in spikes],
        "hoverinfo": "text",
        "marker": {"symbol": "diamond", "size": 9, "color": COLOURS["high-risk"], "opacity": 0.5},
        "showlegend": bool(spikes),
    }


def _series(spike: SpikeMark) -> str:
    return spike.dimension + (f" {spike.value}" if spike.value else "")


def _spike_height(volume: DSNVolume, spike: SpikeMark) -> int:
    """The most DSNs in a bucket the spike covers; its peak (a window's count) if none."""
    first = max(bisect_right(volume.buckets, spike.started) - 1, 0)
    last = bisect_right(volume.buckets, spike.ended) if spike.ended else len(volume.buckets)
    return max(volume.counts[first:last], default=0) or spike.peak


# --- listing timeline --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListingRow:
    pk: int
    address: str  # an IP address, or a HELO/rDNS name for a domain list
    pool: str
    zone: str
    weight: str
    opened: datetime
    closed: datetime | None  # None: still listed
    codes: list[str]
    meanings: list[str]
    severity: str  # as alerts assign it: critical, warning or info
    url: str  # the address's detail page


@dataclass(frozen=True)
class ListingTimeline:
    rows: list[ListingRow]  # newest first
    total: int  # listings overlapping the range (rows holds at most `limit` of them)


TIMELINE_PAGE = 30  # listings per page: the chart stays under ~800 px


def listing_timeline(
    *, rng: TimeRange, pool: str | None = None, limit: int = 300, offset: int = 0
) -> ListingTimeline:
    """Listings open at some time in [start, end), newest first, at most `limit` from the
    `offset`-th on."""
    found = Listing.objects.filter(opened__lt=rng.end).filter(
        Q(closed__isnull=True) | Q(closed__gt=rng.start)
    )
    if pool:
        found = found.filter(pool=pool)
    fields = ("pk", "address", "pool", "blocklist__zone", "blocklist__weight", "opened")
    rows = list(
        found.order_by("-opened", "-pk").values_list(*fields, "closed", "codes", "meanings")[
            offset : offset + limit
        ]
    )
    kinds, url = pool_kinds(), detail_url("address")
    listed = [
        ListingRow(
            *row,
            severity=listing_severity(kinds.get(row[2]), row[4], opened=True),
            url=url(row[1]),
        )
        for row in rows
    ]
    if len(listed) < limit and (listed or not offset):
        total = offset + len(listed)
    else:
        total = found.count()
    return ListingTimeline(rows=listed, total=total)


def listing_timeline_figure(*, rng: TimeRange, pool: str | None = None, page: int = 1) -> dict:
    """A Gantt chart: one row per address and list, a bar per listed period, coloured by the
    severity alerts give it; clicking a bar opens the address. Newest first, `TIMELINE_PAGE`
    listings a page; `page` past the last shows the last."""
    offset = (page - 1) * TIMELINE_PAGE
    timeline = listing_timeline(rng=rng, pool=pool, limit=TIMELINE_PAGE, offset=offset)
    pages = max(1, -(-timeline.total // TIMELINE_PAGE))
    if page > pages:
        page, offset = pages, (pages - 1) * TIMELINE_PAGE
        timeline = listing_timeline(rng=rng, pool=pool, limit=TIMELINE_PAGE, offset=offset)
    labels = list(dict.fromkeys(_row_label(row) for row in timeline.rows))
    data = []
    for severity in SEVERITIES:
        rows = [row for row in timeline.rows if row.severity == severity]
        if rows:
            data.append(_listing_trace(rng, severity, rows))
    yaxis = {
        "type": "category",
        "categoryorder": "array",
        "categoryarray": labels,
        "autorange": "reversed",  # newest at the top
        "automargin": True,
    }
    layout = figures.layout(
        rng,
        height=max(200, 24 * len(labels) + 90),
        hovermode="closest",
        barmode="overlay",
        yaxis=yaxis,
        legend={"orientation": "h", "y": 1.0, "yanchor": "bottom"},
        margin={"l": 50, "r": 20, "t": 30, "b": 40},
    )
    figure = figures.figure(data, layout)
    figure["page"] = {"number": page, "pages": pages, "total": timeline.total}
    return figure


def _row_label(row: ListingRow) -> str:
    return f"{row.address} · {row.zone}"


def _listing_trace(rng: TimeRange, severity: str, rows: list[ListingRow]) -> dict:
    return {
        "type": "bar",
        "orientation": "h",
        "name": severity,
        "y": [_row_label(row) for row in rows],
        "base": [iso(row.opened) for row in rows],
        "x": [_milliseconds((row.closed or rng.end) - row.opened) for row in rows],
        "customdata": [row.url for row in rows],
        "hovertext": [_listing_text(row) for row in rows],
        "hoverinfo": "text",
        "marker": {"color": SEVERITY_COLOURS[severity]},
    }


def _milliseconds(span: timedelta) -> int:
    return max(0, round(span.total_seconds() * 1000))


def _listing_text(row: ListingRow) -> str:
    codes = ", ".join(f"{c} {m}".strip() for c, m in zip(row.codes, row.meanings, strict=False))
    closed = figures.local_text(row.closed) if row.closed else "still listed"
    return (
        f"{row.address} on {row.zone} ({row.weight}, pool {row.pool or '?'}): {codes or 'listed'}"
        f"<br>{figures.local_text(row.opened)} → {closed}"
    )


# --- sweep health ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepHealth:
    buckets: list[datetime]
    step: timedelta  # the range's bucket, coarsened to keep at most MAX_SWEEP_POINTS points
    sweeps: list[int]  # sweeps started in each bucket
    seconds: list[float | None]  # mean duration of those that finished (None: none did)
    queries: list[int]
    unknown: list[int]  # unknown answers (timeouts, errors, error codes)
    errors: dict[str, list[int]]  # zone -> unknown answers per bucket


class Seconds(Func):
    """Seconds from the first expression to the second, as a float: in SQL on both databases
    (Django's own datetime subtraction is a Python function per row on SQLite)."""

    arity = 2
    output_field = FloatField()
    template = "EXTRACT(EPOCH FROM (%(expressions)s))::double precision"
    arg_joiner = " - "

    def __init__(self, start: str, end: str) -> None:
        super().__init__(end, start)

    def as_sqlite(self, compiler, connection, **extra_context):
        return super().as_sql(
            compiler,
            connection,
            template="((julianday(%(expressions)s)) * 86400.0)",
            arg_joiner=") - julianday(",
            **extra_context,
        )


def sweep_health(*, rng: TimeRange, pool: str | None = None) -> SweepHealth:
    """Sweeps started in the range, per bucket: how many, how long, how many queries and
    unknown answers (in all, and per list). With a pool: its sweeps and those of all pools."""
    count = max(1, math.ceil((rng.end - rng.start) / rng.step))
    factor = math.ceil(count / MAX_SWEEP_POINTS)
    step = rng.step * factor
    buckets = [rng.start + i * step for i in range(math.ceil(count / factor))]
    # A "check now" of one address is no sweep: its second would pull the mean duration down.
    runs = CheckRun.objects.filter(started__gte=rng.start, started__lt=rng.end, address="")
    if pool:
        runs = runs.filter(Q(pool=pool) | Q(pool=""))

    def index(at: datetime) -> int:
        return min((at - rng.start) // step, len(buckets) - 1)

    totals = _run_totals(runs, rng.bucket, index, len(buckets))
    return SweepHealth(
        buckets=buckets,
        step=step,
        sweeps=totals["runs"],
        seconds=[
            s / n if n else None for s, n in zip(totals["seconds"], totals["done"], strict=True)
        ],
        queries=totals["queries"],
        unknown=totals["unknown"],
        errors=_zone_errors(runs, rng.bucket, index, len(buckets)),
    )


def _run_totals(
    runs: QuerySet, bucket: str, index: Callable[[datetime], int], size: int
) -> dict[str, list]:
    """Per coarse bucket: runs, finished runs, their seconds, queries, unknown answers; grouped
    by the range's own bucket in SQL, then folded into the coarse ones."""
    finished = Q(finished__isnull=False)
    grouped = (
        runs.order_by()
        .annotate(pw_bucket=bucket_expression("started", bucket))
        .values("pw_bucket")
        .annotate(
            runs=Count("pk"),
            done=Count("pk", filter=finished),
            seconds=Sum(Seconds("started", "finished"), filter=finished),
            queries=Sum("queries"),
            unknown=Sum("unknown"),
        )
    )
    names = ("runs", "done", "seconds", "queries", "unknown")
    totals: dict[str, list] = {name: [0] * size for name in names}
    for row in grouped:
        i = index(to_datetime(row["pw_bucket"]))
        for name in names:
            totals[name][i] += row[name] or 0
    return totals


def _zone_errors(
    runs: QuerySet, bucket: str, index: Callable[[datetime], int], size: int
) -> dict[str, list[int]]:
    """Unknown answers per list and bucket, from the runs that had any (CheckRun.errors holds
    {zone: {error kind: count}}; a plain {zone: count} is read too). Summed inside the
    database: decoding a year of runs' JSON in Python costs more than the rest of the chart."""
    subquery, params = runs.filter(unknown__gt=0).values("pk").query.sql_with_params()
    sql = ZONE_ERRORS_SQL[connection.vendor].format(
        bucket=bucket_sql("r.started", bucket), runs=subquery
    )
    errors: dict[str, list[int]] = defaultdict(lambda: [0] * size)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        for at, zone, count in cursor.fetchall():
            errors[zone][index(to_datetime(at))] += int(count or 0)
    return dict(errors)


ZONE_ERRORS_SQL = {  # every (run, zone, error kind) count; a bare {zone: n} counts as one kind
    "postgresql": """
        SELECT {bucket}, z.key, SUM((k.value #>> '{{}}')::bigint)
        FROM reputation_checkrun r,
            jsonb_each(CASE WHEN jsonb_typeof(r.errors) = 'object'
                       THEN r.errors ELSE '{{}}'::jsonb END) z,
            jsonb_each(CASE WHEN jsonb_typeof(z.value) = 'object'
                       THEN z.value ELSE jsonb_build_object('n', z.value) END) k
        WHERE r.id IN ({runs}) AND jsonb_typeof(k.value) = 'number'
        GROUP BY 1, 2""",
    "sqlite": """
        SELECT {bucket}, z.key, SUM(k.value)
        FROM reputation_checkrun r,
            json_each(CASE WHEN json_type(r.errors) = 'object' THEN r.errors ELSE '{{}}' END) z,
            json_each(CASE WHEN z.type = 'object' THEN z.value ELSE json_object('n', z.value) END) k
        WHERE r.id IN ({runs}) AND k.type = 'integer'
        GROUP BY 1, 2""",
}


def sweep_figure(*, rng: TimeRange, pool: str | None = None) -> dict:
    """Queries per bucket (bars) with the mean sweep duration (line, right axis) above, and
    unknown answers of the ten lists with the most of them below."""
    health = sweep_health(rng=rng, pool=pool)
    x = [iso(at) for at in health.buckets]
    top = sorted(health.errors.items(), key=lambda item: (-sum(item[1]), item[0]))[:TOP_ZONES]
    data = [
        {
            "type": "bar",
            "name": "queries",
            "x": x,
            "y": health.queries,
            "customdata": health.sweeps,
            "hovertemplate": "%{y} queries in %{customdata} sweeps<extra>queries</extra>",
            "marker": {"color": COLOURS["normal"], "opacity": 0.5},
        },
        {
            "type": "scatter",
            "mode": "lines+markers",
            "name": "mean duration (s)",
            "x": x,
            "y": [None if s is None else round(s, 3) for s in health.seconds],
            "yaxis": "y2",
            "line": {"color": COLOURS["marker"]},
        },
        *(
            {"type": "scatter", "mode": "lines", "name": zone, "x": x, "y": counts, "yaxis": "y3"}
            for zone, counts in top
        ),
    ]
    layout = figures.layout(
        rng,
        height=440,
        margin={"l": 50, "r": 60, "t": 10, "b": 40},  # room for the seconds axis
        yaxis={"domain": [0.4, 1], "rangemode": "tozero", "title": {"text": "queries"}},
        yaxis2={
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "title": {"text": "seconds"},
        },
        yaxis3={
            "domain": [0, 0.3],
            "anchor": "x",
            "rangemode": "tozero",
            "title": {"text": "unknown answers"},
        },
    )
    layout["xaxis"] = layout["xaxis"] | {"anchor": "y3"}  # the time axis under both panels
    return figures.figure(data, layout)
