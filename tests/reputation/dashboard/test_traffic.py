"""The traffic charts: messages per pool and primary reason, the high-risk share with the
spam-threshold changes, and the spam-score distribution."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F

from reputation.dashboard import timerange
from reputation.dashboard.timerange import TimeRange
from reputation.dashboard.traffic import (
    high_risk_share,
    high_risk_share_figure,
    primary_reason,
    score_distribution,
    score_figure,
    traffic,
    traffic_figure,
)
from routing.models import (
    Pool,
    RoutingCount,
    RoutingDaily,
    RoutingHourly,
    RoutingPolicy,
    ScoreCount,
    SettingChange,
)

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
DAY = timerange.parse("24h", now=NOW)  # 24 hourly buckets from 2026-11-26 14:00


def routed(at: datetime, pool: str, reasons: str, count: int, source: str = "") -> None:
    """As a flush writes it: the minute's row, and the same count added to its hour."""
    RoutingCount.objects.create(minute=at, pool=pool, reasons=reasons, source=source, count=count)
    routed_hourly(at.replace(minute=0, second=0, microsecond=0), pool, reasons, count, source)


def routed_hourly(at: datetime, pool: str, reasons: str, count: int, source: str = "") -> None:
    """An hour as the flushes left it once its minutes expired: its hourly and daily rows."""
    row, _ = RoutingHourly.objects.get_or_create(hour=at, pool=pool, reasons=reasons, source=source)
    RoutingHourly.objects.filter(pk=row.pk).update(count=F("count") + count)
    day = at.replace(hour=0)
    row, _ = RoutingDaily.objects.get_or_create(day=day, pool=pool, reasons=reasons)
    RoutingDaily.objects.filter(pk=row.pk).update(count=F("count") + count)


def at_bucket(rng: TimeRange, at: datetime) -> int:
    return rng.buckets().index(at)


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        ("none", "none"),
        ("spam-score", "spam-score"),
        ("dsn+spam-score", "dsn"),
        ("no-a-mx+spam-score", "no-a-mx"),
        ("dns-unknown+spam-score", "spam-score"),
        ("dns-unknown+fallback", "dns-unknown"),
        ("dsn+fallback+no-a-mx", "dsn"),
        ("graylisted", "graylisted"),
    ],
)
def test_a_message_counts_under_its_first_reason_in_stacking_order(reasons, expected):
    """Several reasons count once, under the first in REASON_ORDER; an unknown reason keeps
    its own name rather than hiding among normal mail."""
    assert primary_reason(reasons) == expected


@pytest.mark.django_db
def test_counts_land_in_their_bucket_and_primary_reason():
    """Minute rows are summed per hour bucket and per (pool, primary reason), zeros filled,
    normal pools first and reasons in stacking order; rows outside [start, end) are left out."""
    three_ago = NOW - timedelta(hours=3)
    routed(three_ago + timedelta(minutes=5), "normal", "none", 10, source="192.0.2.1")
    routed(three_ago + timedelta(minutes=59), "normal", "none", 5, source="192.0.2.2")
    routed(NOW - timedelta(hours=1), "high-risk", "dsn+spam-score", 3)
    routed(NOW - timedelta(hours=1), "high-risk", "dsn", 4)
    routed(NOW - timedelta(hours=1), "high-risk", "no-a-mx+spam-score", 2)
    routed(NOW - timedelta(hours=1), "high-risk", "spam-score", 6)
    routed(NOW, "normal", "none", 99)  # the end is exclusive
    routed(DAY.start - timedelta(minutes=1), "normal", "none", 99)

    series = traffic(rng=DAY)

    assert list(series) == [
        ("normal", "none"),
        ("high-risk", "dsn"),
        ("high-risk", "no-a-mx"),
        ("high-risk", "spam-score"),
    ]
    assert all(len(counts) == 24 for counts in series.values())
    normal = series[("normal", "none")]
    assert normal[at_bucket(DAY, three_ago)] == 15
    assert sum(normal) == 15
    assert series[("high-risk", "dsn")][23] == 7
    assert series[("high-risk", "no-a-mx")][23] == 2
    assert series[("high-risk", "spam-score")] == [0] * 23 + [6]


