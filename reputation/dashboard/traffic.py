"""The dashboard's traffic charts: messages per pool and routing reason, the share of mail sent
through high-risk pools, and the spam-score distribution.

Routing counts are kept per minute (RoutingCount, the recent POOLWARDEN_DSN_MINUTE_DAYS) and
per hour (RoutingHourly, every hour) and per day (RoutingDaily): a range reads the table of its
bucket (`timerange.source`). All grouping happens in the database.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC

from django.db.models import Sum

from reputation.dashboard import figures
from reputation.dashboard.figures import COLOURS, REASON_ORDER, iso
from reputation.dashboard.timerange import TimeRange, bucket_sums, rows_in
from routing.models import (
    Pool,
    RoutingCount,
    RoutingDaily,
    RoutingHourly,
    RoutingPolicy,
    ScoreCount,
    SettingChange,
)

REASON_LABELS = {
    "dsn": "DSN",
    "no-a-mx": "no A/MX",
    "spam-score": "spam score",
    "dns-unknown": "DNS failure",
    "fallback": "fallback",
    "none": "no rule",
}
MAX_THRESHOLD_LINES = 50  # more would hide the share line; change_markers still shows all


def primary_reason(reasons: str) -> str:
    """The reason a message counts under: the first of its reasons in REASON_ORDER. A reason
    this module does not know (added to the engine later) stays visible under its own name."""
    parts = reasons.split("+")
    return next((r for r in REASON_ORDER if r in parts), parts[0] or "none")


def _reason_rank(reason: str) -> int:
    return REASON_ORDER.index(reason) if reason in REASON_ORDER else len(REASON_ORDER)


def _routing_sums(*, rng: TimeRange, by: tuple[str, ...], pool: str | None = None) -> Counter:
    """Messages per (bucket, *by) over [start, end)."""
    rows, field = rows_in(rng, minutes=RoutingCount, hours=RoutingHourly, days=RoutingDaily)
    if pool:
        rows = rows.filter(pool=pool)
    return bucket_sums(rows, field=field, bucket=rng.bucket, by=by)


def _pool_kinds() -> dict[str, str]:
    return dict(Pool.objects.values_list("name", "kind"))


def _pool_order(name: str, kinds: dict[str, str]) -> tuple[bool, str]:
    # Normal pools first (at the bottom of the stack), then high-risk ones.
    return (kinds.get(name) == Pool.Kind.HIGH_RISK, name)


Series = dict[tuple[str, str], list[int]]


def traffic(*, rng: TimeRange, pool: str | None = None) -> Series:
    """{(pool name, primary reason): messages per bucket of `rng.buckets()`}, zeros filled in,
    ordered normal pools first and reasons in REASON_ORDER. Only pairs with mail are present;
    `pool` keeps one pool."""
    index = {at: i for i, at in enumerate(rng.buckets())}
    series: Series = defaultdict(lambda: [0] * len(index))
    for (at, pool_name, reasons), count in _routing_sums(
        rng=rng, by=("pool", "reasons"), pool=pool
    ).items():
        if at in index and count:
            series[(pool_name, primary_reason(reasons))][index[at]] += count
    kinds = _pool_kinds()
    order = sorted(series, key=lambda k: (_pool_order(k[0], kinds), _reason_rank(k[1])))
    return {key: series[key] for key in order}


def traffic_figure(
    *, rng: TimeRange, pool: str | None = None, series: Series | None = None
) -> dict:
    """Stacked areas of messages per bucket, one per pool and reason, with the setting changes.
    `series` is `traffic(rng=rng, pool=pool)` when the caller has it already."""
    series = traffic(rng=rng, pool=pool) if series is None else series
    x = [iso(at) for at in rng.buckets()]
    data = [
        {
            "type": "scatter",
            "mode": "lines",
            "stackgroup": "traffic",
            "name": f"{pool_name} · {REASON_LABELS.get(reason, reason)}",
            "x": x,
            "y": counts,
            "line": {"width": 0.5},
        }
        for (pool_name, reason), counts in series.items()
    ]
    data.append(figures.change_markers(rng))
    yaxis = {"rangemode": "tozero", "title": {"text": f"messages per {rng.bucket}"}}
    return figures.figure(data, figures.layout(rng, yaxis=yaxis))


def _high_risk_pools(pool: str | None) -> list[str]:
    names = list(Pool.objects.filter(kind=Pool.Kind.HIGH_RISK).values_list("name", flat=True))
    return [pool] if pool in names else names


def high_risk_share(
    *, rng: TimeRange, pool: str | None = None, series: Series | None = None
) -> list[float | None]:
    """Per bucket of `rng.buckets()`, the share (0..1) of all mail that went through a
    high-risk pool, or None for a bucket without mail. Pool kinds are today's: a pool no
    longer configured counts as normal. When `pool` names a high-risk pool the share is that
    pool's alone (still out of all mail); any other `pool` is ignored.

    `series` is an unfiltered `traffic(rng=rng)` when the caller has it already (the same
    page draws both charts: this saves reading the routing counts twice)."""
    series = traffic(rng=rng) if series is None else series
    high = set(_high_risk_pools(pool))
    size = len(rng.buckets())
    totals, risky = [0] * size, [0] * size
    for (pool_name, _reason), counts in series.items():
        for i, count in enumerate(counts):
            totals[i] += count
            if pool_name in high:
                risky[i] += count
    return [r / t if t else None for r, t in zip(risky, totals, strict=True)]


def _number(text: str) -> str:
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def threshold_changes(*, rng: TimeRange) -> list[SettingChange]:
    """The spam-threshold changes in the range, oldest first (at most MAX_THRESHOLD_LINES)."""
    changes = SettingChange.objects.filter(
        field="spam_threshold", created__gte=rng.start, created__lt=rng.end
    )
    return list(changes.order_by("created", "id")[:MAX_THRESHOLD_LINES])


def _threshold_marks(changes: list[SettingChange]) -> tuple[list[dict], list[dict]]:
    """Layout shapes (dashed vertical lines) and annotations for threshold changes."""
    shapes, notes = [], []
    for change in changes:
        at = iso(change.created)
        line = {"type": "line", "xref": "x", "yref": "paper", "x0": at, "x1": at, "y0": 0, "y1": 1}
        shapes.append(line | {"line": {"dash": "dash", "width": 1, "color": COLOURS["marker"]}})
        text = f"threshold {_number(change.old)} → {_number(change.new)} ({change.username})"
        notes.append(
            {
                "x": at,
                "xref": "x",
                "y": 1,
                "yref": "paper",
                "text": text,
                "showarrow": False,
                "xanchor": "right",  # recent changes sit at the right edge
                "yanchor": "top",
                "font": {"size": 10},
            }
        )
    return shapes, notes


def high_risk_share_figure(
    *, rng: TimeRange, pool: str | None = None, series: Series | None = None
) -> dict:
    """The high-risk share in percent, threshold changes as dashed lines, all setting changes
    as markers. `series` as for `high_risk_share`."""
    shares = high_risk_share(rng=rng, pool=pool, series=series)
    line = {
        "type": "scatter",
        "mode": "lines+markers",  # an hour with mail between empty ones still shows
        "marker": {"size": 4},
        "name": f"{pool} share" if _high_risk_pools(pool) == [pool] else "high-risk share",
        "x": [iso(at) for at in rng.buckets()],
        "y": [None if s is None else round(s * 100, 2) for s in shares],
        "line": {"color": COLOURS["high-risk"]},
        "connectgaps": False,
    }
    shapes, notes = _threshold_marks(threshold_changes(rng=rng))
    yaxis = {"range": [0, 100], "ticksuffix": "%", "title": {"text": "through high-risk pools"}}
    layout = figures.layout(rng, yaxis=yaxis, shapes=shapes, annotations=notes)
    return figures.figure([line, figures.change_markers(rng)], layout)


def score_distribution(
    *, rng: TimeRange, pool: str | None = None
) -> dict[str, list[tuple[float, int]]]:
    """{pool name: [(bin's lowest score, messages), ...]} for scored messages on the UTC days
    from `rng.start`'s day to `rng.end` (scores are counted per day); bins are half a point
    wide, sorted, and only bins with messages are listed. Normal pools first."""
    start = rng.start.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    rows = ScoreCount.objects.filter(day__gte=start, day__lt=rng.end)
    if pool:
        rows = rows.filter(pool=pool)
    # No time axis here, so a plain grouped sum (bucket_sums would group per bucket too).
    grouped = rows.order_by().values("pool", "bin").annotate(n=Sum("count"))
    bins: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for row in grouped.order_by("pool", "bin"):
        if row["n"]:
            bins[row["pool"]].append((row["bin"] / 2, row["n"]))
    kinds = _pool_kinds()
    return {name: bins[name] for name in sorted(bins, key=lambda n: _pool_order(n, kinds))}


def score_figure(*, rng: TimeRange, pool: str | None = None) -> dict:
    """Stacked bars of messages per half-point score bin, one trace per pool, and a vertical
    line at the current spam threshold."""
    kinds = _pool_kinds()
    data = [
        {
            "type": "bar",
            "name": name,
            "x": [low for low, _ in bins],
            "y": [count for _, count in bins],
            "width": 0.5,
            "offset": 0,  # a bar spans its bin [low, low + 0.5), not centred on it
            "marker": {"color": COLOURS.get(kinds.get(name, "normal"), COLOURS["normal"])},
            "hovertext": [f"{low:g} to {low + 0.5:g}" for low, _ in bins],
            "hovertemplate": "%{hovertext}: %{y} messages<extra>" + name + "</extra>",
        }
        for name, bins in score_distribution(rng=rng, pool=pool).items()
    ]
    threshold = RoutingPolicy.load().spam_threshold
    line = {"type": "line", "xref": "x", "yref": "paper", "x0": threshold, "x1": threshold}
    shape = line | {"y0": 0, "y1": 1, "line": {"dash": "dash", "color": COLOURS["marker"]}}
    note = {
        "x": threshold,
        "xref": "x",
        "y": 1,
        "yref": "paper",
        "showarrow": False,
        "text": f"spam threshold {threshold:g}",
        "xanchor": "left",
        "yanchor": "top",
    }
    layout = figures.layout(
        rng,
        barmode="stack",
        hovermode="closest",
        xaxis={"type": "linear", "title": {"text": "spam score"}, "dtick": 1},
        yaxis={"rangemode": "tozero", "title": {"text": "messages"}},
        shapes=[shape],
        annotations=[note],
    )
    return figures.figure(data, layout)
