"""Evidence gathered from what the engine counted and sampled, built from real DSN samples,
names the right cause."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reputation.spikes.causes import likely_cause
from reputation.spikes.evidence import gather
from routing.counters import Counters
from routing.facts import Decision
from routing.message import facts_from_message
from tests.support import DSN_SAMPLES

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
START, END = NOW - timedelta(minutes=15), NOW


def feed(sample: str, count: int, *, source: str, rewrite, at: datetime = NOW) -> None:
    """Route `count` copies of a real DSN sample through the counters, each rewritten."""
    counters = Counters(clock=lambda: at - timedelta(minutes=5), seed=3)
    raw = (DSN_SAMPLES / sample).read_text()
    for i in range(count):
        text, rcpt = rewrite(raw, i)
        facts = facts_from_message(text.encode(), mail_from="", rcpt_to=[rcpt], source=source)
        decision = Decision("high-risk", "high-risk", "198.51.100.1", ("dsn",), None, True, "")
        counters.record(facts, decision)
    counters.flush()


def test_user_unknown_storm_at_one_domain_is_a_directory_harvest():
    def probe(raw: str, i: int):
        return raw.replace("bob@example.org", f"user{i}@example.org"), "alice@example.com"

    feed("postfix-bounce-user-unknown.eml", 120, source="mx.customer.example", rewrite=probe)
    evidence = gather(dimension="all", value="", start=START, end=END, days=7)
    assert evidence.total == 120
    assert evidence.statuses == {"5.1.1": 120}
    cause, _ = likely_cause(evidence)
    assert cause.name == "directory-harvest"


def test_spamhaus_rejections_are_blocked_at_receiver_and_name_the_address():
    def spread(raw: str, i: int):
        return raw.replace("judy@example.org", f"r{i}@example.org"), f"s{i}@example.com"

    feed("postfix-spamhaus-blocked.eml", 60, source="sasl:billing", rewrite=spread)
    cause, _ = likely_cause(gather(dimension="all", value="", start=START, end=END, days=7))
    assert cause.name == "blocked-at-receiver"
    assert "203.0.113.9" in " ".join(cause.evidence)


def test_evidence_of_one_series_leaves_the_others_out():
    def probe(raw: str, i: int):
        return raw.replace("bob@example.org", f"user{i}@example.org"), "alice@example.com"

    feed("postfix-bounce-user-unknown.eml", 30, source="a", rewrite=probe)
    feed("postfix-bounce-user-unknown.eml", 10, source="b", rewrite=probe)
    evidence = gather(dimension="source", value="b", start=START, end=END, days=7)
    assert evidence.total == 10 and set(evidence.sources) == {"b"}
    assert {s.source for s in evidence.samples} == {"b"}


def test_a_source_that_usually_bounces_little_has_a_low_baseline():
    def probe(raw: str, i: int):
        return raw, "alice@example.com"

    feed(
        "postfix-bounce-user-unknown.eml",
        14,
        source="quiet",
        rewrite=probe,
        at=NOW - timedelta(days=3),
    )
    feed("postfix-bounce-user-unknown.eml", 50, source="quiet", rewrite=probe)
    evidence = gather(dimension="all", value="", start=START, end=END, days=7)
    assert evidence.source_baselines == {"quiet": 2.0}
