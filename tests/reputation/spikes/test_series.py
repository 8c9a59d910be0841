"""DSN series from the per-minute aggregates: one query per dimension gives every series'
current window and the same window on previous days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reputation.spikes.baseline import Thresholds, season
from reputation.spikes.series import window_sums
from routing.models import DSNCount

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
T = Thresholds(window_minutes=15, days=3)
DAYS = season(timedelta(days=10), T.window, T.days)  # under three weeks kept: hour of day


def dsn(minute: datetime, count: int, **keys) -> None:
    fields = {
        "pool": "high-risk",
        "source": "",
        "recipient_domain": "",
        "original_domain": "",
        "status": "5.1.1",
        "reporting_mta": "",
    } | keys
    DSNCount.objects.create(minute=minute, count=count, **fields)


def test_current_and_previous_days_windows_are_summed_per_series():
    dsn(NOW, 1, source="a")  # the current minute, still filling: counted
    dsn(NOW - timedelta(minutes=1), 4, source="a")
    dsn(NOW - timedelta(minutes=14), 2, source="a")  # first minute of the current window
    dsn(NOW - timedelta(minutes=15), 100, source="a")  # just before it: not counted
    dsn(NOW - timedelta(days=1, minutes=3), 7, source="a")
    dsn(NOW - timedelta(days=1, minutes=15), 50, source="a")  # before that day's window
    dsn(NOW - timedelta(days=3, minutes=3), 1, source="b")
    dsn(NOW - timedelta(days=4, minutes=3), 50, source="a")  # beyond the history asked
    assert window_sums("source", NOW, T, DAYS) == {"a": [7, 7, 0, 0], "b": [0, 0, 0, 1]}
    assert window_sums("all", NOW, T, DAYS) == {"": [7, 7, 0, 1]}


def test_status_class_groups_statuses():
    dsn(NOW - timedelta(minutes=2), 3, status="5.1.1")
    dsn(NOW - timedelta(minutes=2), 4, status="5.7.1", source="x")
    dsn(NOW - timedelta(minutes=2), 1, status="4.4.7")
    assert window_sums("status_class", NOW, T, DAYS) == {"5": [7, 0, 0, 0], "4": [1, 0, 0, 0]}


def test_hour_of_week_windows_are_the_same_weekday_and_its_neighbours_then_the_days():
    weeks = season(timedelta(days=30), T.window, T.days)
    dsn(NOW - timedelta(days=7, minutes=3), 5, source="a")  # a week ago, the same window
    dsn(NOW - timedelta(days=7, minutes=33), 2, source="a")  # a week ago, 30 minutes earlier
    dsn(NOW - timedelta(days=7, minutes=-27), 3, source="a")  # a week ago, 30 minutes later
    dsn(NOW - timedelta(days=2, minutes=3), 9, source="a")  # two days ago: a day for the spread
    sums = window_sums("source", NOW, T, weeks)["a"]
    assert len(sums) == 1 + len(weeks.all_offsets) == 1 + 4 * 5 + 3
    history, days = weeks.split(sums[1:])
    assert history[:5] == [3, 0, 5, 0, 2]  # week 1: +30, +15, 0, -15, -30 minutes later
    assert sum(history) == 10 and days == [0, 9, 0]
