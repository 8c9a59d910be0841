"""DSN spike detection on plain data: a series' baseline, when a window is a spike, and when
it closes (the likely cause is `reputation.spikes.causes`).

**Baseline.** A series' recent window (say the last 15 minutes) is compared with the same
window of the day on each of the previous `days` days (14 by default). Their median is the
baseline and their median absolute deviation (MAD, scaled by 1.4826 to estimate a standard
deviation) its spread. Comparing the same time of day follows the daily rhythm without
modelling it; the median of 14 days barely moves for a few weekend days or for earlier
spikes, which it would have to be more than half of to matter (a mean or an EWMA would be
dragged up by every earlier spike and then miss the next one). Counts of rare events are
Poisson-like, and real ones vary more, so the spread never counts as less than
1.5 x sqrt(baseline) or 1: a series that is always 0 or 1 does not alarm on a 3, and a
customer growing by half in three weeks does not alarm at all
(tests/reputation/spikes/test_baseline.py measures both).

**Spike.** A window is *elevated* when it exceeds baseline + sensitivity x spread AND holds at
least `min_count` DSNs (three bounces at night are no spike). A spike opens on the first
elevated window, stays one spike while windows remain elevated, and closes once the series has
been back to normal for `quiet_minutes`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
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
