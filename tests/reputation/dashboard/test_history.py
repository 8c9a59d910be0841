"""The dashboard's history charts on known rows: DSN volume and its baseline with the spikes,
the listing timeline and sweep health."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db.models import F
from django.urls import reverse

from reputation.dashboard import history
from reputation.dashboard.figures import detail_url
from reputation.dashboard.history import (
    SEVERITY_COLOURS,
    dsn_figure,
    dsn_volume,
    listing_timeline,
    listing_timeline_figure,
    sweep_figure,
    sweep_health,
)
from reputation.dashboard.timerange import TimeRange
from reputation.models import Blocklist, CheckRun, DSNHourly, Listing, Spike
from routing.models import DSNCount, DSNTotal, IPRange, Pool, PoolAddress, SettingChange

pytestmark = pytest.mark.django_db

DAY = timedelta(days=1)
START = datetime(2026, 11, 27, tzinfo=UTC)
END = START + DAY
HOURS = TimeRange("custom", START, END, "hour")  # 24 hourly buckets


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    return START + timedelta(days=days, hours=hour, minutes=minute)


def dsn(minute: datetime, count: int, pool: str = "normal") -> None:
    """As a flush writes it: the minute's row, and the same count added to its hour."""
    DSNCount.objects.create(minute=minute, count=count, pool=pool, status="5.1.1")
    hour = minute.replace(minute=0, second=0, microsecond=0)
    for model, keys in ((DSNHourly, {"status": "5.1.1"}), (DSNTotal, {})):
        row, _ = model.objects.get_or_create(hour=hour, pool=pool, **keys)
        model.objects.filter(pk=row.pk).update(count=F("count") + count)


def dsn_hourly(hour: datetime, count: int, pool: str = "normal") -> None:
    """An hour whose minutes have expired: only its hourly rows remain."""
    DSNHourly.objects.create(hour=hour, count=count, pool=pool, status="5.1.1")
    DSNTotal.objects.create(hour=hour, count=count, pool=pool)


def spike(started: datetime, ended: datetime | None, **fields) -> Spike:
    values = {"dimension": "all", "value": "", "peak": 50, "baseline": 4.0, "cause": "backscatter"}
    return Spike.objects.create(started=started, ended=ended, **(values | fields))


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture
def pools():
    Pool.objects.all().delete()  # the seeded pools
    normal = Pool.objects.create(name="normal", kind=Pool.Kind.NORMAL)
    risky = Pool.objects.create(name="risky", kind=Pool.Kind.HIGH_RISK)
    ranges = {
        "192.0.2.0/30": normal,
        "2001:db8::1/128": normal,
        "198.51.100.0/30": risky,
    }
    made = {cidr: IPRange.objects.create(pool=pool, cidr=cidr) for cidr, pool in ranges.items()}

    def address(text: str, cidr: str, hostname: str = "") -> PoolAddress:
        pool = made[cidr].pool
        return PoolAddress.objects.create(
            pool=pool, ip_range=made[cidr], address=text, hostname=hostname
        )

    address("192.0.2.1", "192.0.2.0/30", hostname="mail1.example.net")
    address("192.0.2.2", "192.0.2.0/30")
    address("2001:db8::1", "2001:db8::1/128")
    address("198.51.100.1", "198.51.100.0/30")
    return {"normal": normal, "risky": risky}


@pytest.fixture
def lists():
    """Known lists only (the seeded catalogue is removed)."""
    Blocklist.objects.all().delete()
    return {
        "major": Blocklist.objects.create(zone="major.test", weight="major"),
        "minor": Blocklist.objects.create(zone="minor.test", weight="minor", ipv6=True),
        "dbl": Blocklist.objects.create(zone="dbl.test", kind="domain", weight="major"),
        "off": Blocklist.objects.create(zone="off.test", weight="major", enabled=False),
    }


def listing(address: str, blocklist: Blocklist, opened: datetime, closed=None, pool="normal"):
    return Listing.objects.create(
        address=address,
        pool=pool,
        blocklist=blocklist,
        codes=["127.0.0.2"],
        meanings=["SBL"],
        opened=opened,
        closed=closed,
    )


# --- links -------------------------------------------------------------------------------------


