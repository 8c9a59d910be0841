"""DSN spike detection on plain data: a series' baseline, when a window is a spike, and when
it closes (grouping series into incidents is `reputation.spikes.incidents`, the likely cause
`reputation.spikes.causes`).

**Baseline.** A series' recent window (say the last 15 minutes) is compared with the same
window in the past, in one of two ways:

- *hour of week*, once the service has at least `MIN_WEEKS` (3) weeks of per-minute history:
  the same window on the same weekday of each previous week (up to `WEEKS`, 4, as far as the
  per-minute counts reach), and the windows up to 30 minutes either side of it. A Monday
  08:00 peak is compared with earlier Mondays at 08:00, so a peak that recurs every week never
  alarms; the neighbouring windows give the median and its spread enough values, and let a
  peak that starts a few minutes late still count as usual;
- *hour of day* before that: the same window on each of the previous `days` days (14).

Their median is the baseline and their median absolute deviation (MAD, scaled by 1.4826 to
estimate a standard deviation) its spread: the median barely moves for a few odd days or for
earlier spikes, which would have to be more than half of the history to matter (a mean or an
EWMA would be dragged up by every earlier spike and then miss the next one). Counts of rare
events are Poisson-like, and real ones vary more, so the spread never counts as less than
1.5 x sqrt(baseline) or 1: a series that is always 0 or 1 does not alarm on a 3, and a
customer growing by half in three weeks does not alarm at all
(tests/reputation/spikes/test_baseline.py measures both). The dashboard draws the same
baseline and threshold (`reputation.dashboard.history`).

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
MIN_WEEKS = 3  # weeks of history before the baseline follows the hour of the week
WEEKS = 4  # previous weeks compared with, at most (per-minute counts are kept 32 days)
SHIFT_SPAN = timedelta(minutes=30)  # neighbouring windows compared with, either side
DAY, WEEK = timedelta(days=1), timedelta(days=7)
HOUR_OF_WEEK, HOUR_OF_DAY = "hour-of-week", "hour-of-day"


@dataclass(frozen=True)
class Thresholds:
    window_minutes: int = 15
    sensitivity: float = 5.0  # spreads above the baseline
    min_count: int = 20  # DSNs in the window, at least
    quiet_minutes: int = 30  # back to normal this long before a spike closes
    days: int = 14  # history compared with, by hour of day

    @property
    def window(self) -> timedelta:
        return timedelta(minutes=self.window_minutes)


@dataclass(frozen=True)
class Verdict:
    count: int
    baseline: float
    spread: float
    elevated: bool
    threshold: float = 0.0  # the count above which the window is elevated

    @property
    def score(self) -> float:
        """How many spreads above the baseline the window is."""
        return (self.count - self.baseline) / self.spread


def spread_of(history: Sequence[float], days: Sequence[float] = ()) -> tuple[float, float]:
    """(baseline, spread) of a history: median and MAD-as-sigma, with the Poisson floor.

    `days`, in the hour-of-week season, are the same window on the previous days: four weeks
    are only four independent days, too few to see how much a day can differ from another,
    so the spread is at least the days' relative MAD applied to the baseline."""
    baseline = statistics.median(history) if history else 0.0
    mad = statistics.median(abs(h - baseline) for h in history) if history else 0.0
    sigma = MAD_TO_SIGMA * mad
    if days:
        level = statistics.median(days)
        if level > 0:
            relative = statistics.median(abs(d - level) for d in days) / level
            sigma = max(sigma, MAD_TO_SIGMA * relative * baseline)
    return baseline, max(sigma, OVERDISPERSION * math.sqrt(baseline), 1.0)


def threshold_of(baseline: float, spread: float, thresholds: Thresholds) -> float:
    """The count a window must exceed (and reach `min_count`) to be elevated."""
    return max(baseline + thresholds.sensitivity * spread, thresholds.min_count - 1)


