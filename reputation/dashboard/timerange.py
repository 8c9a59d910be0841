"""The dashboard's time ranges (24 h, 7 d, 30 d, 1 y or custom) and per-bucket sums over the
per-minute and hourly aggregates.

`bucket_sums` groups in the database: PostgreSQL truncates timestamps natively; on SQLite,
where Django's Trunc is a Python function called per row, the stored text is cut instead
(`2026-11-27 14:05:00` → `2026-11-27 14`), which keeps a year of rows fast on both.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import DateTimeField, Model, QuerySet, Sum
from django.db.models.functions import Substr, TruncDay, TruncHour, TruncMinute
from django.utils import timezone

PRESETS = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "1y": timedelta(days=365),
}
DEFAULT = "7d"
STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_CUSTOM = timedelta(days=800)


class RangeError(ValueError):
    """A time range that cannot be shown; the message is for the user."""


@dataclass(frozen=True)
class TimeRange:
    key: str  # "24h", "7d", "30d", "1y" or "custom"
    start: datetime  # inclusive, aware (UTC), at a bucket boundary
    end: datetime  # exclusive, aware (UTC)
    bucket: str  # "minute", "hour" or "day"

    @property
    def step(self) -> timedelta:
        return STEP[self.bucket]

    def floor(self, at: datetime) -> datetime:
        """The start of the bucket holding `at`."""
        at = at.astimezone(UTC)
        if self.bucket == "minute":
            return at.replace(second=0, microsecond=0)
        if self.bucket == "hour":
            return at.replace(minute=0, second=0, microsecond=0)
        return at.replace(hour=0, minute=0, second=0, microsecond=0)

    def buckets(self) -> list[datetime]:
        """Every bucket start from `start` up to `end` (for series with zeros filled in)."""
        out, at = [], self.start
        while at < self.end:
            out.append(at)
            at += self.step
        return out


def bucket_for(span: timedelta) -> str:
    if span <= timedelta(hours=6):
        return "minute"
    if span <= timedelta(days=31):
        return "hour"
    return "day"


def parse(
    key: str | None, start: str | None = None, end: str | None = None, now: datetime | None = None
) -> TimeRange:
    """The range a dashboard request asks for: a preset ending now, or custom `start`/`end`
    (ISO dates or date-times, in the current time zone unless they say otherwise, as the
    dashboard's date-time inputs show them). Raises RangeError."""
    now = (now or timezone.now()).astimezone(UTC)
    key = key or DEFAULT
    if key in PRESETS:
        span = PRESETS[key]
        bucket = bucket_for(span)
        end_at = now
        start_at = TimeRange(key, now, now, bucket).floor(now - span)
        if start_at < now - span:
            start_at += STEP[bucket]
        return TimeRange(key, start_at, end_at, bucket)
    if key != "custom":
        raise RangeError(f"Unknown time range {key!r}: use 24h, 7d, 30d, 1y or custom.")
    start_at, end_at = _moment(start, "start"), _moment(end, "end")
    if end_at <= start_at:
        raise RangeError("The end of the range must be after its start.")
    if end_at - start_at > MAX_CUSTOM:
        raise RangeError(f"A custom range spans at most {MAX_CUSTOM.days} days.")
    bucket = bucket_for(end_at - start_at)
    floor = TimeRange(key, start_at, end_at, bucket).floor
    return TimeRange("custom", floor(start_at), end_at, bucket)


def _moment(text: str | None, name: str) -> datetime:
    if not text:
        raise RangeError(f"A custom range needs its {name} (e.g. 2026-11-01 or 2026-11-01T08:00).")
    try:
        at = datetime.fromisoformat(text.strip().replace(" ", "T", 1))
    except ValueError:
        raise RangeError(f"Not a date or date-time: {text!r} ({name}).") from None
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.get_current_timezone())
    return at.astimezone(UTC)


def source(
    rng: TimeRange,
    *,
    minutes: type[Model],
    hours: type[Model],
    days: type[Model] | None = None,
    now: datetime | None = None,
) -> tuple[type[Model], str]:
    """The table a range reads, and its time field: the per-minute rows for minute buckets
    while they are kept, the daily rows (if the series has them) for day buckets, else the
    hourly rows, which hold every hour (routing.counters writes all of them with each flush)."""
    kept = (now or timezone.now()) - timedelta(days=settings.POOLWARDEN_DSN_MINUTE_DAYS)
    if rng.bucket == "minute" and rng.start >= kept:
        return minutes, "minute"
    if rng.bucket == "day" and days is not None:
        return days, "day"
    return hours, "hour"


def rows_in(
    rng: TimeRange,
    *,
    minutes: type[Model],
    hours: type[Model],
    days: type[Model] | None = None,
) -> tuple[QuerySet, str]:
    """The rows of the table `source` picks for the range, within [start, end), and their
    time field (for `bucket_sums`)."""
    model, field = source(rng, minutes=minutes, hours=hours, days=days)
    return model.objects.filter(**{f"{field}__gte": rng.start, f"{field}__lt": rng.end}), field


SQLITE_PREFIX = {"minute": 16, "hour": 13, "day": 10}  # "2026-11-27 14:05" is 16 characters


def bucket_expression(field: str, bucket: str):
    """An expression grouping `field` by bucket; `to_datetime` reads back what it yields."""
    if connection.vendor == "sqlite":
        return Substr(field, 1, SQLITE_PREFIX[bucket])
    trunc = {"minute": TruncMinute, "hour": TruncHour, "day": TruncDay}[bucket]
    return trunc(field, tzinfo=UTC, output_field=DateTimeField())


def bucket_sql(column: str, bucket: str) -> str:
    """`bucket_expression` for raw SQL over a timestamp `column` (read back by `to_datetime`)."""
    if connection.vendor == "sqlite":
        return f"substr({column}, 1, {SQLITE_PREFIX[bucket]})"
    return f"date_trunc('{bucket}', {column} AT TIME ZONE 'UTC')"


def to_datetime(value) -> datetime:
    """A bucket value from `bucket_expression` as an aware UTC datetime."""
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value)
    pads = {10: "T00:00", 13: ":00", 16: ""}
    return datetime.fromisoformat(text.replace(" ", "T") + pads[len(text)]).replace(tzinfo=UTC)


def bucket_sums(
    rows: QuerySet, *, field: str, bucket: str, by: Iterable[str] = (), value: str = "count"
) -> Counter:
    """Sum `value` over `rows` per (bucket start, *by): one grouped query."""
    by = tuple(by)
    grouped = (
        rows.order_by()
        .annotate(pw_bucket=bucket_expression(field, bucket))
        .values("pw_bucket", *by)
        .annotate(pw_total=Sum(value))
    )
    sums: Counter = Counter()
    for row in grouped:
        sums[(to_datetime(row["pw_bucket"]), *(row[name] for name in by))] += row["pw_total"]
    return sums
