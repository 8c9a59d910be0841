"""The rules, without database or network: facts + policy snapshot + domain check in,
decision out."""

from __future__ import annotations

from collections import Counter

import pytest

from routing.classify import decide
from routing.dns import DomainLookup
from routing.facts import MessageFacts
from routing.policy import PolicySnapshot, PoolSnapshot

NORMAL = PoolSnapshot("normal", "normal", tuple(f"192.0.2.{i}" for i in range(1, 15)))
RISKY = PoolSnapshot("high-risk", "high-risk", ("198.51.100.1", "198.51.100.2"))
POLICY = PolicySnapshot(pools={"normal": NORMAL, "high-risk": RISKY})

HAS_MX = DomainLookup("example.com", True, None, 300)
HAS_A = DomainLookup("example.com", False, True, 300)
NEITHER = DomainLookup("example.com", False, False, 30)
FAILED = DomainLookup("example.com", None, None, 30, "timeout")


def facts(**kw) -> MessageFacts:
    base = {"mail_from": "alice@example.com", "sender_domain": "example.com"}
    return MessageFacts(**(base | kw))


def test_clean_mail_goes_through_the_normal_pool():
    decision = decide(facts(spam_score=1.0), POLICY, HAS_MX)
    assert (decision.pool, decision.reasons) == ("normal", ())
    assert decision.source_ip in NORMAL.addresses


def test_score_above_threshold_goes_high_risk():
    decision = decide(facts(spam_score=5.1), POLICY, HAS_MX)
    assert (decision.pool, decision.reasons) == ("high-risk", ("spam-score",))
    assert decision.source_ip in RISKY.addresses


def test_score_equal_to_threshold_is_not_above_it():
    assert decide(facts(spam_score=5.0), POLICY, HAS_MX).pool == "normal"


def test_no_score_is_not_a_reason():
    assert decide(facts(spam_score=None), POLICY, HAS_A).reasons == ()


def test_threshold_comes_from_the_policy():
    strict = PolicySnapshot(spam_threshold=2.0, pools=POLICY.pools)
    assert decide(facts(spam_score=3.0), strict, HAS_MX).reasons == ("spam-score",)


def test_domain_without_a_and_mx_goes_high_risk_whatever_the_score():
    decision = decide(facts(spam_score=-10.0), POLICY, NEITHER)
    assert (decision.pool, decision.reasons) == ("high-risk", ("no-a-mx",))


def test_a_record_alone_is_enough():
    assert decide(facts(), POLICY, HAS_A).pool == "normal"


def test_invalid_sender_domain_counts_as_no_a_mx():
    bad = facts(sender_domain="", sender_domain_error="'-x-' is not a valid domain")
    assert decide(bad, POLICY, None).reasons == ("no-a-mx",)


def test_dsn_always_goes_high_risk():
    dsn = facts(mail_from="", sender_domain="", is_dsn=True, rcpt_to=("bob@example.org",))
    decision = decide(dsn, POLICY, None)
    assert (decision.pool, decision.reasons, decision.is_dsn) == ("high-risk", ("dsn",), True)


def test_every_reason_that_held_is_reported():
    decision = decide(facts(spam_score=20.0, is_dsn=True), POLICY, NEITHER)
    assert decision.reasons == ("spam-score", "no-a-mx", "dsn")


def test_failed_lookup_is_recorded_and_ignored_by_default():
    decision = decide(facts(), POLICY, FAILED)
    assert (decision.pool, decision.reasons) == ("normal", ("dns-unknown",))
    assert "DNS lookup for example.com failed: timeout" in decision.problems


def test_failed_lookup_goes_high_risk_when_the_policy_says_so():
    cautious = PolicySnapshot(on_dns_failure="high-risk", pools=POLICY.pools)
    decision = decide(facts(), cautious, FAILED)
    assert (decision.pool, decision.reasons) == ("high-risk", ("dns-unknown",))


def test_source_address_is_stable_per_sender_domain():
    picks = {decide(facts(), POLICY, HAS_MX).source_ip for _ in range(5)}
    assert len(picks) == 1


def test_domains_spread_over_the_pool():
    chosen = Counter(
        decide(facts(sender_domain=f"customer{i}.example"), POLICY, HAS_MX).source_ip
        for i in range(1400)
    )
    assert set(chosen) == set(NORMAL.addresses)
    assert max(chosen.values()) < 2 * min(chosen.values())


def test_removing_an_address_moves_only_its_own_domains():
    domains = [f"customer{i}.example" for i in range(500)]
    before = {d: NORMAL.pick(d) for d in domains}
    smaller = PoolSnapshot("normal", "normal", NORMAL.addresses[1:])
    moved = [d for d in domains if smaller.pick(d) != before[d]]
    assert moved and all(before[d] == NORMAL.addresses[0] for d in moved)


def test_empty_normal_pool_falls_back_to_high_risk_addresses():
    empty = PolicySnapshot(
        pools={"normal": PoolSnapshot("normal", "normal", ()), "high-risk": RISKY}
    )
    decision = decide(facts(), empty, HAS_MX)
    assert decision.fallback and decision.reasons == ("fallback",)
    assert decision.source_ip in RISKY.addresses and decision.pool == "high-risk"
    assert "no address in rotation in the normal pool" in decision.problems


def test_fallback_none_leaves_no_source_address():
    policy = PolicySnapshot(
        fallback="none", pools={"normal": PoolSnapshot("normal", "normal", ()), "high-risk": RISKY}
    )
    decision = decide(facts(), policy, HAS_MX)
    assert (decision.source_ip, decision.fallback, decision.pool) == (None, False, "normal")


def test_empty_high_risk_pool_never_falls_back_to_the_normal_pool():
    policy = PolicySnapshot(
        pools={"normal": NORMAL, "high-risk": PoolSnapshot("high-risk", "high-risk", ())}
    )
    decision = decide(facts(is_dsn=True), policy, HAS_MX)
    assert decision.source_ip is None
    assert decision.pool == "high-risk"


@pytest.mark.parametrize("score", [float("-inf"), -1e9, 0.0, 1e9])
def test_extreme_scores_decide(score):
    assert decide(facts(spam_score=score), POLICY, HAS_MX).pool in ("normal", "high-risk")
