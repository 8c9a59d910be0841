"""The engine's sender-limit step: a decision in, the decision with the limit's action out.

Runs after classification (a message that went high-risk for its spam score counts towards
`high_risk_per_hour`). Only the store is asked, with bounded waits; when it cannot answer,
the policy's `on_limit_store_failure` decides: deliver without limits (the default) or defer
(4xx). Never a rejection: a sender is rejected only on a limit that was counted.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from datetime import UTC, datetime

from routing.classify import SPAM_SCORE
from routing.facts import DEFER, REJECT, Decision, LimitHit, MessageFacts
from routing.limits import rules
from routing.limits.store import Hold, Store, Unavailable, default_store
from routing.policy import HIGH_RISK, PolicySnapshot

logger = logging.getLogger(__name__)
SENDER_LIMIT = "sender-limit"  # the reason of a message moved or rejected by a limit
MAX_SENDER = 255
LABELS = {
    rules.EXTERNAL_PER_HOUR: "external recipients per hour",
    rules.INTERNAL_PER_HOUR: "internal recipients per hour",
    rules.PER_DAY: "recipients per day",
    rules.HIGH_RISK_PER_HOUR: "high-risk messages per hour",
}


class LimitChecker:
    def __init__(self, store: Store | None = None, clock=lambda: datetime.now(UTC)):
        self._store, self.clock = store, clock
        self.lock = threading.Lock()
        self.failing = ""  # why the store failed, since it last answered (warned once)

    @property
    def store(self) -> Store:
        with self.lock:
            if self._store is None:
                self._store = default_store()
            return self._store

    def apply(self, facts: MessageFacts, decision: Decision, policy: PolicySnapshot) -> Decision:
        """`decision` with the sender limit's action, when a rule applies to the sender."""
        limits = policy.limits
        if not limits.active or facts.is_dsn:
            return decision
        sender = rules.sender_identity(facts, limits.identity)[:MAX_SENDER]
        rule = limits.rule_for(sender) if sender else None
        if rule is None:
            return decision
        adds = rules.usage(facts, limits, high_risk=SPAM_SCORE in decision.reasons)
        try:
            outcome = self.store.check(
                sender, rules.limits_of(rule), adds, rule.action, self.clock()
            )
        except Unavailable as exc:
            return self.unavailable(decision, limits.on_store_failure, str(exc))
        if self.failing:
            logger.warning("sender limits: the store answers again")
            self.failing = ""
        if outcome.hold is None:
            return decision
        return acted(facts, decision, outcome.hold, policy)

    def unavailable(self, decision: Decision, on_failure: str, why: str) -> Decision:
        if not self.failing:
            logger.warning("sender limits: the store cannot be reached (%s): %s", on_failure, why)
        self.failing = why
        if on_failure == rules.STORE_DEFER:
            problem = f"sender limits unavailable, message deferred: {why}"
            return not_routed(decision, DEFER, problem=problem)
        problem = f"sender limits not checked (store unavailable): {why}"
        return dataclasses.replace(decision, problems=(*decision.problems, problem))


def limit_hit(hold: Hold) -> LimitHit:
    return LimitHit(
        name=hold.limit,
        count=hold.count,
        window=hold.window,
        maximum=hold.maximum,
        sender=hold.sender,
        action=hold.action,
        since=hold.since.isoformat(timespec="seconds"),
        until=hold.until.isoformat(timespec="seconds") if hold.until else None,
    )


def not_routed(decision: Decision, action: str, *, problem: str = "", **changes) -> Decision:
    """`decision` without a pool: rejected or deferred."""
    problems = (*decision.problems, problem) if problem else decision.problems
    return dataclasses.replace(
        decision,
        pool="",
        pool_kind="",
        source_ip=None,
        fallback=False,
        action=action,
        problems=problems,
        **changes,
    )


def acted(facts: MessageFacts, decision: Decision, hold: Hold, policy: PolicySnapshot):
    hit = limit_hit(hold)
    reasons = (
        decision.reasons if SENDER_LIMIT in decision.reasons else (*decision.reasons, SENDER_LIMIT)
    )
    if hold.rejects:
        return not_routed(decision, REJECT, reasons=reasons, limit=hit)
    if hold.action != rules.HIGH_RISK or decision.pool_kind == HIGH_RISK:
        return dataclasses.replace(decision, limit=hit)
    pool = policy.pool(HIGH_RISK)
    key = facts.sender_domain or facts.dsn_recipient_domain
    address = pool.pick(key) if pool else None
    if address is None:
        problem = "no address in rotation in the high-risk pool"
        return dataclasses.replace(
            decision,
            source_ip=None,
            pool=pool.name if pool else HIGH_RISK,
            pool_kind=HIGH_RISK,
            reasons=reasons,
            limit=hit,
            problems=(*decision.problems, problem),
        )
    return dataclasses.replace(
        decision,
        pool=pool.name,
        pool_kind=HIGH_RISK,
        source_ip=address,
        fallback=False,
        reasons=reasons,
        limit=hit,
    )


def rejection_text(hit: LimitHit) -> str:
    """What the MTA tells the client, in one line."""
    until = (
        f"until {hit.until[:16].replace('T', ' ')} UTC"
        if hit.until
        else ("until an administrator releases it")
    )
    return (
        f"Poolwarden: sender {hit.sender} reached its limit of {hit.maximum} "
        f"{LABELS.get(hit.name, hit.name)}; its mail is rejected {until}"
    )
