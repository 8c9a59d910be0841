"""The periodic DSN spike check: every series of every dimension, judged against its own
baseline; spikes opened, followed and closed as rows, each with its likely cause."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from reputation.models import Spike, SpikeThreshold
from reputation.spikes import evidence as evidence_module
from reputation.spikes.baseline import SpikeState, Thresholds, evaluate, step
from reputation.spikes.causes import Evidence, likely_cause
from reputation.spikes.series import DIMENSIONS, window_sums


@dataclass
class DetectionRun:
    series: int = 0
    opened: list[Spike] = field(default_factory=list)
    closed: list[Spike] = field(default_factory=list)


def thresholds_by_series() -> tuple[Thresholds, dict[tuple[str, str], Thresholds]]:
    """The global thresholds and the overrides per (dimension, value); value "" = whole
    dimension."""
    default, overrides = Thresholds(), {}
    for row in SpikeThreshold.objects.filter(enabled=True):
        if not row.dimension:
            default = row.thresholds()
        else:
            overrides[(row.dimension, row.value)] = row.thresholds()
    return default, overrides


def detect(now: datetime) -> DetectionRun:
    """One run over every dimension. Idempotent for a given `now`."""
    run = DetectionRun()
    default, overrides = thresholds_by_series()
    for dimension in DIMENSIONS:
        base = overrides.get((dimension, ""), default)
        sums = window_sums(dimension, now, base)
        open_spikes = {s.value: s for s in Spike.objects.filter(dimension=dimension, ended=None)}
        for value in set(sums) | set(open_spikes):
            thresholds = overrides.get((dimension, value), base)
            counts = sums.get(value) or [0] * (thresholds.days + 1)
            if thresholds is not base:
                counts = window_sums_one(dimension, value, now, thresholds)
            run.series += 1
            follow(run, dimension, value, counts, open_spikes.get(value), now, thresholds)
    return run


def window_sums_one(dimension: str, value: str, now, thresholds: Thresholds) -> list[int]:
    sums = window_sums(dimension, now, thresholds)
    return sums.get(value) or [0] * (thresholds.days + 1)


@transaction.atomic
def follow(run, dimension, value, counts, spike: Spike | None, now, thresholds) -> None:
    verdict = evaluate(counts[0], counts[1:], thresholds)
    state = spike.state() if spike else None
    result = step(state, verdict, now, thresholds)
    if result.action == "open":
        run.opened.append(open_spike(dimension, value, verdict, now, thresholds))
    elif result.action == "update":
        update_spike(spike, result.state, verdict, now, thresholds)
    elif result.action == "close":
        spike.ended = now
        spike.save(update_fields=["ended", "updated"])
        run.closed.append(spike)


def judge(dimension: str, value: str, start: datetime, end: datetime, days: int):
    facts = evidence_module.gather(
        dimension=dimension, value=value, start=start, end=end, days=days
    )
    cause, causes = likely_cause(facts)
    return facts, cause, causes


def open_spike(dimension, value, verdict, now, thresholds: Thresholds) -> Spike:
    start = now - timedelta(minutes=thresholds.window_minutes)
    facts, cause, causes = judge(dimension, value, start, now, thresholds.days)
    return Spike.objects.create(
        dimension=dimension,
        value=value,
        started=now,
        peak=verdict.count,
        baseline=verdict.baseline,
        last_count=verdict.count,
        cause=cause.name,
        confidence=round(cause.confidence, 3),
        evidence=evidence_document(facts, cause, causes),
    )


def update_spike(spike: Spike, state: SpikeState, verdict, now, thresholds) -> None:
    """Follow an open spike; at a new peak its evidence and cause are judged again."""
    fields = ["last_count", "calm_since", "updated"]
    spike.last_count, spike.calm_since = verdict.count, state.calm_since
    if verdict.count > spike.peak:
        start = now - timedelta(minutes=thresholds.window_minutes)
        facts, cause, causes = judge(spike.dimension, spike.value, start, now, thresholds.days)
        spike.peak, spike.cause = verdict.count, cause.name
        spike.confidence = round(cause.confidence, 3)
        spike.evidence = evidence_document(facts, cause, causes)
        fields += ["peak", "cause", "confidence", "evidence"]
    spike.save(update_fields=fields)


def evidence_document(facts: Evidence, cause, causes) -> dict:
    """The evidence as stored with the spike (JSON): what a person reads in admin and alerts."""
    return {
        "summary": cause.evidence,
        "causes": [
            {"name": c.name, "confidence": round(c.confidence, 3), "evidence": c.evidence}
            for c in causes
        ],
        "total": facts.total,
        "top_sources": facts.top(facts.sources),
        "top_recipient_domains": facts.top(facts.recipient_domains),
        "top_original_domains": facts.top(facts.original_domains),
        "top_statuses": facts.top(facts.statuses),
        "top_reporting_mtas": facts.top(facts.reporting_mtas),
        "source_baselines": facts.source_baselines,
    }
