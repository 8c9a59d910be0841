"""DSN series read from the engine's per-minute aggregates (`routing.DSNCount`), and their
roll-up into hourly counts.

A *series* is one dimension and one value: overall (`all`), per pool, per emitting source,
per DSN recipient domain, per original-recipient domain, per status, per status class, per
reporting MTA. Detection needs, per series, the count of the current window and of the same
window on each previous day: `window_sums` reads all of them for one dimension with a single
indexed query.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Case, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Substr, TruncDay, TruncHour, TruncMinute

from reputation.spikes import Thresholds, window_starts
from routing.counters import upsert
from routing.models import DSNCount

# dimension -> expression over DSNCount (None: every DSN)
DIMENSIONS = {
    "all": None,
    "pool": F("pool"),
    "source": F("source"),
    "recipient_domain": F("recipient_domain"),
    "original_domain": F("original_domain"),
    "status": F("status"),
    "status_class": Substr("status", 1, 1),
    "reporting_mta": F("reporting_mta"),
}


def window_sums(
    dimension: str, now: datetime, thresholds: Thresholds, model=DSNCount
) -> dict[str, list[int]]:
    """{series value: [current window, same window 1 day ago, ..., N days ago]}."""
    starts = window_starts(now, thresholds)
    width = timedelta(minutes=thresholds.window_minutes)
    in_windows = Q()
    day = Case(
        *[When(minute__gte=s, minute__lt=s + width, then=Value(i)) for i, s in enumerate(starts)],
        default=Value(-1),
        output_field=IntegerField(),
    )
    for start in starts:
        in_windows |= Q(minute__gte=start, minute__lt=start + width)
    expression = DIMENSIONS[dimension]
    key = Value("") if expression is None else expression
    rows = (
        model.objects.filter(in_windows)
        .annotate(series=key, day=day)
        .values("series", "day")
        .annotate(total=Sum("count"))
    )
    sums: dict[str, list[int]] = defaultdict(lambda: [0] * len(starts))
    for row in rows:
        if row["day"] >= 0:
            sums[row["series"]][row["day"]] = row["total"]
    return dict(sums)


@transaction.atomic
def roll_up(*, older_than: datetime, hourly_model, minute_model=DSNCount) -> int:
    """Move per-minute DSN counts older than `older_than` into hourly rows (added to any
    already there, with the engine's additive upsert) and delete them. Returns the minute
    rows rolled up. Safe to re-run, and to run while the engine flushes."""
    old = minute_model.objects.filter(minute__lt=older_than)
    keys = [f.name for f in minute_model._meta.fields if f.name not in ("id", "minute", "count")]
    hours = old.annotate(hour=TruncHour("minute")).values("hour", *keys).annotate(n=Sum("count"))
    counts = Counter({(row["hour"], *(row[k] for k in keys)): row["n"] for row in hours})
    upsert(hourly_model._meta.db_table, ("hour", *keys), counts)
    deleted, _ = old.delete()
    return deleted


BUCKETS = {"minute": TruncMinute, "hour": TruncHour, "day": TruncDay}


def volume(
    *, start: datetime, end: datetime, bucket: str = "hour", pool: str | None = None
) -> list[tuple[datetime, int]]:
    """DSNs per bucket between `start` and `end`, from the per-minute counts and, for older
    times, the hourly roll-up (the dashboard's DSN chart)."""
    from reputation.models import DSNHourly

    trunc = BUCKETS[bucket]
    totals: Counter = Counter()
    for model, field in ((DSNCount, "minute"), (DSNHourly, "hour")):
        rows = model.objects.filter(**{f"{field}__gte": start, f"{field}__lt": end})
        if pool:
            rows = rows.filter(pool=pool)
        rows = rows.annotate(b=trunc(field)).values("b").annotate(n=Sum("count"))
        totals.update({row["b"]: row["n"] for row in rows})
    return sorted(totals.items())