def test_detail_urls_match_reverse_for_every_kind_of_key():
    """The one-reverse URL maker builds exactly what reverse() builds, IPv6 and names too."""
    address, spike_url = detail_url("address"), detail_url("spike")
    for key in ("192.0.2.1", "2001:db8::1", "mail1.example.net"):
        assert address(key) == reverse("dashboard:address", args=[key])
    assert spike_url(42) == reverse("dashboard:spike", args=[42])


# --- DSN volume --------------------------------------------------------------------------------


def test_dsn_counts_fall_in_their_buckets_from_minute_and_hourly_rows():
    """Minute rows add up per hour, hourly (rolled-up) rows count too, and rows outside
    [start, end) do not; buckets without DSNs are zero."""
    dsn(at(10, 5), 3)
    dsn(at(10, 59), 2)
    dsn_hourly(at(3), 7)
    dsn(END, 100)  # the end is exclusive
    dsn(START - timedelta(minutes=1), 100)  # before the range: only the baseline sees it
    volume = dsn_volume(rng=HOURS)
    assert volume.buckets == HOURS.buckets()
    assert volume.counts[10] == 5
    assert volume.counts[3] == 7
    assert sum(volume.counts) == 12


def test_dsn_pool_filter_counts_only_that_pool():
    """With a pool, other pools' DSNs are left out."""
    dsn(at(10), 3, pool="normal")
    dsn(at(10, 1), 4, pool="risky")
    dsn_hourly(at(2), 5, pool="risky")
    assert sum(dsn_volume(rng=HOURS).counts) == 12
    assert dsn_volume(rng=HOURS, pool="risky").counts[10] == 4
    assert dsn_volume(rng=HOURS, pool="risky").counts[2] == 5
    assert sum(dsn_volume(rng=HOURS, pool="normal").counts) == 3


def test_dsn_band_is_the_detection_baseline_by_hour_of_day(django_assert_num_queries):
    """Under three weeks of history the band is detection's hour-of-day baseline: the median
    of the same hour on the previous 14 days, threshold at median + 5 spreads (MAD, or the
    Poisson floor), read in one query per table, not one per day."""
    # Hour 10 on days -1…-14: 100 ± up to 30 (median 100, MAD 10 → spread 14.8).
    values = [100, 90, 110, 100, 80, 120, 100, 95, 105, 100, 130, 70, 100, 100]
    for k, count in enumerate(values, start=1):
        if k <= 3:
            dsn(at(10, 30, days=-k), count)  # recent days: minute rows
        else:
            dsn_hourly(at(10, days=-k), count)  # older days: rolled up
    dsn_hourly(at(10, days=-15), 100_000)  # beyond the 14 days
    with django_assert_num_queries(4):  # oldest hour, thresholds, hourly rows, spikes
        volume = dsn_volume(rng=HOURS)
    assert volume.season == "hour-of-day"
    assert volume.baseline[10] == pytest.approx(100)
    spread = max(1.4826 * 5, 1.5 * math.sqrt(100))  # MAD of the values above is 5
    assert volume.threshold[10] == pytest.approx(100 + 5 * spread)
    # Hour 4 never had DSNs: the floor is detection's minimum count scaled to an hour.
    assert volume.baseline[4] == 0 and volume.threshold[4] == 79


def test_dsn_band_follows_the_hour_of_the_week_once_three_weeks_are_kept():
    """With four weeks kept, a Monday 09:00 peak (every Monday) is inside the band, while the
    hour-of-day median of the other days would put it far outside."""
    monday = START - timedelta(days=START.weekday())  # 2026-11-23
    rng = TimeRange("custom", monday, monday + DAY, "hour")
    dsn_hourly(monday - 30 * DAY, 1)  # history reaches back 30 days
    for day in range(1, 29):
        count = 400 if day % 7 == 0 else 100
        dsn_hourly(monday + timedelta(hours=9) - day * DAY, count)
    dsn_hourly(monday + timedelta(hours=9), 420)
    volume = dsn_volume(rng=rng)
    assert volume.season == "hour-of-week"
    assert volume.baseline[9] == pytest.approx(400)
    assert volume.counts[9] < volume.threshold[9]


