"""DSN spikes end to end: DSNs routed by the engine (real DNS on loopback), counted and
flushed, judged by the periodic task; roll-up; the configuration section; admin access."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reputation.dashboard.history import dsn_sums
from reputation.models import DSNHourly, Spike, SpikeThreshold
from reputation.tasks import detect_spikes, roll_up_dsn_counts
from routing.configdoc import DocumentError, apply_plan, plan_document
from routing.facts import Decision, MessageFacts
from routing.models import DSNCount
from tests.support import DSN_SAMPLES

pytestmark = pytest.mark.django_db

BOUNCE = MessageFacts(mail_from="", rcpt_to=("alice@customer.test",), is_dsn=True, source="mx")
DECISION = Decision("high-risk", "high-risk", "198.51.100.1", ("dsn",), None, True, "")


@pytest.mark.integration
def test_dsns_routed_by_the_engine_open_a_spike_with_its_cause(engine):
    raw = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_text()
    for i in range(60):
        message = raw.replace("bob@example.org", f"user{i}@example.org").encode()
        _, decision = engine.route_message(
            message, mail_from="", rcpt_to=["alice@both.test"], source="mx.customer.test"
        )
        assert decision.pool == "high-risk" and "dsn" in decision.reasons
    engine.counters.flush()
    result = detect_spikes.apply().get()
    assert result["opened"] == 1  # one incident, however many series moved
    spike = Spike.objects.get()
    assert (spike.dimension, spike.value) == ("source", "mx.customer.test")
    assert spike.peak == 60 and spike.ended is None
    assert spike.cause == "directory-harvest"
    assert spike.evidence["top_sources"] == [["mx.customer.test", 60]]
    assert spike.evidence["top_refined_classes"] == [["unknown-user", 60]]
    involved = {(item["dimension"], item["value"]) for item in spike.series}
    assert {("all", ""), ("status", "5.1.1"), ("original_domain", "example.org")} <= involved


def test_roll_up_expires_old_minutes_and_the_hours_keep_the_totals():
    """Flushed counts land per minute and per hour; expiring the old minutes leaves every
    hour's total, so the volume over a long range is the same before and after."""
    from routing.counters import Counters

    old = timezone.now() - timedelta(days=40)
    hour = old.replace(minute=0, second=0, microsecond=0)
    recent = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=5)
    for at, n in ((hour + timedelta(minutes=1), 3), (hour + timedelta(minutes=61), 5), (recent, 9)):
        counters = Counters(clock=lambda at=at: at)
        for _ in range(n):
            counters.record(BOUNCE, DECISION)
        counters.flush()
    span = {"start": old - timedelta(days=1), "end": timezone.now(), "bucket": "hour", "pool": None}
    before = sum(dsn_sums(**span).values())
    assert roll_up_dsn_counts.apply().get() == 4  # two old DSN minutes, two routing minutes
    assert DSNCount.objects.count() == 1
    assert sorted(DSNHourly.objects.values_list("count", flat=True)) == [3, 5, 9]
    assert roll_up_dsn_counts.apply().get() == 0  # re-runnable
    after = sum(dsn_sums(**span).values())
    assert before == after == 17


def test_volume_buckets_by_hour_and_filters_by_pool():
    """Hour buckets read the hourly counts; minute buckets the per-minute ones."""
    from routing.counters import Counters

    at = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    for minute, pool in ((5, "high-risk"), (6, "other"), (65, "high-risk")):
        counters = Counters(clock=lambda minute=minute: at + timedelta(minutes=minute))
        decision = Decision(pool, "high-risk", None, ("dsn",), None, True, "")
        for _ in range(2):
            counters.record(BOUNCE, decision)
        counters.flush()
    points = sorted(
        dsn_sums(start=at, end=at + timedelta(hours=3), bucket="hour", pool="high-risk").items()
    )
    assert points == [(at, 2), (at + timedelta(hours=1), 2)]
    end = at + timedelta(hours=2)
    minutes = sorted(dsn_sums(start=at, end=end, bucket="minute", pool="high-risk").items())
    assert minutes == [(at + timedelta(minutes=5), 2), (at + timedelta(minutes=65), 2)]