def evaluate(
    count: int, history: Sequence[float], thresholds: Thresholds, days: Sequence[float] = ()
) -> Verdict:
    """Judge one window's `count` against the same window in the past (`history`; `days`:
    see `spread_of`)."""
    baseline, spread = spread_of(history, days)
    elevated = count >= thresholds.min_count and count > baseline + thresholds.sensitivity * spread
    return Verdict(count, baseline, spread, elevated, threshold_of(baseline, spread, thresholds))


# --- which past windows make the baseline -----------------------------------------------------


@dataclass(frozen=True)
class Season:
    """How a window's history is chosen: its mode, the offsets back to each past window of
    the baseline, and (hour of week) to the same window on previous days, for the spread."""

    mode: str  # HOUR_OF_WEEK or HOUR_OF_DAY
    offsets: tuple[timedelta, ...]
    day_offsets: tuple[timedelta, ...] = ()

    @property
    def weeks(self) -> int:
        return len({round(o / WEEK) for o in self.offsets}) if self.mode == HOUR_OF_WEEK else 0

    @property
    def all_offsets(self) -> tuple[timedelta, ...]:
        """Every past window read: the baseline's, then the days'."""
        return self.offsets + self.day_offsets

    def split(self, past: Sequence[float]) -> tuple[Sequence[float], Sequence[float]]:
        """Counts of `all_offsets` windows, as (baseline history, days)."""
        return past[: len(self.offsets)], past[len(self.offsets) :]

    def judge(self, count: int, past: Sequence[float], thresholds: Thresholds) -> Verdict:
        """Verdict for a window holding `count`, given the counts of `all_offsets` windows."""
        history, days = self.split(past)
        return evaluate(count, history, thresholds, days)


def season(
    history_reaches: timedelta, window: timedelta, days: int = 14, weeks: int = WEEKS
) -> Season:
    """The season for a window of `window`, given how far back counts reach (from the current
    window's start): hour of week with at least MIN_WEEKS weeks, else hour of day."""
    shifts = shifts_for(window)
    usable = [
        k
        for k in range(1, weeks + 1)
        if k * WEEK + max(shifts, default=timedelta()) <= history_reaches
    ]
    if len(usable) >= MIN_WEEKS:
        offsets = tuple(k * WEEK + s for k in usable for s in shifts)
        return Season(HOUR_OF_WEEK, offsets, tuple(d * DAY for d in range(1, days + 1)))
    return Season(HOUR_OF_DAY, tuple(d * DAY for d in range(1, days + 1)))


def shifts_for(window: timedelta) -> list[timedelta]:
    """The same window and its neighbours up to SHIFT_SPAN either side, one window apart."""
    n = int(SHIFT_SPAN / window) if window <= SHIFT_SPAN else 0
    return [s * window for s in range(-n, n + 1)]


def window_starts(now: datetime, thresholds: Thresholds, the_season: Season) -> list[datetime]:
    """Start of the current window, then of each past window of `the_season`. The current
    window ends with the current (partial) minute: what was just flushed counts."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - thresholds.window
    return [start] + [start - offset for offset in the_season.all_offsets]


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


def scan(
    counts: Sequence[int],
    thresholds: Thresholds,
    *,
    every: int = 5,
    begin: int = 0,
    weeks: int = WEEKS,
):
    """Run the detector over a per-minute series (index = minute 0 of a week's Monday, as the
    season is chosen by how far the series reaches back), evaluating every `every` minutes
    from `begin` on; returns the spikes found, in order. `weeks=0` keeps the hour-of-day
    baseline whatever the history."""
    prefix = [0]
    for value in counts:
        prefix.append(prefix[-1] + value)
    window = thresholds.window_minutes

    def total(end: int) -> int:
        end = min(end, len(counts))
        return prefix[end] - prefix[max(0, end - window)] if end > 0 else 0

    found, state = [], None
    epoch = datetime(2000, 1, 1)
    for minute in range(max(begin, window), len(counts) + 1, every):
        reach = timedelta(minutes=minute - window)
        the_season = season(reach, thresholds.window, thresholds.days, weeks)
        past = [total(minute - o // timedelta(minutes=1)) for o in the_season.all_offsets]
        verdict = the_season.judge(total(minute), past, thresholds)
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
