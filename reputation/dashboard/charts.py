"""The dashboard's charts: name, title, and the function that builds each figure.

A builder takes keyword arguments `rng` (a TimeRange; not for current-state charts) and
`pool` (a pool name or None) and returns a Plotly figure dict.
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
    uses_traffic: bool = False  # can draw from a traffic() series read once for the page

    def figure(self, *, rng: TimeRange, pool: str | None, series=None) -> dict:
        build = import_string(self.builder)
        if not self.ranged:
            return build(pool=pool)
        if self.uses_traffic and series is not None:
            return build(rng=rng, pool=pool, series=series)
        return build(rng=rng, pool=pool)


CHARTS = {
    chart.name: chart
    for chart in (
        Chart(
            "traffic",
            "Traffic per pool and reason",
            "reputation.dashboard.traffic.traffic_figure",
            "Messages routed per pool, stacked by the reason that chose the pool.",
            uses_traffic=True,
        ),
        Chart(
            "share",
            "Share through the high-risk pool",
            "reputation.dashboard.traffic.high_risk_share_figure",
            "Dashed lines: spam-threshold changes.",
            uses_traffic=True,
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