@pytest.mark.django_db
def test_minute_and_hourly_tables_are_both_counted_once():
    """A year's range reads the daily rows only (they hold every day, old and recent), each
    once; the per-minute and per-hour copies of recent days are not added again."""
    year = timerange.parse("1y", now=NOW)
    old_day = datetime(2026, 6, 1, tzinfo=UTC)
    routed_hourly(old_day + timedelta(hours=10), "normal", "none", 100, source="a")
    routed_hourly(old_day + timedelta(hours=10), "normal", "none", 20, source="b")
    routed_hourly(old_day + timedelta(hours=23), "normal", "spam-score", 7)
    routed_hourly(year.start - timedelta(hours=1), "normal", "none", 1000)  # before the range
    recent = NOW - timedelta(days=2, minutes=30)
    routed(recent, "normal", "none", 3)
    routed(recent + timedelta(minutes=1), "normal", "none", 4)

    series = traffic(rng=year)

    normal = series[("normal", "none")]
    assert normal[at_bucket(year, old_day)] == 120
    assert normal[at_bucket(year, datetime(2026, 11, 25, tzinfo=UTC))] == 7
    assert sum(normal) == 127
    assert sum(series[("normal", "spam-score")]) == 7


@pytest.mark.django_db
def test_pool_filter_keeps_one_pool():
    """With `pool` set only that pool's series are returned, on both tables."""
    routed(NOW - timedelta(hours=2), "normal", "none", 10)
    routed(NOW - timedelta(hours=2), "high-risk", "spam-score", 4)
    routed_hourly(NOW - timedelta(hours=5), "high-risk", "dsn", 2)
    routed_hourly(NOW - timedelta(hours=5), "normal", "none", 8)

    assert set(traffic(rng=DAY)) == {
        ("normal", "none"),
        ("high-risk", "spam-score"),
        ("high-risk", "dsn"),
    }
    only = traffic(rng=DAY, pool="high-risk")
    assert set(only) == {("high-risk", "spam-score"), ("high-risk", "dsn")}
    assert sum(only[("high-risk", "dsn")]) == 2


@pytest.mark.django_db
def test_traffic_figure_stacks_a_trace_per_pool_and_reason_then_the_change_markers():
    """One stacked trace per pool and reason with human labels, y aligned with the buckets,
    and the setting-change markers last."""
    routed(NOW - timedelta(hours=2), "normal", "none", 10)
    routed(NOW - timedelta(hours=2), "high-risk", "dns-unknown+spam-score", 4)
    SettingChange.objects.create(
        created=NOW - timedelta(hours=4), username="olivia", field="on_dns_failure", old="a"
    )

    fig = traffic_figure(rng=DAY)

    names = [trace["name"] for trace in fig["data"]]
    assert names == ["normal · no rule", "high-risk · spam score", "setting changes"]
    first = fig["data"][0]
    assert first["stackgroup"] == fig["data"][1]["stackgroup"]
    assert first["x"][0] == "2026-11-26T14:00:00"
    assert first["y"][22] == 10 and sum(first["y"]) == 10
    assert fig["data"][-1]["x"] == ["2026-11-27T10:00:00"]
    json.dumps(fig)


@pytest.mark.django_db
def test_high_risk_share_counts_high_risk_pools_out_of_all_mail():
    """The share is high-risk mail over all mail per bucket (None without mail); a pool no
    longer configured counts as normal."""
    Pool.objects.create(name="quarantine", kind=Pool.Kind.HIGH_RISK)
    routed(NOW - timedelta(hours=2), "normal", "none", 30)
    routed(NOW - timedelta(hours=2), "high-risk", "spam-score", 6)
    routed(NOW - timedelta(hours=2), "quarantine", "dsn", 4)
    routed_hourly(NOW - timedelta(hours=5), "retired", "spam-score", 5)

    shares = high_risk_share(rng=DAY)

    assert shares[22] == pytest.approx(0.25)  # 12:00
    assert shares[19] == 0.0  # 09:00
    assert shares.count(None) == 22


@pytest.mark.django_db
def test_high_risk_share_of_one_high_risk_pool():
    """Naming a high-risk pool gives its share of all mail; naming a normal pool changes
    nothing."""
    Pool.objects.create(name="quarantine", kind=Pool.Kind.HIGH_RISK)
    routed(NOW - timedelta(hours=2), "normal", "none", 30)
    routed(NOW - timedelta(hours=2), "high-risk", "spam-score", 6)
    routed(NOW - timedelta(hours=2), "quarantine", "dsn", 4)

    assert high_risk_share(rng=DAY, pool="quarantine")[22] == pytest.approx(0.1)
    assert high_risk_share(rng=DAY, pool="normal")[22] == pytest.approx(0.25)


