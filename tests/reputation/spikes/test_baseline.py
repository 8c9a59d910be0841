"""Spike detection on synthetic but realistic per-minute DSN series (clock-free: series are
indexed by minute)."""

from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest

from reputation.spikes.baseline import (
    HOUR_OF_DAY,
    HOUR_OF_WEEK,
    Thresholds,
    evaluate,
    scan,
    season,
)

DAY = 1440
DAYS = 21
T = Thresholds()
START = 15 * DAY  # scan the last week, with two weeks of history before it


def rhythm(seed: int, level: float = 3.0, days: int = DAYS, growth: float = 0.0) -> list[int]:
    """Office-hours rhythm (peak mid-afternoon, quiet nights, calmer weekends) + Poisson noise."""
    rng = random.Random(seed)
    counts = []
    for minute in range(days * DAY):
        hour = (minute % DAY) / 60
        weekday = (minute // DAY) % 7 < 5
        rate = level * (0.15 + math.exp(-((hour - 14) ** 2) / 18)) * (1.0 if weekday else 0.4)
        rate *= 1 + growth * minute / (days * DAY)
        counts.append(poisson(rng, rate))
    return counts


def poisson(rng: random.Random, rate: float) -> int:
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def add(counts: list[int], start: int, minutes: int, per_minute: int) -> list[int]:
    out = list(counts)
    for m in range(start, start + minutes):
        out[m] += per_minute
    return out


@pytest.mark.parametrize("seed", range(5))
def test_daily_and_weekly_rhythm_with_noise_raises_no_spike(seed):
    assert scan(rhythm(seed), T, begin=START) == []


def test_one_off_blip_of_a_minute_is_no_spike():
    series = add(rhythm(1), START + 3 * DAY + 600, 1, 12)
    assert scan(series, T, begin=START) == []


def test_few_bounces_at_night_are_no_spike():
    quiet = [0] * (DAYS * DAY)
    series = add(quiet, START + 2 * DAY + 180, 15, 1)  # 15 DSNs at 3 am where there are none
    assert scan(series, T, begin=START) == []


def test_slow_rise_over_days_is_absorbed_by_the_baseline():
    growing = rhythm(2, growth=0.6)  # +60% over three weeks: a customer growing
    assert scan(growing, T, begin=START) == []


@pytest.mark.parametrize("seed", range(3))
def test_true_spike_is_found_once_and_closes(seed):
    at = START + 4 * DAY + 10 * 60  # 10:00 on day 19
    series = add(rhythm(seed), at, 90, 6)  # 540 extra DSNs over 90 minutes
    found = scan(series, T, begin=START)
    assert len(found) == 1
    spike = found[0]
    assert at <= spike.start <= at + 15
    assert spike.end is not None and at + 90 <= spike.end <= at + 90 + T.quiet_minutes + 20
    assert spike.peak >= 6 * T.window_minutes


def test_earlier_spikes_do_not_hide_a_new_one():
    series = rhythm(4)
    for day in (3, 6, 9, 12):  # the same hour of four earlier days was already a spike
        series = add(series, day * DAY + 14 * 60, 60, 6)
    series = add(series, START + 2 * DAY + 14 * 60, 60, 6)
    found = scan(series, T, begin=START)
    assert len(found) == 1 and found[0].start >= START + 2 * DAY + 14 * 60


def test_spike_at_night_is_found_at_a_lower_absolute_level():
    series = add(rhythm(5), START + 3 * DAY + 120, 60, 2)  # 2/min at 2 am
    assert len(scan(series, T, begin=START)) == 1


def test_verdict_needs_both_sensitivity_and_minimum_count():
    assert not evaluate(19, [0] * 14, T).elevated  # far above, but below min_count
    assert evaluate(20, [0] * 14, T).elevated
    history = [30, 28, 33, 31, 29, 35, 30, 27, 32, 30, 31, 29, 33, 30]
    assert not evaluate(70, history, T).elevated  # 30 + 5 x 1.5 x sqrt(30.5) = 71.4
    assert evaluate(72, history, T).elevated


def monday_peak(seed: int, weeks: int) -> list[int]:
    """A busy service (about 180 DSNs per 15 minutes at 09:00) whose Mondays 08-10 bring
    twice a weekday's DSNs, every week (minute 0 is a Monday)."""
    series = rhythm(seed, level=30.0, days=weeks * 7)
    rng = random.Random(seed + 100)
    for week in range(weeks):
        for minute in range(week * 7 * DAY + 8 * 60, week * 7 * DAY + 10 * 60):
            series[minute] += poisson(rng, series[minute] or 1)
    return series


def test_the_season_follows_the_week_once_three_weeks_are_kept():
    window = timedelta(minutes=15)
    assert season(timedelta(days=20), window).mode == HOUR_OF_DAY
    weekly = season(timedelta(days=22), window)
    assert weekly.mode == HOUR_OF_WEEK and weekly.weeks == 3
    assert len(weekly.offsets) == 15  # the same window and two either side, each week
    assert season(timedelta(days=40), window).weeks == 4


@pytest.mark.parametrize("seed", range(3))
def test_a_weekly_monday_peak_never_alerts_once_the_week_is_learned(seed):
    series = monday_peak(seed, weeks=6)
    learned = 3 * 7 * DAY + 60  # three weeks and the 30-minute neighbours
    assert scan(series, T, begin=learned) == []
    # The same Mondays against the previous days' same hour: every Monday alarms.
    by_day = scan(series, T, begin=learned, weeks=0)
    mondays = {found.start // (7 * DAY) for found in by_day}
    assert mondays == {3, 4, 5}


def test_a_real_spike_on_a_monday_peak_is_still_found():
    series = monday_peak(1, weeks=5)
    at = 4 * 7 * DAY + 9 * 60  # Monday of week five, 09:00, at the peak
    found = scan(add(series, at, 20, 40), T, begin=3 * 7 * DAY + 60)
    assert len(found) == 1 and at <= found[0].start <= at + 15
