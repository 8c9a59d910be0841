"""Time ranges of the dashboard, and per-bucket sums in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reputation.dashboard import timerange
from reputation.dashboard.timerange import RangeError, TimeRange, bucket_sums, source
from routing.models import RoutingCount, RoutingDaily, RoutingHourly

NOW = datetime(2026, 11, 27, 14, 37, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("key", "bucket", "start"),
    [
        ("24h", "hour", datetime(2026, 11, 26, 15, 0, tzinfo=UTC)),
        ("7d", "hour", datetime(2026, 11, 20, 15, 0, tzinfo=UTC)),
        ("30d", "hour", datetime(2026, 10, 28, 15, 0, tzinfo=UTC)),
        ("1y", "day", datetime(2025, 11, 28, tzinfo=UTC)),
    ],
)
def test_presets_end_now_and_start_on_a_bucket_inside_the_span(key, bucket, start):
    """A preset ends now; it starts at the first bucket boundary not before now - span."""
    rng = timerange.parse(key, now=NOW)
    assert (rng.key, rng.bucket, rng.start, rng.end) == (key, bucket, start, NOW)


def test_no_key_is_the_default_week():
    assert timerange.parse(None, now=NOW).key == "7d"


def test_custom_range_takes_dates_and_datetimes_in_utc():
    """Dates, date-times and offsets are read; naive ones are UTC; short spans get minutes."""
    rng = timerange.parse("custom", "2026-11-01", "2026-11-03", now=NOW)
    assert (rng.start, rng.end, rng.bucket) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 3, tzinfo=UTC),
        "hour",
    )
    short = timerange.parse("custom", "2026-11-01T08:10", "2026-11-01T10:00+01:00", now=NOW)
    assert short.bucket == "minute"
    assert short.end == datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    assert timerange.parse("custom", "2025-01-01", "2026-01-01").bucket == "day"


@pytest.mark.parametrize(
    ("key", "start", "end", "message"),
    [
        ("week", None, None, "Unknown time range"),
        ("custom", None, "2026-11-02", "needs its start"),
        ("custom", "2026-11-02", "2026-11-02", "after its start"),
        ("custom", "2026-13-01", "2026-11-02", "Not a date"),
        ("custom", "2020-01-01", "2026-11-02", "at most 800 days"),
    ],
)
def test_bad_ranges_say_what_is_wrong(key, start, end, message):
    with pytest.raises(RangeError, match=message):
        timerange.parse(key, start, end, now=NOW)


def test_buckets_cover_the_range_and_floor_finds_the_bucket():
    rng = TimeRange(
        "custom", datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 4, tzinfo=UTC), "day"
    )
    assert len(rng.buckets()) == 3
    assert rng.floor(datetime(2026, 11, 2, 23, 59, tzinfo=UTC)) == datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.django_db
def test_bucket_sums_group_per_bucket_in_the_database():
    """Rows are summed per bucket and per grouping field, for each bucket size, on whatever
    database the suite runs on (text cut on SQLite, date_trunc on PostgreSQL)."""
    base = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
    for minute, pool, count in (
        (0, "a", 1),
        (5, "a", 2),
        (5, "b", 4),
        (70, "a", 8),
        (1500, "a", 16),
    ):
        RoutingCount.objects.create(
            minute=base + timedelta(minutes=minute), pool=pool, reasons="none", count=count
        )
    rows = RoutingCount.objects.all()
    assert bucket_sums(rows, field="minute", bucket="hour", by=("pool",)) == {
        (base, "a"): 3,
        (base, "b"): 4,
        (base + timedelta(hours=1), "a"): 8,
        (base + timedelta(hours=25), "a"): 16,
    }
    days = bucket_sums(rows, field="minute", bucket="day")
    assert days == {(base.replace(hour=0),): 15, (base.replace(hour=0) + timedelta(days=1),): 16}
    minutes = bucket_sums(rows, field="minute", bucket="minute")
    assert minutes[(base + timedelta(minutes=5),)] == 6


def test_short_recent_ranges_read_minutes_and_the_rest_hours(settings):
    """Minute buckets read the per-minute rows while they are kept, day buckets the daily
    rows where a series has them; everything else the hourly rows, which hold every hour."""
    settings.POOLWARDEN_DSN_MINUTE_DAYS = 32
    recent = timerange.parse("custom", "2026-11-27T08:00", "2026-11-27T10:00")
    old = timerange.parse("custom", "2026-09-01T08:00", "2026-09-01T10:00")
    week = timerange.parse("7d", now=NOW)
    tables = {"minutes": RoutingCount, "hours": RoutingHourly}
    assert source(recent, **tables, now=NOW) == (RoutingCount, "minute")
    assert source(old, **tables, now=NOW) == (RoutingHourly, "hour")
    assert source(week, **tables, now=NOW) == (RoutingHourly, "hour")
    year = timerange.parse("1y", now=NOW)
    assert source(year, **tables, now=NOW) == (RoutingHourly, "hour")
    assert source(year, **tables, days=RoutingDaily, now=NOW) == (RoutingDaily, "day")
    assert source(week, **tables, days=RoutingDaily, now=NOW) == (RoutingHourly, "hour")
