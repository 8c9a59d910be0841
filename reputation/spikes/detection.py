"""The periodic DSN spike check: every series of every dimension judged against its own
seasonal baseline (`baseline`), the elevated ones grouped into incidents (`incidents`), and
each incident kept as one `Spike` row with its likely cause, its peak and baseline, and the
series involved (`Spike.series`). One incident, one row, one alert."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import transaction

from reputation.models import Spike, SpikeThreshold
from reputation.spikes import evidence as evidence_module
from reputation.spikes.baseline import Season, Thresholds, Verdict, season
from reputation.spikes.causes import Evidence, likely_cause
from reputation.spikes.incidents import Incident, Key, Member, advance, group
from reputation.spikes.series import DIMENSIONS, oldest_minute, window_sums
from routing.models import DSNCount, DSNDimensions


@dataclass
class DetectionRun:
    series: int = 0
    elevated: int = 0
    opened: list[Spike] = field(default_factory=list)
    closed: list[Spike] = field(default_factory=list)
    seasons: dict[str, str] = field(default_factory=dict)  # dimension -> season mode


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


def thresholds_of(
    default: Thresholds, overrides: dict[tuple[str, str], Thresholds], dimension: str, value: str
) -> Thresholds:
    """A series' thresholds: its own override, else its dimension's, else the global ones."""
    found = overrides.get((dimension, value)) or overrides.get((dimension, ""))
    return found or default


def season_at(now: datetime, thresholds: Thresholds, oldest: datetime | None) -> Season:
    """The season of a window ending now, given the oldest per-minute count kept."""
    start = now.replace(second=0, microsecond=0) + timedelta(minutes=1) - thresholds.window
    reach = start - oldest if oldest else timedelta()
    return season(reach, thresholds.window, thresholds.days)


def judge_all(now: datetime) -> tuple[dict[Key, Verdict], DetectionRun, Thresholds]:
    """Every series' verdict for the window ending now."""
    run = DetectionRun()
    default, overrides = thresholds_by_series()
    oldest = oldest_minute()
    verdicts: dict[Key, Verdict] = {}
    for dimension in DIMENSIONS:
        base = thresholds_of(default, overrides, dimension, "")
        base_season = season_at(now, base, oldest)
        run.seasons[dimension] = base_season.mode
        sums = window_sums(dimension, now, base, base_season)
        for value, counts in sums.items():
            thresholds = thresholds_of(default, overrides, dimension, value)
            the_season = base_season
            if thresholds is not base:
                the_season = season_at(now, thresholds, oldest)
                counts = window_sums(dimension, now, thresholds, the_season).get(value, [0])
            counts += [0] * (1 + len(the_season.all_offsets) - len(counts))
            verdicts[(dimension, value)] = the_season.judge(counts[0], counts[1:], thresholds)
    run.series = len(verdicts)
    return verdicts, run, default


def window_rows(now: datetime, thresholds: Thresholds) -> list[tuple[dict, int]]:
    """The current window's DSN rows, for grouping the elevated series."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    rows = DSNCount.objects.filter(minute__gte=end - thresholds.window, minute__lt=end)
    return [(row, row.pop("count")) for row in rows.values(*DSNDimensions.KEY, "count")]


def detect(now: datetime) -> DetectionRun:
    """One run over every dimension. Idempotent for a given `now`."""
    verdicts, run, default = judge_all(now)
    elevated = [key for key, verdict in verdicts.items() if verdict.elevated]
    run.elevated = len(elevated)
    with transaction.atomic():
        rows = {row.pk: row for row in Spike.objects.select_for_update().filter(ended=None)}
        incidents = [incident_of(row) for row in rows.values()]
        groups = group(elevated, window_rows(now, default)) if elevated else []
        changes = advance(
            incidents, verdicts, groups, now, timedelta(minutes=default.quiet_minutes)
        )
        for incident in changes.opened:
            run.opened.append(open_spike(incident, now, default))
        for incident in changes.peaked:
            rejudge(rows[incident.ref], incident, now, default)
        for incident in changes.followed:
            follow(rows[incident.ref], incident)
        for incident in changes.closed:
            spike = rows[incident.ref]
            follow(spike, incident, ended=now)
            run.closed.append(spike)
    return run


# --- incidents as rows ------------------------------------------------------------------------


def incident_of(spike: Spike) -> Incident:
    members = {
        (item["dimension"], item["value"]): Member.from_dict(item)
        for item in spike.series or []
        if isinstance(item, dict) and "dimension" in item and "value" in item
    }
    lead = (spike.dimension, spike.value)
    if lead not in members:  # a spike opened before incidents: its one series
        members[lead] = Member(spike.last_count, spike.baseline, 0.0, True, spike.peak)
    return Incident(
        started=spike.started,
        members=members,
        lead=lead,
        peak=spike.peak,
        baseline=spike.baseline,
        calm_since=spike.calm_since,
        ref=spike.pk,
    )


def series_document(incident: Incident) -> list[dict]:
    """The incident's series, most DSNs above their baseline first."""
    ranked = sorted(
        incident.members.items(), key=lambda item: (-(item[1].peak - item[1].baseline), item[0])
    )
    return [{"dimension": d, "value": v, **member.as_dict()} for (d, v), member in ranked]


def judge(incident: Incident, now: datetime, thresholds: Thresholds):
    dimension, value = incident.lead
    facts = evidence_module.gather(
        dimension=dimension,
        value=value,
        start=now - thresholds.window,
        end=now,
        days=thresholds.days,
        before=incident.started - thresholds.window,
    )
    cause, causes = likely_cause(facts)
    return facts, cause, causes


def open_spike(incident: Incident, now: datetime, thresholds: Thresholds) -> Spike:
    facts, cause, causes = judge(incident, now, thresholds)
    lead = incident.members[incident.lead]
    spike = Spike.objects.create(
        dimension=incident.lead[0],
        value=incident.lead[1],
        started=now,
        peak=incident.peak,
        baseline=incident.baseline,
        last_count=lead.count,
        cause=cause.name,
        confidence=round(cause.confidence, 3),
        evidence=evidence_document(facts, cause, causes),
        series=series_document(incident),
    )
    incident.ref = spike.pk
    return spike


def rejudge(spike: Spike, incident: Incident, now: datetime, thresholds: Thresholds) -> None:
    """A new peak, or a new lead series: the evidence and cause are judged again."""
    facts, cause, causes = judge(incident, now, thresholds)
    spike.dimension, spike.value = incident.lead
    spike.peak, spike.baseline = incident.peak, incident.baseline
    spike.cause, spike.confidence = cause.name, round(cause.confidence, 3)
    spike.evidence = evidence_document(facts, cause, causes)
    follow(spike, incident)


def follow(spike: Spike, incident: Incident, *, ended: datetime | None = None) -> None:
    spike.last_count = (
        incident.members[incident.lead].count if incident.lead in incident.members else 0
    )
    spike.calm_since, spike.ended = incident.calm_since, ended
    spike.series = series_document(incident)
    spike.save()


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
        "top_refined_classes": facts.top(facts.refined),
        "top_reporting_mtas": facts.top(facts.reporting_mtas),
        "source_baselines": facts.source_baselines,
    }
