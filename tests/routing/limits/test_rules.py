"""Sender limits as data: identity, internal recipients, the most specific rule."""

from __future__ import annotations

from routing.facts import MessageFacts
from routing.limits import rules
from routing.limits.rules import LimitPolicy, LimitRule, ordered


def facts(**fields) -> MessageFacts:
    return MessageFacts(**{"mail_from": "bob@example.org", **fields})


def test_the_sasl_login_is_the_sender_before_the_source_and_the_envelope():
    both = facts(sasl_login="Alice", source="api-client")
    assert rules.sender_identity(both, rules.IDENTITY_AUTO) == "alice"
    assert rules.sender_identity(facts(source="api-client"), rules.IDENTITY_AUTO) == "api-client"
    assert rules.sender_identity(facts(), rules.IDENTITY_AUTO) == "bob@example.org"


def test_a_client_address_is_not_an_identity():
    for address in ("192.0.2.7", "2001:db8::1", "[192.0.2.7]"):
        assert rules.sender_identity(facts(source=address), "auto") == "bob@example.org"


def test_the_identity_modes_can_be_chosen():
    both = facts(sasl_login="alice", source="api-client")
    assert rules.sender_identity(both, rules.IDENTITY_ENVELOPE) == "bob@example.org"
    assert rules.sender_identity(facts(), rules.IDENTITY_SASL) == ""  # not limited


def test_recipients_in_internal_domains_and_their_subdomains_are_internal():
    policy = LimitPolicy(internal_domains=("example.com",))
    message = facts(rcpt_to=("a@example.com", "b@mail.example.com", "c@example.community"))
    assert rules.usage(message, policy, high_risk=True) == {
        "external_per_hour": 1,
        "internal_per_hour": 2,
        "per_day": 3,
        "high_risk_per_hour": 1,
    }


def test_the_most_specific_rule_wins():
    policy = LimitPolicy(
        rules=ordered(
            [
                LimitRule("*", per_day=1000),
                LimitRule("*@example.com", per_day=50),
                LimitRule("alice@example.com", per_day=5),
                LimitRule("a*@example.com", per_day=20),
            ]
        )
    )
    assert policy.rule_for("alice@example.com").per_day == 5
    assert policy.rule_for("anna@example.com").per_day == 20
    assert policy.rule_for("bob@example.com").per_day == 50
    assert policy.rule_for("bob@example.org").per_day == 1000


def test_only_the_limits_a_rule_sets_are_checked():
    rule = LimitRule("*", external_per_hour=20, per_day=0)
    assert rules.limits_of(rule) == {"external_per_hour": 20, "per_day": 0}
