"""Per-minute aggregates: counted in memory, flushed with additive upserts, never lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from routing.counters import Counters, minute_of
from routing.facts import Decision, DSNRecipient, DSNReport, MessageFacts
from routing.models import DSNCount, DSNSample, RoutingCount

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
            DSNRecipient("a@far.example", "failed", "5.1.1", refined_class="unknown-user"),
            DSNRecipient("b@far.example", "failed", "5.1.1", refined_class="unknown-user"),
            DSNRecipient("c@other.example", "failed", "5.7.1", refined_class="blocked"),
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
    assert counters.flush() == 4  # three routing rows, one per address and hour
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


def test_dsns_are_counted_per_original_recipient_domain_status_and_refined_class():
    from reputation.models import DSNHourly

    counters = Counters(Clock(T0))
    counters.record(DSN_FACTS, decision("high-risk", ("dsn",)))
    counters.flush()
    for model in (DSNCount, DSNHourly):
        rows = {
            (r.source, r.recipient_domain, r.original_domain, r.status, r.reporting_mta): (
                r.refined_class,
                r.count,
            )
            for r in model.objects.all()
        }
        assert rows == {
            ("sasl:customer1", "customer.example", "far.example", "5.1.1", "mx.example.net"): (
                "unknown-user",
                2,
            ),
            ("sasl:customer1", "customer.example", "other.example", "5.7.1", "mx.example.net"): (
                "blocked",
                1,
            ),
        }


def test_the_same_status_with_another_refined_class_is_counted_apart():
    """A 5.7.1 that a diagnostic calls spam and one it calls blocked are two DSN rows."""
    facts = MessageFacts(
        mail_from="",
        is_dsn=True,
        dsn=DSNReport(
            "mx.example.net",
            (
                DSNRecipient("a@far.example", "failed", "5.7.1", refined_class="spam"),
                DSNRecipient("b@far.example", "failed", "5.7.1", refined_class="blocked"),
                DSNRecipient("c@far.example", "failed", "5.7.1", refined_class="blocked"),
            ),
        ),
    )
    counters = Counters(Clock(T0))
    counters.record(facts, decision("high-risk", ("dsn",)))
    counters.flush()
    counts = dict(DSNCount.objects.values_list("refined_class", "count"))
    assert counts == {"spam": 1, "blocked": 2}


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


def test_dsn_recipients_are_sampled_with_their_evidence():
    counters = Counters(Clock(T0))
    counters.record(DSN_FACTS, decision("high-risk", ("dsn",)))
    counters.flush()
    samples = list(DSNSample.objects.order_by("original_recipient"))
    assert [(s.original_recipient, s.status, s.refined_class, s.recipient) for s in samples] == [
        ("a@far.example", "5.1.1", "unknown-user", "alice@customer.example"),
        ("b@far.example", "5.1.1", "unknown-user", "alice@customer.example"),
        ("c@other.example", "5.7.1", "blocked", "alice@customer.example"),
    ]
    assert samples[0].routed_by_us is None  # the DSN named no original Message-ID


def test_samples_are_bounded_per_flush_and_spread_over_the_interval():
    from routing.counters import SAMPLES_PER_FLUSH

    counters = Counters(Clock(T0), seed=1)
    for i in range(2000):
        facts = MessageFacts(
            mail_from="",
            rcpt_to=(f"r{i}@customer.example",),
            is_dsn=True,
            dsn=DSNReport(
                "mx.example.net", (DSNRecipient(f"u{i}@far.example", "failed", "5.1.1"),)
            ),
        )
        counters.record(facts, decision("high-risk", ("dsn",)))
    counters.flush()
    kept = [int(r.split("@")[0][1:]) for r in DSNSample.objects.values_list("recipient", flat=True)]
    assert len(kept) == SAMPLES_PER_FLUSH
    assert max(kept) > 1000  # not just the first ones
    assert DSNCount.objects.get().count == 2000  # counts stay exact


def test_dsn_about_a_message_routed_here_is_told_apart_from_backscatter():
    counters = Counters(Clock(T0))
    counters.record(MessageFacts(message_id="<abc@customer.example>"), decision())
    for message_id in ("<ABC@customer.example>", "<forged@victim.example>"):
        facts = MessageFacts(
            mail_from="",
            is_dsn=True,
            dsn=DSNReport(
                "mx.example.net",
                (DSNRecipient("x@far.example", "failed", "5.1.1"),),
                original_message_id=message_id,
            ),
        )
        counters.record(facts, decision("high-risk", ("dsn",)))
    counters.flush()
    assert sorted(DSNSample.objects.values_list("routed_by_us", flat=True)) == [False, True]


def test_mail_is_counted_per_source_address_and_hour():
    from routing.models import AddressCount

    clock = Clock(T0)
    counters = Counters(clock)
    counters.record(MessageFacts(), decision())
    clock.now = T0 + timedelta(minutes=30)
    counters.record(MessageFacts(), decision())
    counters.flush()
    row = AddressCount.objects.get()
    assert (row.hour, row.address, row.count) == (T0.replace(minute=0, second=0), "192.0.2.1", 2)


def test_a_flush_writes_hourly_rows_and_score_bins_too():
    """Each flush adds its counts to the hourly and daily tables (for long charts), the DSNs
    per hour and pool, and counts scored messages per day, pool and half-point bin."""
    from reputation.models import DSNHourly
    from routing.models import DSNTotal, RoutingDaily, RoutingHourly, ScoreCount

    clock = Clock(T0)
    counters = Counters(clock)
    scored = Decision("high-risk", "high-risk", "192.0.2.9", ("spam-score",), 7.3, False, "x")
    for minute in (0, 1):
        clock.now = T0 + timedelta(minutes=minute)
        counters.record(MessageFacts(source="10.0.0.1"), scored)
        counters.record(DSN_FACTS, decision("high-risk", ("dsn",)))
    counters.flush()
    counters.record(MessageFacts(source="10.0.0.1"), scored)
    counters.flush()  # a second flush adds to the same hour
    hour = T0.replace(minute=0, second=0)
    hourly = {(r.hour, r.reasons): r.count for r in RoutingHourly.objects.all()}
    assert hourly == {(hour, "spam-score"): 3, (hour, "dsn"): 2}
    assert RoutingCount.objects.filter(reasons="spam-score").count() == 2  # two minutes
    dsn_hours = DSNHourly.objects.filter(hour=hour)
    assert sum(dsn_hours.values_list("count", flat=True)) == 2 * 3  # three recipients each
    assert list(ScoreCount.objects.values_list("day", "pool", "bin", "count")) == [
        (hour.replace(hour=0), "high-risk", 14, 3)
    ]
    assert list(DSNTotal.objects.values_list("hour", "pool", "count")) == [(hour, "high-risk", 6)]
    daily = {r.reasons: r.count for r in RoutingDaily.objects.filter(day=hour.replace(hour=0))}
    assert daily == {"spam-score": 3, "dsn": 2}


@pytest.mark.parametrize(
    ("score", "expected"),
    [(4.6, 9), (-0.1, -1), (1e308, 60), (-1e308, -20), (float("inf"), 60), (float("nan"), 60)],
)
def test_any_score_has_a_bin_even_one_whose_double_overflows(score, expected):
    from routing.models import score_bin

    assert score_bin(score) == expected


def routed_per_hour(model) -> dict:
    from django.db.models import Sum

    return dict(model.objects.values_list("hour").annotate(Sum("count")).order_by("hour"))


def record_every_minute(counters: Counters, clock: Clock, minutes: int, source=str) -> None:
    """Two decisions a minute, one of them a DSN with three recipients."""
    for minute in range(minutes):
        clock.now = T0 + timedelta(minutes=minute)
        counters.record(MessageFacts(source=source(minute)), decision())
        counters.record(DSN_FACTS, decision("high-risk", ("dsn",)))


def fail_to_flush(counters: Counters) -> None:
    from django.db import OperationalError

    down = mock.patch("routing.counters.upsert", side_effect=OperationalError("db down"))
    with down, pytest.raises(OperationalError):
        counters.flush()


def test_past_the_bound_the_oldest_minutes_are_merged_into_hours_with_exact_totals():
    """When a flush fails with too many keys pending, the hourly, daily and per-pool tables
    still get every count; the per-minute tables miss the merged (oldest) minutes only."""
    from reputation.models import DSNHourly
    from routing.models import DSNTotal, RoutingDaily, RoutingHourly

    clock = Clock(T0)
    counters = Counters(clock, max_keys=40, hard_max_keys=1000)
    record_every_minute(counters, clock, 120, source=lambda minute: f"10.0.0.{minute % 3}")
    fail_to_flush(counters)
    assert counters.counts.keys() <= 30  # three quarters of the bound
    assert counters.pending() == 120 * (2 + 3)  # nothing lost
    assert counters.counts.routing_hours  # merged
    newest = max(key[0] for key in counters.counts.routing)
    assert newest == minute_of(clock.now)  # the newest minutes are kept as they are
    counters.flush()
    hour = T0.replace(minute=0, second=0)
    hours = [hour + timedelta(hours=n) for n in range(3)]
    assert routed_per_hour(RoutingHourly) == dict(zip(hours, [90, 120, 30], strict=True))
    assert routed_per_hour(DSNHourly) == dict(zip(hours, [135, 180, 45], strict=True))
    assert routed_per_hour(DSNTotal) == dict(zip(hours, [135, 180, 45], strict=True))
    assert sum(RoutingDaily.objects.values_list("count", flat=True)) == 240
    assert 0 < sum(RoutingCount.objects.values_list("count", flat=True)) < 240
    assert RoutingCount.objects.order_by("minute").last().minute == minute_of(clock.now)


def test_reaching_the_bound_is_warned_about_once_until_a_flush_succeeds(caplog):
    clock = Clock(T0)
    counters = Counters(clock, max_keys=40, hard_max_keys=1000)
    record_every_minute(counters, clock, 120)
    fail_to_flush(counters)
    record_every_minute(counters, clock, 120)
    fail_to_flush(counters)
    warnings = [r for r in caplog.records if "merging the oldest minutes" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelname == "WARNING"
    counters.flush()
    record_every_minute(counters, clock, 120)
    fail_to_flush(counters)
    warnings = [r for r in caplog.records if "merging the oldest minutes" in r.getMessage()]
    assert len(warnings) == 2  # a new outage is a new warning


def test_past_the_hard_bound_decisions_are_dropped_and_counted_in_the_log(caplog):
    """Every source its own key: merging cannot help, so memory stops at the hard bound."""
    from routing.models import RoutingDaily

    clock = Clock(T0)
    counters = Counters(clock, max_keys=20, hard_max_keys=30)
    for n in range(100):
        counters.record(MessageFacts(source=f"sasl:customer{n}"), decision())
    assert counters.counts.keys() == 30
    counters.flush()
    dropped = [r for r in caplog.records if "were not counted" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].args[0] == 100 - 29  # one key is the address
    assert RoutingDaily.objects.get().count == 29
    counters.flush()
    assert len([r for r in caplog.records if "were not counted" in r.getMessage()]) == 1


def test_failing_flushes_keep_the_counts_and_a_later_one_writes_them_exactly():
    from routing.models import DSNTotal, RoutingDaily, RoutingHourly

    clock = Clock(T0)
    counters = Counters(clock, max_keys=40, hard_max_keys=1000)
    for _ in range(3):
        record_every_minute(counters, clock, 50)
        fail_to_flush(counters)
    assert counters.pending() == 3 * 50 * (2 + 3)
    assert counters.flush() > 0
    assert counters.pending() == 0 and counters.counts.keys() == 0
    assert sum(RoutingHourly.objects.values_list("count", flat=True)) == 3 * 50 * 2
    assert sum(RoutingDaily.objects.values_list("count", flat=True)) == 3 * 50 * 2
    assert sum(DSNTotal.objects.values_list("count", flat=True)) == 3 * 50 * 3
    assert counters.flush() == 0  # written once only


def test_flush_within_gives_up_on_a_hung_database():
    import threading
    import time

    from routing.counters import flush_within

    counters = Counters(Clock(T0))
    release = threading.Event()
    with mock.patch.object(counters, "flush", side_effect=lambda: release.wait(30)):
        started = time.monotonic()
        problem = flush_within(counters, 0.2)
        release.set()
    assert time.monotonic() - started < 5
    assert problem == "the database did not answer within 0.2 s"


def test_flush_within_says_why_in_one_line():
    from routing.counters import flush_within

    counters = Counters(Clock(T0))
    error = RuntimeError("connection refused\n\tIs the server running?")
    with mock.patch.object(counters, "flush", side_effect=error):
        assert flush_within(counters, 5) == "connection refused Is the server running?"
    with mock.patch.object(counters, "flush", return_value=1):
        assert flush_within(counters, 5) is None
