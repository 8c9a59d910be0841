"""The likely cause of a DSN spike, from the evidence of its window: directory harvest,
backscatter, spam attack, rogue server or blocked at receiver. Plain functions on plain data:
each classifier states its case with a confidence, and `likely_cause()` picks the best one."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

BLOCKLIST_TEXT = re.compile(
    r"blocked using|block ?list|black ?list|\bRBL\b|DNSBL|spamhaus|spamcop|barracuda|"
    r"uceprotect|abusix|mailspike|psbl|listed (?:at|on|in|by)|poor reputation",
    re.IGNORECASE,
)
IP_IN_TEXT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
UNKNOWN_USER = re.compile(r"^5\.1\.(1|0|10)$")


@dataclass(frozen=True)
class DSNSampleFacts:
    """One DSN recipient as the evidence sees it."""

    source: str
    recipient: str  # who receives the DSN (the envelope recipient)
    original_recipient: str  # Final-Recipient: whom the bounced message was for
    status: str
    diagnostic: str = ""
    reporting_mta: str = ""
    routed_by_us: bool | None = None  # the bounced message's Message-ID was routed here


@dataclass
class Evidence:
    """Aggregated facts of a spike's window, with the same window's baseline per source."""

    total: int
    statuses: Counter = field(default_factory=Counter)
    sources: Counter = field(default_factory=Counter)
    source_baselines: dict[str, float] = field(default_factory=dict)
    recipient_domains: Counter = field(default_factory=Counter)
    original_domains: Counter = field(default_factory=Counter)
    reporting_mtas: Counter = field(default_factory=Counter)
    samples: list[DSNSampleFacts] = field(default_factory=list)
    high_risk_share: float = 0.0  # of all routed mail from the top source, in the window
    high_risk_share_before: float = 0.0  # the same, over the baseline days

    def top(self, counter: Counter, n: int = 5) -> list[tuple[str, int]]:
        return counter.most_common(n)


@dataclass(frozen=True)
class Cause:
    name: str  # one of CAUSES, or "unknown"
    confidence: float  # 0..1
    evidence: list[str]  # sentences for people


CAUSES = (
    "directory-harvest",
    "backscatter",
    "spam-attack",
    "rogue-server",
    "blocked-at-receiver",
)


def share(counter: Counter, predicate) -> float:
    total = sum(counter.values())
    return sum(n for key, n in counter.items() if predicate(key)) / total if total else 0.0


def is_policy_status(status: str) -> bool:
    return status.startswith(("5.7.", "4.7."))


def directory_harvest(ev: Evidence) -> Cause:
    unknown = share(ev.statuses, lambda s: bool(UNKNOWN_USER.match(s)))
    distinct = {s.original_recipient for s in ev.samples}
    domains = len(ev.original_domains)
    confidence = unknown * min(1.0, len(distinct) / max(10, len(ev.samples) * 0.5))
    confidence *= 1.0 if domains <= 3 else 0.5
    return Cause(
        "directory-harvest",
        confidence,
        [
            f"{unknown:.0%} of the DSNs say unknown user (5.1.1)",
            f"{len(distinct)} distinct original recipients in {len(ev.samples)} samples, "
            f"at {domains} domain(s): {', '.join(d for d, _ in ev.top(ev.original_domains, 3))}",
        ],
    )


def backscatter(ev: Evidence) -> Cause:
    top_domain, top_count = (ev.top(ev.recipient_domains, 1) or [("", 0)])[0]
    concentrated = top_count / ev.total if ev.total else 0.0
    recipients = {s.recipient for s in ev.samples if s.recipient.endswith("@" + top_domain)}
    known = [s.routed_by_us for s in ev.samples if s.routed_by_us is not None]
    foreign = known.count(False) / len(known) if known else 0.5
    spread = min(1.0, len(recipients) / max(10, len(ev.samples) * 0.5))
    # Rejections for policy (5.7.x) are about the sending address, not about forged senders.
    not_policy = 1.0 - share(ev.statuses, is_policy_status)
    return Cause(
        "backscatter",
        concentrated * spread * foreign * not_policy,
        [
            f"{concentrated:.0%} of the DSNs go to {top_domain or '-'}, "
            f"to {len(recipients)} distinct addresses there",
            f"{foreign:.0%} of the bounced messages were not routed by this service"
            if known
            else "the bounced messages' Message-IDs are unknown here",
        ],
    )


def spam_attack(ev: Evidence) -> Cause:
    rise = max(0.0, ev.high_risk_share - ev.high_risk_share_before)
    source, _ = (ev.top(ev.sources, 1) or [("", 0)])[0]
    return Cause(
        "spam-attack",
        min(1.0, rise * 2) * (1.0 if ev.high_risk_share >= 0.3 else 0.5),
        [
            f"high-risk routing from {source or 'the top source'}: "
            f"{ev.high_risk_share:.0%} now, {ev.high_risk_share_before:.0%} before",
        ],
    )


def rogue_server(ev: Evidence) -> Cause:
    source, count = (ev.top(ev.sources, 1) or [("", 0)])[0]
    dominance = count / ev.total if ev.total else 0.0
    usual = ev.source_baselines.get(source, 0.0)
    newness = 1.0 if usual < 1 else min(1.0, count / (usual * 20))
    # A generic signal: a more specific pattern (a blocklist named, unknown users) wins a tie.
    return Cause(
        "rogue-server",
        0.8 * dominance * newness,
        [
            f"{dominance:.0%} of the DSNs come from {source or '-'}, which usually sends "
            f"{usual:g} in such a window",
        ],
    )


def blocked_at_receiver(ev: Evidence) -> Cause:
    policy = share(ev.statuses, is_policy_status)
    texts = [s for s in ev.samples if BLOCKLIST_TEXT.search(s.diagnostic)]
    named = len(texts) / len(ev.samples) if ev.samples else 0.0
    addresses = Counter(ip for s in texts for ip in IP_IN_TEXT.findall(s.diagnostic))
    lines = [f"{policy:.0%} of the DSNs are policy rejections (5.7.x)"]
    if texts:
        lines.append(
            f"{len(texts)} diagnostics name a blocklist, e.g. {texts[0].diagnostic[:160]!r}"
        )
    if addresses:
        lines.append("addresses named: " + ", ".join(ip for ip, _ in addresses.most_common(5)))
    return Cause("blocked-at-receiver", max(policy * 0.6 + named * 0.4, named), lines)


CLASSIFIERS = (directory_harvest, backscatter, spam_attack, rogue_server, blocked_at_receiver)


def likely_cause(ev: Evidence, minimum: float = 0.35) -> tuple[Cause, list[Cause]]:
    """The best-supported cause (or "unknown" below `minimum`) and every cause's case."""
    causes = sorted((classify(ev) for classify in CLASSIFIERS), key=lambda c: -c.confidence)
    best = causes[0]
    if best.confidence < minimum:
        best = Cause("unknown", best.confidence, ["no cause fits the evidence well"])
    return best, causes