@pytest.mark.django_db
def test_share_and_traffic_figure_reuse_a_series_the_caller_already_read():
    """Given a traffic() result, the share and the traffic chart draw from it instead of
    reading the routing counts again."""
    routed(NOW - timedelta(hours=2), "normal", "none", 1000)  # ignored: the series is given
    series = {("normal", "none"): [3] + [0] * 23, ("high-risk", "dsn"): [1] + [0] * 23}

    assert high_risk_share(rng=DAY, series=series)[:2] == [0.25, None]
    fig = traffic_figure(rng=DAY, series=series)
    assert [trace["y"][0] for trace in fig["data"][:2]] == [3, 1]
    assert sum(fig["data"][0]["y"]) == 3


@pytest.mark.django_db
def test_threshold_changes_are_dashed_lines_with_who_and_what():
    """Each spam-threshold change in the range is a dashed vertical line at its time, labelled
    old → new and who; other changes appear only as markers."""
    routed(NOW - timedelta(hours=6), "normal", "none", 3)
    routed(NOW - timedelta(hours=6), "high-risk", "spam-score", 1)
    change = dict(model="routing.routingpolicy", object_id="1", object_repr="threshold 3")
    SettingChange.objects.create(
        created=NOW - timedelta(hours=5, minutes=30),
        username="olivia",
        field="spam_threshold",
        old="5.0",
        new="3.0",
        **change,
    )
    SettingChange.objects.create(
        created=NOW - timedelta(days=3), username="olivia", field="spam_threshold", **change
    )
    SettingChange.objects.create(
        created=NOW - timedelta(hours=1), username="victor", field="on_dns_failure", **change
    )

    fig = high_risk_share_figure(rng=DAY)

    [shape] = fig["layout"]["shapes"]
    assert shape["x0"] == shape["x1"] == "2026-11-27T08:30:00"
    assert (shape["xref"], shape["yref"], shape["line"]["dash"]) == ("x", "paper", "dash")
    [note] = fig["layout"]["annotations"]
    assert note["text"] == "threshold 5 → 3 (olivia)"
    assert note["x"] == "2026-11-27T08:30:00"
    share, markers = fig["data"]
    assert share["y"][18] == 25.0  # 08:00
    assert share["y"][0] is None
    assert len(markers["x"]) == 2
    json.dumps(fig)


@pytest.mark.django_db
def test_score_distribution_sums_half_point_bins_per_pool_over_the_days_of_the_range():
    """Bins are summed per pool over the UTC days from the one holding the start up to the
    end; a bin's score is its lower bound."""
    rng = TimeRange("custom", NOW - timedelta(days=1, hours=2), NOW, "hour")  # from the 26th
    today, yesterday = NOW.replace(hour=0), NOW.replace(hour=0) - timedelta(days=1)
    ScoreCount.objects.create(day=yesterday, pool="normal", bin=4, count=7)
    ScoreCount.objects.create(day=today, pool="normal", bin=4, count=1)
    ScoreCount.objects.create(day=today, pool="normal", bin=-3, count=2)
    ScoreCount.objects.create(day=today, pool="high-risk", bin=12, count=5)
    ScoreCount.objects.create(day=yesterday - timedelta(days=1), pool="normal", bin=4, count=50)
    ScoreCount.objects.create(day=today + timedelta(days=1), pool="normal", bin=4, count=50)

    assert score_distribution(rng=rng) == {
        "normal": [(-1.5, 2), (2.0, 8)],
        "high-risk": [(6.0, 5)],
    }
    assert score_distribution(rng=rng, pool="high-risk") == {"high-risk": [(6.0, 5)]}


@pytest.mark.django_db
def test_score_figure_stacks_pools_and_marks_the_current_threshold():
    """Stacked half-point bars per pool starting at each bin's low score, and a vertical line
    labelled with today's spam threshold."""
    policy = RoutingPolicy.load()
    policy.spam_threshold = 4.5
    policy.save()
    ScoreCount.objects.create(day=NOW.replace(hour=0), pool="normal", bin=4, count=7)
    ScoreCount.objects.create(day=NOW.replace(hour=0), pool="high-risk", bin=12, count=5)

    fig = score_figure(rng=DAY)

    normal, high = fig["data"]
    assert (normal["name"], normal["x"], normal["y"]) == ("normal", [2.0], [7])
    assert (high["name"], high["x"], high["y"]) == ("high-risk", [6.0], [5])
    assert normal["width"] == 0.5 and normal["offset"] == 0
    assert fig["layout"]["barmode"] == "stack"
    [shape] = fig["layout"]["shapes"]
    assert shape["x0"] == shape["x1"] == 4.5
    assert fig["layout"]["annotations"][0]["text"] == "spam threshold 4.5"
    json.dumps(fig)
