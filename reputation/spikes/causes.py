"""The likely cause of a DSN spike, from the evidence of its window: directory harvest,
backscatter, spam attack, rogue server or blocked at receiver. Plain functions on plain data:
each classifier states its case with a confidence, and `likely_cause()` picks the best one.

Each cause needs a minimum of evidence (`MIN_EVIDENCE` DSNs or messages of its kind): below it
the cause is stated with confidence 0 and says what was missing. A source that routed mail
here before the window is a *known* customer server: when its DSNs jump it is a spam attack
(its mail turned high-risk) or a harvest (unknown users), never a rogue server, which needs an
unknown client or a Reporting-MTA never seen before."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from routing.dsn import refined_class_of

BLOCKLIST_TEXT = re.compile(
    r"blocked using|block ?list|black ?list|\bRBL\b|DNSBL|spamhaus|spamcop|barracuda|"
    r"uceprotect|abusix|mailspike|psbl|listed (?:at|on|in|by)|poor reputation",
    re.IGNORECASE,
)
IP_IN_TEXT = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")
MIN_EVIDENCE = 10  # DSNs (or routed messages) of a cause's kind, at least
MIN_BLOCKED = 5  # policy rejections naming the sending side, at least


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
    refined_class: str = ""  # unknown-user, mailbox-full, blocked, rate-limited, spam, other


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
    refined: Counter = field(default_factory=Counter)  # refined class -> DSNs
    high_risk_share: float = 0.0  # of all routed mail from the top source, in the window
    high_risk_share_before: float = 0.0  # the same, over the baseline days
    routed: int = 0  # messages (not DSNs) the top source routed in the window
    high_risk: int = 0  # of which through a high-risk pool
    known_sources: frozenset = frozenset()  # sources that routed mail before the window
    known_mtas: frozenset = frozenset()  # reporting MTAs seen in DSNs before the window

    def refined_share(self, name: str) -> float:
        if self.refined:
            return share(self.refined, lambda c: c == name)
        return share(self.statuses, lambda s: refined_class_of(s) == name)

    def refined_count(self, name: str) -> int:
        if self.refined:
            return self.refined.get(name, 0)
        return sum(n for s, n in self.statuses.items() if refined_class_of(s) == name)

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
    unknown = ev.refined_share("unknown-user")
    distinct = {s.original_recipient for s in ev.samples}
    top_domain, top_count = (ev.top(ev.original_domains, 1) or [("", 0)])[0]
    concentrated = top_count / ev.total if ev.total else 0.0
    confidence = unknown * min(1.0, len(distinct) / max(10, len(ev.samples) * 0.5))
    confidence *= min(1.0, concentrated / 0.5)
    lines = [
        f"{unknown:.0%} of the DSNs say unknown user",
        f"{len(distinct)} distinct original recipients in {len(ev.samples)} samples, "
        f"{concentrated:.0%} of the DSNs at {top_domain or '-'}",
    ]
    if ev.refined_count("unknown-user") < MIN_EVIDENCE or len(distinct) < MIN_EVIDENCE:
        return too_little("directory-harvest", lines, "unknown users at distinct addresses")
    return Cause("directory-harvest", confidence, lines)


def too_little(name: str, lines: list[str], what: str) -> Cause:
    return Cause(name, 0.0, [*lines, f"too little evidence: fewer than {MIN_EVIDENCE} {what}"])


def backscatter(ev: Evidence) -> Cause:
    top_domain, top_count = (ev.top(ev.recipient_domains, 1) or [("", 0)])[0]
    concentrated = top_count / ev.total if ev.total else 0.0
    recipients = {s.recipient for s in ev.samples if s.recipient.endswith("@" + top_domain)}
    known = [s.routed_by_us for s in ev.samples if s.routed_by_us is not None]
    foreign = known.count(False) / len(known) if known else 0.5
    spread = min(1.0, len(recipients) / max(10, len(ev.samples) * 0.5))
    # Rejections for policy (5.7.x) are about the sending address, not about forged senders.
    not_policy = 1.0 - ev.refined_share("blocked")
    lines = [
        f"{concentrated:.0%} of the DSNs go to {top_domain or '-'}, "
        f"to {len(recipients)} distinct addresses there",
        f"{foreign:.0%} of the bounced messages were not routed by this service"
        if known
        else "the bounced messages' Message-IDs are unknown here",
    ]
    if len(recipients) < MIN_EVIDENCE:
        return too_little("backscatter", lines, "distinct recipients at one domain")
    return Cause("backscatter", concentrated * spread * foreign * not_policy, lines)


def spam_attack(ev: Evidence) -> Cause:
    rise = max(0.0, ev.high_risk_share - ev.high_risk_share_before)
    source, _ = (ev.top(ev.sources, 1) or [("", 0)])[0]
    lines = [
        f"high-risk routing from {source or 'the top source'}: "
        f"{ev.high_risk_share:.0%} of {ev.routed} messages now, "
        f"{ev.high_risk_share_before:.0%} before",
    ]
    if ev.high_risk < MIN_EVIDENCE:
        return too_little("spam-attack", lines, "high-risk messages from the source")
    confidence = min(1.0, rise * 2) * (1.0 if ev.high_risk_share >= 0.3 else 0.5)
    return Cause("spam-attack", confidence, lines)


def rogue_server(ev: Evidence) -> Cause:
    source, count = (ev.top(ev.sources, 1) or [("", 0)])[0]
    dominance = count / ev.total if ev.total else 0.0
    usual = ev.source_baselines.get(source, 0.0)
    unknown_client = source not in ev.known_sources and usual < 1
    # The reporting MTAs of the top source's DSNs (its samples; all DSNs' without samples).
    reported = Counter(
        s.reporting_mta for s in ev.samples if s.source == source and s.reporting_mta
    )
    reported = reported or Counter({m: n for m, n in ev.reporting_mtas.items() if m})
    foreign = share(reported, lambda m: m not in ev.known_mtas) if reported else 0.0
    lines = [
        f"{dominance:.0%} of the DSNs come from {source or '-'}, "
        + (
            "a client that never routed mail here"
            if unknown_client
            else f"a known client (usually {usual:g} DSNs in such a window)"
        ),
        f"{foreign:.0%} of the DSNs name a reporting MTA never seen before",
    ]
    if count < MIN_EVIDENCE:
        return too_little("rogue-server", lines, "DSNs from one source")
    # A generic signal: a more specific pattern (a blocklist named, unknown users) wins a tie.
    return Cause("rogue-server", 0.8 * dominance * max(float(unknown_client), foreign), lines)


def blocked_at_receiver(ev: Evidence) -> Cause:
    policy = max(share(ev.statuses, is_policy_status), ev.refined_share("blocked"))
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
    if policy * ev.total < MIN_BLOCKED and len(texts) < MIN_BLOCKED:
        return Cause("blocked-at-receiver", 0.0, [*lines, "too little evidence"])
    return Cause("blocked-at-receiver", max(policy * 0.6 + named * 0.4, named), lines)


CLASSIFIERS = (directory_harvest, backscatter, spam_attack, rogue_server, blocked_at_receiver)


def likely_cause(ev: Evidence, minimum: float = 0.35) -> tuple[Cause, list[Cause]]:
    """The best-supported cause (or "unknown" below `minimum`) and every cause's case."""
    causes = sorted((classify(ev) for classify in CLASSIFIERS), key=lambda c: -c.confidence)
    best = causes[0]
    if best.confidence < minimum:
        best = Cause("unknown", best.confidence, ["no cause fits the evidence well"])
    return best, causes
