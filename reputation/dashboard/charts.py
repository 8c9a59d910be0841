"""The dashboard's charts: name, title, and the function that builds each figure.

A builder takes keyword arguments `rng` (a TimeRange; not for current-state charts), `pool`
(a pool name or None) and, for a paged chart, `page` (from 1), and returns a Plotly figure
dict; a paged chart's figure also has `"page": {"number", "pages", "total"}`.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.module_loading import import_string

from reputation.dashboard.timerange import TimeRange


@dataclass(frozen=True)
class Chart:
    name: str
    title: str
    builder: str  # dotted path
    help: str = ""
    ranged: bool = True  # False: shows the current state, no time range
    paged: bool = False  # True: grows with the data, so drawn a page at a time

    def figure(self, *, rng: TimeRange, pool: str | None, page: int = 1) -> dict:
        build = import_string(self.builder)
        if not self.ranged:
            return build(pool=pool)
        if self.paged:
            return build(rng=rng, pool=pool, page=page)
        return build(rng=rng, pool=pool)


CHARTS = {
    chart.name: chart
    for chart in (
        Chart(
            "traffic",
            "Traffic per pool and reason",
            "reputation.dashboard.traffic.traffic_figure",
            "Messages routed per pool, stacked by the reason that chose the pool.",
        ),
        Chart(
            "share",
            "Share through the high-risk pool",
            "reputation.dashboard.traffic.high_risk_share_figure",
            "Dashed lines: spam-threshold changes.",
        ),
        Chart(
            "dsn",
            "DSN volume",
            "reputation.dashboard.history.dsn_figure",
            "Band: the same hours on the previous 7 days. Shaded: spikes (click one to open it).",
        ),
        Chart(
            "listings",
            "Listing timeline",
            "reputation.dashboard.history.listing_timeline_figure",
            "One row per address and list; bars are listed periods, coloured by severity.",
            paged=True,
        ),
        Chart(
            "sweeps",
            "Sweep health",
            "reputation.dashboard.history.sweep_figure",
            "Duration, queries, and unknown answers (timeouts, errors) per list.",
        ),
        Chart(
            "scores",
            "Spam-score distribution",
            "reputation.dashboard.traffic.score_figure",
            "Scored messages per half point; the line is the current spam threshold.",
        ),
    )
}
