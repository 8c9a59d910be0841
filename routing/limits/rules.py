"""Sender limits as data: who the sender is, which rule applies, and what a message adds to
each window. Pure functions, no I/O."""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass

from routing.facts import MessageFacts

HOUR, DAY = 3600, 86400

# The limits, each a window over one kind of count.
EXTERNAL_PER_HOUR = "external_per_hour"
INTERNAL_PER_HOUR = "internal_per_hour"
PER_DAY = "per_day"
HIGH_RISK_PER_HOUR = "high_risk_per_hour"
WINDOWS = {EXTERNAL_PER_HOUR: HOUR, INTERNAL_PER_HOUR: HOUR, PER_DAY: DAY, HIGH_RISK_PER_HOUR: HOUR}
LIMIT_NAMES = tuple(WINDOWS)

# Actions when a limit is reached.
ALERT, HIGH_RISK, BLOCK_TODAY, BLOCK = "alert", "high-risk", "block-today", "block"
ACTIONS = (ALERT, HIGH_RISK, BLOCK_TODAY, BLOCK)
REJECTING = frozenset({BLOCK_TODAY, BLOCK})

# Who the sender is.
IDENTITY_AUTO = "auto"  # SASL login, else the API's source, else the envelope sender
IDENTITY_SASL = "sasl"  # the SASL login only: mail without one is not limited
IDENTITY_ENVELOPE = "envelope"  # the envelope sender always
IDENTITIES = (IDENTITY_AUTO, IDENTITY_SASL, IDENTITY_ENVELOPE)

# When the store cannot be reached.
STORE_DELIVER, STORE_DEFER = "deliver", "defer"


@dataclass(frozen=True)
class LimitRule:
    """One `[[sender_limits]]` entry: a glob on the sender identity and its limits (None: no
    limit of that kind)."""

    match: str
    external_per_hour: int | None = None
    internal_per_hour: int | None = None
    per_day: int | None = None
    high_risk_per_hour: int | None = None
    action: str = BLOCK_TODAY

    def maximum(self, name: str) -> int | None:
        return getattr(self, name)

    def specificity(self) -> tuple[int, int]:
        """Higher is more specific: an exact match first, then the most literal characters."""
        wild = any(c in self.match for c in "*?[")
        literal = sum(1 for c in self.match if c not in "*?[]")
        return (0 if wild else 1, literal)


@dataclass(frozen=True)
class LimitPolicy:
    """The limits part of the routing policy snapshot."""

    rules: tuple[LimitRule, ...] = ()  # most specific first
    internal_domains: tuple[str, ...] = ()
    identity: str = IDENTITY_AUTO
    on_store_failure: str = STORE_DELIVER

    @property
    def active(self) -> bool:
        return bool(self.rules)

    def rule_for(self, sender: str) -> LimitRule | None:
        """The most specific rule whose glob matches `sender` (case-insensitive)."""
        for rule in self.rules:
            if fnmatch.fnmatchcase(sender, rule.match.lower()):
                return rule
        return None


def ordered(rules: list[LimitRule]) -> tuple[LimitRule, ...]:
    return tuple(sorted(rules, key=lambda r: (r.specificity(), r.match), reverse=True))


def is_address_literal(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True


def sender_identity(facts: MessageFacts, mode: str) -> str:
    """Who is sending, lowercased; "" when the message is not limited (the null sender of a
    DSN, or no SASL login in `sasl` mode). A client address (policyd without SASL) is not an
    identity: many senders share it."""
    if mode == IDENTITY_SASL:
        return facts.sasl_login.lower()
    if mode == IDENTITY_AUTO:
        if facts.sasl_login:
            return facts.sasl_login.lower()
        if facts.source and not is_address_literal(facts.source):
            return facts.source.lower()
    return (facts.mail_from or "").lower()


def is_internal(recipient: str, internal_domains: tuple[str, ...]) -> bool:
    """Whether `recipient`'s domain is one of `internal_domains` or below one."""
    domain = recipient.rpartition("@")[2].lower().rstrip(".")
    return any(domain == d or domain.endswith("." + d) for d in internal_domains)


def usage(facts: MessageFacts, policy: LimitPolicy, *, high_risk: bool) -> dict[str, int]:
    """What this message adds to each window: its recipients, and one high-risk message when
    it went high-risk for its spam score."""
    internal = sum(1 for r in facts.rcpt_to if is_internal(r, policy.internal_domains))
    total = max(len(facts.rcpt_to), facts.recipient_count)
    return {
        EXTERNAL_PER_HOUR: total - internal,  # recipients counted but not named: external
        INTERNAL_PER_HOUR: internal,
        PER_DAY: total,
        HIGH_RISK_PER_HOUR: int(high_risk),
    }


def limits_of(rule: LimitRule) -> dict[str, int]:
    """The windows `rule` limits: name -> maximum (0 would reject everything: kept as is)."""
    return {name: m for name in LIMIT_NAMES if (m := rule.maximum(name)) is not None}