def test_dsn_day_buckets_take_the_baseline_from_previous_days():
    """For a range in days, each day's band comes from the days before it."""
    days = TimeRange("custom", START, START + 3 * DAY, "day")
    dsn_hourly(at(5, days=-1), 10)
    dsn_hourly(at(23, days=-2), 20)
    dsn_hourly(at(1, days=1), 6)
    volume = dsn_volume(rng=days)
    assert volume.counts == [0, 6, 0]
    assert volume.baseline == [0, 0, 0]  # the median of 14 days, most of them empty
    assert volume.threshold[0] > 20


def test_dsn_spikes_overlapping_the_range_are_kept():
    """A spike started before and ended inside the range, and one still open, are shown;
    one over before the start, or starting at the end, is not. Newest first."""
    before = spike(at(-3), at(2))
    still = spike(at(20), None)
    spike(at(-5), at(-1))
    spike(END, None)
    marks = dsn_volume(rng=HOURS).spikes
    assert [m.pk for m in marks] == [still.pk, before.pk]
    assert marks[0].url == reverse("dashboard:spike", args=[still.pk])


def test_dsn_pool_filter_keeps_that_pools_and_overall_spikes():
    """With a pool: spikes of all DSNs and of that pool, and incidents involving that pool's
    series; not of another pool, nor of a dimension that spans pools (shown without the
    filter)."""
    overall = spike(at(1), at(2))
    mine = spike(at(3), at(4), dimension="pool", value="risky")
    spike(at(5), at(6), dimension="pool", value="normal")
    domain = spike(at(7), at(8), dimension="recipient_domain", value="example.org")
    involving = spike(
        at(9),
        at(10),
        dimension="source",
        value="mx.a.example",
        series=[
            {"dimension": "source", "value": "mx.a.example"},
            {"dimension": "pool", "value": "risky"},
        ],
    )
    assert {m.pk for m in dsn_volume(rng=HOURS, pool="risky").spikes} == {
        overall.pk,
        mine.pk,
        involving.pk,
    }
    assert domain.pk in {m.pk for m in dsn_volume(rng=HOURS).spikes}


def test_dsn_figure_shades_spikes_and_links_them():
    """Each spike is a shaded rectangle from its start to its end (or the range's end) and a
    marker whose customdata is the spike's page; the band is filled; spike-setting changes
    are marked and the figure is JSON."""
    dsn(at(6, 10), 40)
    dsn(at(7, 10), 25)
    closed = spike(at(6, 5), at(7, 40), dimension="pool", value="normal", cause="bad-list")
    still = spike(at(22, 30), None)
    SettingChange.objects.create(username="olivia", field="sensitivity", old="5", new="3")
    SettingChange.objects.filter(field="sensitivity").update(created=at(12))
    SettingChange.objects.create(username="olivia", field="spam_threshold", created=at(13))
    fig = dsn_figure(rng=HOURS)
    json.dumps(fig)
    shapes = fig["layout"]["shapes"]
    assert [(s["x0"], s["x1"]) for s in shapes] == [
        ("2026-11-27T22:30:00", "2026-11-28T00:00:00"),
        ("2026-11-27T06:05:00", "2026-11-27T07:40:00"),
    ]
    assert all(s["yref"] == "paper" and s["type"] == "rect" for s in shapes)
    markers = next(t for t in fig["data"] if t["name"] == "spikes")
    assert markers["customdata"] == [
        reverse("dashboard:spike", args=[still.pk]),
        reverse("dashboard:spike", args=[closed.pk]),
    ]
    assert markers["hovertext"][1] == "spike: pool normal, cause bad-list"
    assert markers["x"][1] == "2026-11-27T06:00:00"
    assert markers["y"] == [50, 40]  # no DSNs during the open one: its peak
    assert [t.get("fill") for t in fig["data"][:2]] == [None, "tonexty"]
    changes = next(t for t in fig["data"] if t["name"] == "setting changes")
    assert changes["x"] == ["2026-11-27T12:00:00"]


# --- listing timeline --------------------------------------------------------------------------


def test_listing_timeline_keeps_listings_overlapping_the_range_newest_first(pools, lists):
    """Listings open at some time in the range are rows, newest first; those closed before it
    or opened after it are not."""
    early = listing("192.0.2.1", lists["major"], at(-30), closed=at(3))
    late = listing("192.0.2.2", lists["minor"], at(12))
    listing("192.0.2.1", lists["minor"], at(-30), closed=at(-1))
    listing("192.0.2.2", lists["major"], END)
    timeline = listing_timeline(rng=HOURS)
    assert [row.pk for row in timeline.rows] == [late.pk, early.pk]
    assert timeline.total == 2
    first = timeline.rows[0]
    assert (first.address, first.zone, first.weight, first.closed) == (
        "192.0.2.2",
        "minor.test",
        "minor",
        None,
    )
    assert (first.codes, first.meanings) == (["127.0.0.2"], ["SBL"])
    assert first.url == reverse("dashboard:address", args=["192.0.2.2"])


