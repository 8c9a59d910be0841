"""DSN series read from the engine's per-minute aggregates (`routing.DSNCount`).

A *series* is one dimension and one value: overall (`all`), per pool, per emitting source,
per DSN recipient domain, per original-recipient domain, per status, per status class, per
reporting MTA. Detection needs, per series, the count of the current window and of the same
window on each previous day: `window_sums` reads all of them for one dimension with a single
indexed query.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db.models import Case, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Substr

from reputation.spikes.baseline import Season, Thresholds, window_starts
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
    "refined_class": F("refined_class"),
    "reporting_mta": F("reporting_mta"),
}


def window_sums(
    dimension: str, now: datetime, thresholds: Thresholds, season: Season, model=DSNCount
) -> dict[str, list[int]]:
    """{series value: [current window, then each past window of `season`]}."""
    starts = window_starts(now, thresholds, season)
    width = thresholds.window
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


def oldest_minute(model=DSNCount) -> datetime | None:
    """The oldest per-minute count kept: how far back a season can reach."""
    first = model.objects.order_by("minute").values_list("minute", flat=True).first()
    return first
