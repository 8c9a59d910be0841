"""The high-risk delivery pool rules, as one pure function from facts to a decision.

A message goes through the high-risk pool when its spam score is above the threshold, when
its sender domain has no A/AAAA and no MX record, or when it is a DSN; every reason that
held is reported. Within the pool, the source address is stable per sender domain.
"""

from __future__ import annotations

from routing.dns import DomainLookup
from routing.facts import Decision, MessageFacts
from routing.policy import HIGH_RISK, NORMAL, PolicySnapshot

SPAM_SCORE, NO_A_MX, DSN, DNS_UNKNOWN, FALLBACK = (
    "spam-score",
    "no-a-mx",
    "dsn",
    "dns-unknown",
    "fallback",
)
HIGH_RISK_REASONS = {SPAM_SCORE, NO_A_MX, DSN}


def reasons_for(
    facts: MessageFacts, policy: PolicySnapshot, lookup: DomainLookup | None
) -> list[str]:
    reasons = []
    if facts.spam_score is not None and facts.spam_score > policy.spam_threshold:
        reasons.append(SPAM_SCORE)
    if (lookup is not None and lookup.missing_a_and_mx) or facts.sender_domain_error:
        reasons.append(NO_A_MX)
    elif lookup is not None and lookup.unknown:
        reasons.append(DNS_UNKNOWN)
    if facts.is_dsn:
        reasons.append(DSN)
    return reasons


def decide(facts: MessageFacts, policy: PolicySnapshot, lookup: DomainLookup | None) -> Decision:
    """The pool, source address and reasons for one message. `lookup` is the sender-domain
    check (None when there is no sender domain to check)."""
    reasons = reasons_for(facts, policy, lookup)
    high = bool(HIGH_RISK_REASONS.intersection(reasons)) or (
        DNS_UNKNOWN in reasons and policy.on_dns_failure == HIGH_RISK
    )
    kind = HIGH_RISK if high else NORMAL
    problems = list(facts.problems) + list(policy.problems)
    if lookup is not None and lookup.error:
        problems.append(f"DNS lookup for {lookup.domain} failed: {lookup.error}")
    pool = policy.pool(kind)
    key = facts.sender_domain or facts.dsn_recipient_domain
    address = pool.pick(key) if pool else None
    fallback = False
    if address is None:
        problems.append(f"no address in rotation in the {kind} pool")
        other = policy.pool(HIGH_RISK)
        if policy.fallback == HIGH_RISK and kind == NORMAL and other and other.addresses:
            pool, address, fallback = other, other.pick(key), True
            reasons.append(FALLBACK)
    return Decision(
        pool=pool.name if pool else kind,
        pool_kind=pool.kind if pool else kind,
        source_ip=address,
        reasons=tuple(reasons),
        spam_score=facts.spam_score,
        is_dsn=facts.is_dsn,
        sender_domain=facts.sender_domain,
        fallback=fallback,
        problems=tuple(problems),
    )