def test_listing_severity_follows_pool_kind_and_list_weight(pools, lists):
    """Major list on a normal pool: critical; minor list on a normal pool: warning; anything
    on a high-risk pool: info."""
    listing("192.0.2.1", lists["major"], at(1))
    listing("192.0.2.2", lists["minor"], at(2))
    listing("198.51.100.1", lists["major"], at(3), pool="risky")
    rows = listing_timeline(rng=HOURS).rows
    assert {row.address: row.severity for row in rows} == {
        "192.0.2.1": "critical",
        "192.0.2.2": "warning",
        "198.51.100.1": "info",
    }
    assert [row.address for row in listing_timeline(rng=HOURS, pool="risky").rows] == [
        "198.51.100.1"
    ]


def test_listing_timeline_is_capped_and_counts_the_rest(pools, lists):
    """At most `limit` rows, the newest, with the total so the page can say "showing 2 of 3"."""
    for hour in (1, 2, 3):
        listing(f"192.0.2.{hour}", lists["major"], at(hour))
    timeline = listing_timeline(rng=HOURS, limit=2)
    assert [row.address for row in timeline.rows] == ["192.0.2.3", "192.0.2.2"]
    assert timeline.total == 3


def test_listing_figure_is_paged_and_capped_in_height(pools, lists, monkeypatch):
    """The timeline draws a page of listings at a time, newest first, says which page of how
    many, and never grows past the page's height; a page past the last shows the last."""
    monkeypatch.setattr(history, "TIMELINE_PAGE", 2)
    for hour in (1, 2, 3):
        listing(f"192.0.2.{hour}", lists["major"], at(hour))
    first = listing_timeline_figure(rng=HOURS)
    assert first["page"] == {"number": 1, "pages": 2, "total": 3}
    assert first["data"][0]["y"] == ["192.0.2.3 · major.test", "192.0.2.2 · major.test"]
    second = listing_timeline_figure(rng=HOURS, page=2)
    assert second["page"]["number"] == 2
    assert second["data"][0]["y"] == ["192.0.2.1 · major.test"]
    assert listing_timeline_figure(rng=HOURS, page=9)["page"]["number"] == 2
    assert first["layout"]["height"] <= max(200, 24 * 2 + 90)


def test_listing_figure_draws_bars_per_severity_from_open_to_close(pools, lists):
    """Horizontal bars based at the opening, as long as the listing (to the range's end while
    open), coloured by severity, linking to the address; taller with more rows."""
    listing("192.0.2.1", lists["major"], at(2), closed=at(5))
    listing("198.51.100.1", lists["minor"], at(20), pool="risky")
    fig = listing_timeline_figure(rng=HOURS)
    json.dumps(fig)
    traces = {t["name"]: t for t in fig["data"]}
    assert set(traces) == {"critical", "info"}
    critical, info = traces["critical"], traces["info"]
    assert critical["orientation"] == "h"
    assert critical["y"] == ["192.0.2.1 · major.test"]
    assert critical["base"] == ["2026-11-27T02:00:00"]
    assert critical["x"] == [3 * 3600 * 1000]
    assert info["x"] == [4 * 3600 * 1000]  # open: to the end of the range
    assert critical["marker"]["color"] == SEVERITY_COLOURS["critical"]
    assert info["marker"]["color"] == SEVERITY_COLOURS["info"]
    assert critical["customdata"] == [reverse("dashboard:address", args=["192.0.2.1"])]
    assert fig["layout"]["xaxis"]["type"] == "date"
    assert fig["layout"]["yaxis"]["categoryarray"] == [
        "198.51.100.1 · minor.test",
        "192.0.2.1 · major.test",
    ]
    for hour in range(3, 20):
        listing(f"192.0.2.{hour}", lists["minor"], at(hour))
    taller = listing_timeline_figure(rng=HOURS)
    assert taller["layout"]["height"] > fig["layout"]["height"]


