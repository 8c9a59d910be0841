"""The periodic spike check on the real database: spikes open once, follow the series, close
when quiet, carry their cause; thresholds per series apply."""

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
                    status="5.2.2",
                    count=per_window // 5 or 1,
                )
            )
    DSNCount.objects.bulk_create(rows)


def burst(count: int, at: datetime, *, status="5.1.1", source="mx.customer.example") -> None:
    """`count` DSNs spread over the 10 minutes before `at`."""
    for minute in range(10):
        n = count // 10 + (1 if minute < count % 10 else 0)
        if n:
            DSNCount.objects.create(
                minute=at - timedelta(minutes=1 + minute),
                pool="high-risk",
                source=source,
                recipient_domain="example.com",
                original_domain="example.org",
                status=status,
                count=n,
            )


def test_quiet_series_opens_no_spike():
    background()
    burst(8, NOW)
    run = detect(NOW)
    assert run.series > 0 and run.opened == []
    assert not Spike.objects.exists()


def test_spike_opens_once_follows_and_closes_when_quiet():
    background()
    burst(120, NOW)
    first = detect(NOW)
    assert {(s.dimension, s.value) for s in first.opened} >= {("all", ""), ("status", "5.1.1")}
    spike = Spike.objects.get(dimension="all")
    assert (spike.peak, spike.ended) == (120, None)
    assert spike.evidence["top_statuses"][0] == ["5.1.1", 120]
    assert detect(NOW).opened == []  # same run again: idempotent
    assert Spike.objects.filter(dimension="all").count() == 1

    later = NOW + timedelta(minutes=20)  # the burst is out of the window: calm from here
    detect(later)
    spike.refresh_from_db()
    assert spike.ended is None and spike.calm_since == later
    run = detect(later + timedelta(minutes=30))
    spike.refresh_from_db()
    assert spike.ended == later + timedelta(minutes=30)
    assert spike in run.closed


def test_per_series_threshold_overrides_the_global_one():
    background()
    burst(30, NOW, source="big-customer")
    SpikeThreshold.objects.create(dimension="source", value="big-customer", min_count=100)
    run = detect(NOW)
    assert ("source", "big-customer") not in {(s.dimension, s.value) for s in run.opened}
    assert ("all", "") in {(s.dimension, s.value) for s in run.opened}


def test_disabled_global_threshold_row_is_ignored():
    SpikeThreshold.objects.filter(dimension="").update(min_count=5, enabled=False)
    background()
    burst(10, NOW)
    assert detect(NOW).opened == []