def test_thresholds_round_trip_through_the_configuration_document():
    doc = (
        "[[spike_thresholds]]\ndimension = 'source'\nvalue = 'big'\nmin_count = 200\n"
        "sensitivity = 6.5\n"
    )
    apply_plan(plan_document(doc))
    row = SpikeThreshold.objects.get(dimension="source", value="big")
    assert (row.min_count, row.sensitivity, row.window_minutes) == (200, 6.5, 15)
    assert plan_document(doc).changes == []
    assert SpikeThreshold.objects.filter(dimension="").exists()  # the seeded global row stays
    assert "- spike threshold global" in plan_document(doc, prune=True).changes


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("[[spike_thresholds]]\ndimension = 'planet'", "is not a valid choice"),
        ("[[spike_thresholds]]\ndimension = 'source'\ndays = 90", "Between 1 and 31 days"),
        ("[[spike_thresholds]]\nvalue = 'x'", "A single series needs its dimension"),
        ("[[spike_thresholds]]\nsensitivity = 'high'", "sensitivity"),
        ("[[spike_thresholds]]\ncolour = 'red'", "unknown key 'colour'"),
    ],
)
def test_bad_thresholds_are_refused(doc, problem):
    with pytest.raises(DocumentError) as raised:
        plan_document(doc)
    assert problem in str(raised.value)


def test_viewer_reads_spikes_and_operator_edits_thresholds(client, viewer, operator):
    spike = Spike.objects.create(
        dimension="all",
        started=timezone.now(),
        peak=50,
        baseline=3,
        cause="rogue-server",
        evidence={"summary": ["one source"]},
    )
    client.force_login(viewer)
    assert client.get("/admin/reputation/spike/").status_code == 200
    page = client.get(f"/admin/reputation/spike/{spike.pk}/change/").content.decode()
    assert "one source" in page
    assert client.get("/admin/reputation/spikethreshold/add/").status_code == 403
    client.force_login(operator)
    response = client.post(
        "/admin/reputation/spikethreshold/add/",
        {
            "dimension": "source",
            "value": "mx1",
            "enabled": "on",
            "window_minutes": 10,
            "sensitivity": 4,
            "min_count": 50,
            "quiet_minutes": 20,
            "days": 7,
        },
    )
    assert response.status_code == 302
    assert SpikeThreshold.objects.get(value="mx1").min_count == 50
    assert client.get("/admin/reputation/spike/add/").status_code == 403


def test_roll_up_expires_old_routing_minutes_and_old_hours(settings):
    """Routing minutes older than the minute retention go (their hours stay); hourly,
    per-address and per-score rows older than the hourly retention go too."""
    from routing.models import AddressCount, DSNSample, RoutingCount, RoutingHourly, ScoreCount

    old = timezone.now() - timedelta(days=40)
    hour = old.replace(minute=0, second=0, microsecond=0)
    for minute, count in ((1, 10), (2, 5)):
        RoutingCount.objects.create(
            minute=hour + timedelta(minutes=minute),
            pool="normal",
            reasons="none",
            source="c1",
            count=count,
        )
    RoutingHourly.objects.create(hour=hour, pool="normal", reasons="none", source="c1", count=15)
    RoutingCount.objects.create(minute=timezone.now(), pool="normal", reasons="none", count=1)
    DSNSample.objects.create(minute=old, pool="high-risk")
    DSNSample.objects.create(minute=timezone.now(), pool="high-risk")
    ancient = timezone.now() - timedelta(days=settings.POOLWARDEN_DSN_HOURLY_DAYS + 1)
    AddressCount.objects.create(hour=ancient, address="192.0.2.1", count=3)
    AddressCount.objects.create(hour=hour, address="192.0.2.1", count=4)
    RoutingHourly.objects.create(hour=ancient, pool="normal", reasons="none", count=9)
    ScoreCount.objects.create(day=ancient.replace(hour=0), pool="normal", bin=3, count=2)
    ScoreCount.objects.create(day=hour.replace(hour=0), pool="normal", bin=3, count=6)

    assert roll_up_dsn_counts.apply().get() == 2
    assert list(RoutingHourly.objects.values_list("hour", "source", "count")) == [(hour, "c1", 15)]
    assert RoutingCount.objects.count() == 1 and DSNSample.objects.count() == 1
    assert list(AddressCount.objects.values_list("count", flat=True)) == [4]
    assert list(ScoreCount.objects.values_list("count", flat=True)) == [6]