# --- sweep health ------------------------------------------------------------------------------


def run(started: datetime, seconds: float | None, *, pool="", queries=0, errors=None) -> CheckRun:
    errors = errors or {}
    unknown = sum(sum(kinds.values()) for kinds in errors.values())
    finished = started + timedelta(seconds=seconds) if seconds is not None else None
    return CheckRun.objects.create(
        trigger="schedule",
        pool=pool,
        started=started,
        finished=finished,
        queries=queries,
        unknown=unknown,
        errors=errors,
    )


@pytest.fixture
def runs():
    run(at(10), 30, queries=100, errors={"a.test": {"timeout": 2}, "b.test": {"refused": 1}})
    run(at(10, 30), 90, pool="normal", queries=50, errors={"a.test": {"timeout": 1}})
    run(at(11), None, pool="risky", queries=10)  # not finished
    run(at(-1), 10, queries=999)  # before the range
    check = run(at(10, 45), 1, queries=40, errors={"a.test": {"timeout": 5}})
    CheckRun.objects.filter(pk=check.pk).update(address="192.0.2.1")  # a check now: no sweep


def test_sweep_health_sums_each_bucket(runs):
    """Per hour: sweeps started, mean duration of the finished ones, queries, unknown answers
    in all and per list."""
    health = sweep_health(rng=HOURS)
    assert health.buckets == HOURS.buckets()
    assert (health.sweeps[10], health.sweeps[11], sum(health.sweeps)) == (2, 1, 3)
    assert health.seconds[10] == pytest.approx(60)
    assert health.seconds[11] is None
    assert health.seconds[9] is None
    assert (health.queries[10], health.queries[11], sum(health.queries)) == (150, 10, 160)
    assert health.unknown[10] == 4
    assert health.errors["a.test"][10] == 3
    assert health.errors["b.test"][10] == 1
    assert sum(health.errors["a.test"]) == 3


def test_sweep_health_pool_filter_keeps_that_pool_and_all_pool_runs(runs):
    """With a pool: its own sweeps and those of every pool, not another pool's."""
    health = sweep_health(rng=HOURS, pool="risky")
    assert health.sweeps[10] == 1
    assert health.seconds[10] == pytest.approx(30)
    assert health.sweeps[11] == 1
    assert health.errors["a.test"][10] == 2


def test_sweep_health_coarsens_long_ranges(runs):
    """A range with more than 400 buckets is drawn in fewer, wider ones."""
    month = TimeRange("custom", START - 29 * DAY, END, "hour")  # 720 hours
    health = sweep_health(rng=month)
    assert len(health.buckets) <= 400
    assert health.step == timedelta(hours=2)
    index = (at(10) - month.start) // health.step
    assert health.buckets[index] == at(10)
    assert health.sweeps[index] == 3  # 10:00, 10:30 and 11:00 share a two-hour bucket
    assert health.seconds[index] == pytest.approx(60)  # the unfinished one has no duration
    assert health.queries[index] == 160
    assert sum(health.sweeps) == 4  # with the one of the day before


def test_sweep_figure_has_duration_queries_and_the_ten_worst_lists():
    """Queries as bars, mean duration on the second y-axis, and unknown answers for the ten
    lists with the most of them."""
    run(at(3), 12, queries=40, errors={f"z{i:02}.test": {"timeout": i + 1} for i in range(12)})
    fig = sweep_figure(rng=HOURS)
    json.dumps(fig)
    bars, duration, *zones = fig["data"]
    assert bars["type"] == "bar" and bars["y"][3] == 40
    assert duration["yaxis"] == "y2" and duration["y"][3] == pytest.approx(12)
    assert [z["name"] for z in zones] == [f"z{i:02}.test" for i in range(11, 1, -1)]
    assert zones[0]["y"][3] == 12
    assert fig["layout"]["yaxis2"]["overlaying"] == "y"


def test_history_module_reads_no_per_bucket_queries(django_assert_max_num_queries, runs):
    """A year of days costs the same handful of queries as a day (grouped in the database)."""
    year = TimeRange("custom", END - 365 * DAY, END, "day")
    with django_assert_max_num_queries(3):
        history.sweep_health(rng=year)
    with django_assert_max_num_queries(4):  # oldest hour, thresholds, hourly rows, spikes
        history.dsn_volume(rng=year)
