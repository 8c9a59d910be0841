"""The periodic spike check on the real database: one incident per campaign opens once,
follows its series, closes when quiet, carries its cause; thresholds per series apply; the
baseline follows the hour of the week once three weeks are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reputation.models import Spike, SpikeThreshold
from reputation.spikes.detection import detect
from routing.models import DSNCount

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def background(days: int = 14, per_window: int = 8, source: str = "mx.customer.example") -> None:
    """The usual DSNs of the last `days` days around 14:00: a few per window."""
    rows = []
    for d in range(1, days + 1):
        for m in range(0, 15, 3):
            rows.append(
                DSNCount(
                    minute=NOW - timedelta(days=d, minutes=m + 1),
                    pool="high-risk",
                    source=source,
                    recipient_domain="example.com",
                    original_domain="example.org",
                    reporting_mta=source,
                    status="5.2.2",
                    count=per_window // 5 or 1,
                )
            )
    DSNCount.objects.bulk_create(rows)


def burst(
    count: int,
    at: datetime,
    *,
    status="5.1.1",
    source="mx.customer.example",
    recipient="example.com",
    original="example.org",
) -> None:
    """`count` DSNs spread over the 10 minutes before `at`."""
    for minute in range(10):
        n = count // 10 + (1 if minute < count % 10 else 0)
        if n:
            DSNCount.objects.create(
                minute=at - timedelta(minutes=1 + minute),
                pool="high-risk",
                source=source,
                recipient_domain=recipient,
                original_domain=original,
                status=status,
                reporting_mta=source,
                count=n,
            )


def test_quiet_series_opens_no_spike():
    background()
    burst(8, NOW)
    run = detect(NOW)
    assert run.series > 0 and run.opened == []
    assert not Spike.objects.exists()


def test_one_incident_opens_once_follows_and_closes_when_quiet():
    background()
    burst(120, NOW)
    first = detect(NOW)
    assert len(first.opened) == 1  # every series that moved, in one incident
    spike = Spike.objects.get(pk=first.opened[0].pk)
    involved = {(item["dimension"], item["value"]) for item in spike.series}
    assert involved >= {("all", ""), ("status", "5.1.1"), ("source", "mx.customer.example")}
    assert (spike.dimension, spike.value) == ("source", "mx.customer.example")  # the lead
    assert (spike.peak, spike.ended) == (120, None)
    assert spike.evidence["top_statuses"][0] == ["5.1.1", 120]
    assert detect(NOW).opened == []  # same run again: idempotent
    assert Spike.objects.count() == 1

    later = NOW + timedelta(minutes=20)  # the burst is out of the window: calm from here
    detect(later)
    spike.refresh_from_db()
    assert spike.ended is None and spike.calm_since == later
    run = detect(later + timedelta(minutes=30))
    spike.refresh_from_db()
    assert spike.ended == later + timedelta(minutes=30)
    assert spike in run.closed


def test_two_campaigns_at_once_are_two_incidents():
    background()
    burst(120, NOW, source="mx.a.example", recipient="a-senders.example", original="a.example")
    burst(
        90, NOW, status="5.7.1", source="mx.b.example", recipient="b.example", original="x.example"
    )
    run = detect(NOW)
    leads = sorted((s.dimension, s.value) for s in run.opened)
    assert len(leads) == 2, leads
    by_source = {s.evidence["top_sources"][0][0]: s for s in run.opened}
    assert set(by_source) == {"mx.a.example", "mx.b.example"}
    assert by_source["mx.a.example"].evidence["total"] == 120


def test_per_series_threshold_overrides_the_global_one():
    background()
    burst(30, NOW, source="big-customer")
    SpikeThreshold.objects.create(dimension="source", value="big-customer", min_count=100)
    run = detect(NOW)
    involved = {(item["dimension"], item["value"]) for s in run.opened for item in s.series}
    assert ("source", "big-customer") not in involved
    assert ("all", "") in involved


def test_disabled_global_threshold_row_is_ignored():
    SpikeThreshold.objects.filter(dimension="").update(min_count=5, enabled=False)
    background()
    burst(10, NOW)
    assert detect(NOW).opened == []


def weekly(level_on_weekday: int, level_elsewhere: int) -> None:
    """Four weeks and two days of history around 14:00: `level_on_weekday` DSNs per window on
    NOW's weekday, `level_elsewhere` on the other days."""
    rows = [DSNCount(minute=NOW - timedelta(days=30), pool="high-risk", status="5.2.2", count=1)]
    for d in range(1, 30):
        level = level_on_weekday if d % 7 == 0 else level_elsewhere
        for shift in range(-35, 35, 5):  # the window and its neighbours
            rows.append(
                DSNCount(
                    minute=NOW - timedelta(days=d, minutes=shift + 1),
                    pool="high-risk",
                    source="mx.customer.example",
                    recipient_domain="example.com",
                    original_domain="example.org",
                    reporting_mta="mx.customer.example",
                    status="5.2.2",
                    count=level // 3,
                )
            )
    DSNCount.objects.bulk_create(rows)


def test_a_weekly_peak_opens_nothing_once_three_weeks_are_kept():
    weekly(level_on_weekday=150, level_elsewhere=30)
    burst(150, NOW, status="5.2.2")
    run = detect(NOW)
    assert run.seasons["all"] == "hour-of-week"
    assert run.opened == []


def test_the_same_peak_after_less_than_three_weeks_is_judged_by_hour_of_day():
    weekly(level_on_weekday=150, level_elsewhere=30)
    DSNCount.objects.filter(minute__lt=NOW - timedelta(days=20)).delete()
    burst(150, NOW, status="5.2.2")
    run = detect(NOW)
    assert run.seasons["all"] == "hour-of-day"
    assert len(run.opened) == 1
