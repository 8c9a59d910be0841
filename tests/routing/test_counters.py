"""Per-minute aggregates: counted in memory, flushed with additive upserts, never lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from routing.counters import Counters
from routing.facts import Decision, DSNRecipient, DSNReport, MessageFacts
from routing.models import DSNCount, RoutingCount

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 27, 10, 15, 42, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def decision(pool="normal", reasons=()) -> Decision:
    return Decision(pool, pool, "192.0.2.1", tuple(reasons), None, "dsn" in reasons, "x.example")


DSN_FACTS = MessageFacts(
    mail_from="",
    rcpt_to=("alice@customer.example",),
    is_dsn=True,
    source="sasl:customer1",
    dsn=DSNReport(
        "mx.example.net",
        (
            DSNRecipient("a@far.example", "failed", "5.1.1"),
            DSNRecipient("b@far.example", "failed", "5.1.1"),
            DSNRecipient("c@other.example", "failed", "5.7.1"),
        ),
    ),
)


def test_counts_are_grouped_per_minute_pool_reasons_and_source():
    clock = Clock(T0)
    counters = Counters(clock)
    for _ in range(3):
        counters.record(MessageFacts(source="10.0.0.1"), decision())
    counters.record(MessageFacts(source="10.0.0.1"), decision("high-risk", ("spam-score", "dsn")))
    clock.now = T0 + timedelta(minutes=1)
    counters.record(MessageFacts(source="10.0.0.1"), decision())
    assert counters.flush() == 3
    rows = {(r.minute, r.pool, r.reasons): r.count for r in RoutingCount.objects.all()}
    minute = T0.replace(second=0)
    assert rows == {
        (minute, "normal", "none"): 3,
        (minute, "high-risk", "dsn+spam-score"): 1,
        (minute + timedelta(minutes=1), "normal", "none"): 1,
    }


def test_flushes_from_several_processes_add_up():
    first, second = Counters(Clock(T0)), Counters(Clock(T0))
    first.record(MessageFacts(), decision())
    second.record(MessageFacts(), decision())
    second.record(MessageFacts(), decision())
    first.flush()
    second.flush()
    assert RoutingCount.objects.get().count == 3


def test_dsns_are_counted_per_original_recipient_domain_and_status():
    counters = Counters(Clock(T0))
    counters.record(DSN_FACTS, decision("high-risk", ("dsn",)))
    counters.flush()
    rows = {
        (r.source, r.recipient_domain, r.original_domain, r.status, r.reporting_mta): r.count
        for r in DSNCount.objects.all()
    }
    assert rows == {
        ("sasl:customer1", "customer.example", "far.example", "5.1.1", "mx.example.net"): 2,
        ("sasl:customer1", "customer.example", "other.example", "5.7.1", "mx.example.net"): 1,
    }


def test_a_failed_flush_keeps_the_counts_for_the_next_one():
    counters = Counters(Clock(T0))
    counters.record(MessageFacts(), decision())
    with (
        mock.patch("routing.counters.upsert", side_effect=RuntimeError("db down")),
        pytest.raises(RuntimeError),
    ):
        counters.flush()
    assert counters.pending() == 1
    counters.flush()
    assert RoutingCount.objects.get().count == 1
    assert counters.pending() == 0


def test_nothing_is_written_until_a_flush():
    counters = Counters(Clock(T0))
    counters.record(MessageFacts(), decision())
    assert not RoutingCount.objects.exists()
