"""The evidence behind a spike, read from the engine's aggregates and DSN samples, in the
shape `reputation.spikes.causes.likely_cause` judges."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta

from django.db.models import Q, Sum

from reputation.models import DSNHourly
from reputation.spikes.causes import DSNSampleFacts, Evidence
from routing.models import DSNCount, DSNSample, Pool, RoutingCount, RoutingHourly

SAMPLE_LIMIT = 2000
TOP = 10
KNOWN_DAYS = 28  # a client or reporting MTA seen this long before an incident is known


def series_filter(dimension: str, value: str) -> tuple[Q, Q]:
    """(filter on DSNCount, filter on DSNSample) selecting one series."""
    if dimension == "all":
        return Q(), Q()
    if dimension == "status_class":
        return Q(status__startswith=value), Q(status__startswith=value)
    sample_field = {
        "recipient_domain": ("recipient__iendswith", f"@{value}"),
        "original_domain": ("original_recipient__iendswith", f"@{value}"),
    }.get(dimension, (dimension, value))
    return Q(**{dimension: value}), Q(**{sample_field[0]: sample_field[1]})


def counter(rows, field: str) -> Counter:
    return Counter({row[field]: row["n"] for row in rows})


def gather(
    *,
    dimension: str,
    value: str,
    start: datetime,
    end: datetime,
    days: int,
    before: datetime | None = None,
) -> Evidence:
    """The evidence of one series' window [start, end). Clients and reporting MTAs are known
    when seen in the KNOWN_DAYS before `before` (the incident's first window; `start` if
    None), so that an incident's own hours never make its rogue server known."""
    before = before or start
    counts_q, samples_q = series_filter(dimension, value)
    window = DSNCount.objects.filter(counts_q, minute__gte=start, minute__lt=end)
    evidence = Evidence(total=window.aggregate(n=Sum("count"))["n"] or 0)
    for field, target in (
        ("status", evidence.statuses),
        ("source", evidence.sources),
        ("recipient_domain", evidence.recipient_domains),
        ("original_domain", evidence.original_domains),
        ("reporting_mta", evidence.reporting_mtas),
        ("refined_class", evidence.refined),
    ):
        target.update(counter(window.values(field).annotate(n=Sum("count")), field))
    samples = DSNSample.objects.filter(samples_q, minute__gte=start, minute__lt=end)
    evidence.samples = [
        DSNSampleFacts(
            s.source,
            s.recipient,
            s.original_recipient,
            s.status,
            s.diagnostic,
            s.reporting_mta,
            s.routed_by_us,
            s.refined_class,
        )
        for s in samples.order_by("-id")[:SAMPLE_LIMIT]
    ]
    sources = [source for source, _ in evidence.sources.most_common(TOP)]
    evidence.source_baselines = source_baselines(sources, start, end, days)
    evidence.refined.pop("", None)
    if sources:
        risky = set(Pool.objects.filter(kind=Pool.Kind.HIGH_RISK).values_list("name", flat=True))
        evidence.routed, evidence.high_risk = routed_counts(sources[0], [(start, end)], risky)
        evidence.high_risk_share = evidence.high_risk / evidence.routed if evidence.routed else 0
        total, high = routed_counts(sources[0], previous_windows(start, end, days), risky)
        evidence.high_risk_share_before = high / total if total else 0.0
    since, until = before - timedelta(days=KNOWN_DAYS), hour_floor(before)
    evidence.known_sources = frozenset(
        RoutingHourly.objects.filter(hour__gte=since, hour__lt=until, source__in=sources)
        .values_list("source", flat=True)
        .distinct()
    )
    mtas = [m for m in evidence.reporting_mtas if m][:100]
    evidence.known_mtas = frozenset(
        DSNHourly.objects.filter(hour__gte=since, hour__lt=until, reporting_mta__in=mtas)
        .values_list("reporting_mta", flat=True)
        .distinct()
    )
    return evidence


def hour_floor(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def previous_windows(start: datetime, end: datetime, days: int) -> list[tuple]:
    return [(start - timedelta(days=d), end - timedelta(days=d)) for d in range(1, days + 1)]


def in_any(windows: list[tuple]) -> Q:
    q = Q()
    for start, end in windows:
        q |= Q(minute__gte=start, minute__lt=end)
    return q


def source_baselines(sources: list[str], start, end, days: int) -> dict[str, float]:
    """Each source's mean DSN count in the same window on the previous days."""
    rows = (
        DSNCount.objects.filter(in_any(previous_windows(start, end, days)), source__in=sources)
        .values("source")
        .annotate(n=Sum("count"))
    )
    totals = counter(rows, "source")
    return {source: totals.get(source, 0) / days for source in sources}


def routed_counts(source: str, windows: list[tuple], risky: set[str]) -> tuple[int, int]:
    """(messages, of which through a `risky` pool) the source routed in the windows, DSNs
    left out."""
    rows = (
        RoutingCount.objects.filter(in_any(windows), source=source)
        .exclude(reasons__contains="dsn")
        .values("pool")
        .annotate(n=Sum("count"))
    )
    by_pool = counter(rows, "pool")
    return sum(by_pool.values()), sum(n for pool, n in by_pool.items() if pool in risky)
