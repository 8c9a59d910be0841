"""DSN spike detection and its likely cause: plain functions on plain data.

**Baseline.** A series' recent window (say the last 15 minutes) is compared with the same
window of the day on each of the previous `days` days (14 by default). Their median is the
baseline and their median absolute deviation (MAD, scaled by 1.4826 to estimate a standard
deviation) its spread. Comparing the same time of day follows the daily rhythm without
modelling it; the median of 14 days barely moves for a few weekend days or for earlier
spikes, which it would have to be more than half of to matter (a mean or an EWMA would be
dragged up by every earlier spike and then miss the next one). Counts of rare events are
Poisson-like, and real ones vary more, so the spread never counts as less than
1.5 x sqrt(baseline) or 1: a series that is always 0 or 1 does not alarm on a 3, and a
customer growing by half in three weeks does not alarm at all (tests/reputation/test_spikes.py
measures both).

**Spike.** A window is *elevated* when it exceeds baseline + sensitivity x spread AND holds at
least `min_count` DSNs (three bounces at night are no spike). A spike opens on the first
elevated window, stays one spike while windows remain elevated, and closes once the series has
been back to normal for `quiet_minutes`.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

MAD_TO_SIGMA = 1.4826
OVERDISPERSION = 1.5  # real DSN counts vary more than a Poisson process would


@dataclass(frozen=True)
class Thresholds:
    window_minutes: int = 15
    sensitivity: float = 5.0  # spreads above the baseline
    min_count: int = 20  # DSNs in the window, at least
    quiet_minutes: int = 30  # back to normal this long before a spike closes
    days: int = 14  # history compared with


@dataclass(frozen=True)
class Verdict:
    count: int
    baseline: float
    spread: float
    elevated: bool

    @property
    def score(self) -> float:
        """How many spreads above the baseline the window is."""
        return (self.count - self.baseline) / self.spread


def evaluate(count: int, history: Sequence[int], thresholds: Thresholds) -> Verdict:
    """Judge one window's `count` against the same window on previous days (`history`)."""
    baseline = statistics.median(history) if history else 0.0
    mad = statistics.median(abs(h - baseline) for h in history) if history else 0.0
    spread = max(MAD_TO_SIGMA * mad, OVERDISPERSION * math.sqrt(baseline), 1.0)
    elevated = count >= thresholds.min_count and count > baseline + thresholds.sensitivity * spread
    return Verdict(count, baseline, spread, elevated)


def window_starts(now: datetime, thresholds: Thresholds) -> list[datetime]:
    """Start of the current window, then of the same window on each previous day. The
    current window ends with the current (partial) minute: what was just flushed counts."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=thresholds.window_minutes)
    return [start - timedelta(days=d) for d in range(thresholds.days + 1)]


# --- spike life cycle --------------------------------------------------------------------


@dataclass
class SpikeState:
    """What the detector remembers of an open spike."""

    started: datetime
    peak: int
    baseline: float
    calm_since: datetime | None = None


@dataclass(frozen=True)
class Step:
    action: str  # "open", "update", "close" or "none"
    state: SpikeState | None


def step(state: SpikeState | None, verdict: Verdict, now: datetime, thresholds: Thresholds) -> Step:
    """Advance one series' spike by one evaluation."""
    if state is None:
        if verdict.elevated:
            return Step("open", SpikeState(now, verdict.count, verdict.baseline))
        return Step("none", None)
    if verdict.elevated:
        state.peak = max(state.peak, verdict.count)
        state.calm_since = None
        return Step("update", state)
    state.calm_since = state.calm_since or now
    if now - state.calm_since >= timedelta(minutes=thresholds.quiet_minutes):
        return Step("close", state)
    return Step("update", state)


# --- likely cause --------------------------------------------------------------------------

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


# --- a whole series at once (tests, benchmarks, back-fills) ------------------------------------


@dataclass(frozen=True)
class Found:
    start: int  # minute index of the evaluation that opened the spike
    end: int | None  # minute index of the evaluation that closed it; None while open
    peak: int
    baseline: float


def scan(counts: Sequence[int], thresholds: Thresholds, *, every: int = 5, begin: int = 0):
    """Run the detector over a per-minute series (index = minute), evaluating every `every`
    minutes from `begin` on; returns the spikes found, in order."""
    prefix = [0]
    for value in counts:
        prefix.append(prefix[-1] + value)
    window, day = thresholds.window_minutes, 1440

    def total(end: int) -> int:
        return prefix[end] - prefix[max(0, end - window)] if end > 0 else 0

    found, state = [], None
    epoch = datetime(2000, 1, 1)
    for minute in range(max(begin, window), len(counts) + 1, every):
        history = [total(minute - d * day) for d in range(1, thresholds.days + 1)]
        verdict = evaluate(total(minute), history, thresholds)
        now = epoch + timedelta(minutes=minute)
        result = step(state, verdict, now, thresholds)
        if result.action == "open":
            found.append([minute, None, verdict.count, verdict.baseline])
        elif result.action in ("update", "close") and found:
            found[-1][2] = max(found[-1][2], verdict.count)
        if result.action == "close":
            found[-1][1] = minute
        state = None if result.action == "close" else result.state
    return [Found(*item) for item in found]
