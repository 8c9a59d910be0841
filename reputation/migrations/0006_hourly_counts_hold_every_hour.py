"""The hourly tables (routing.RoutingHourly, DSNHourly) now hold every hour, written with each
flush of the counters, instead of only hours rolled up from expired minutes: add the minute
rows still kept to them, once, so that charts over weeks read hours only; and fill the new
per-pool DSN totals (routing.DSNTotal) and daily routing counts (routing.RoutingDaily) from
the hourly counts."""

from collections import Counter

from django.db import migrations
from django.db.models import F, Sum

PAIRS = (
    (("routing", "RoutingCount"), ("routing", "RoutingHourly")),
    (("routing", "DSNCount"), ("reputation", "DSNHourly")),
)


def fold_minutes_into_hours(apps, schema_editor):
    for minute_name, hourly_name in PAIRS:
        minutes, hours = apps.get_model(*minute_name), apps.get_model(*hourly_name)
        keys = [f.name for f in minutes._meta.fields if f.name not in ("id", "minute", "count")]
        totals: Counter = Counter()
        for row in minutes.objects.values("minute", "count", *keys).iterator():
            hour = row["minute"].replace(minute=0, second=0, microsecond=0)
            totals[(hour, *(row[k] for k in keys))] += row["count"]
        for (hour, *values), count in totals.items():
            match = dict(zip(keys, values, strict=True))
            row, created = hours.objects.get_or_create(
                hour=hour, **match, defaults={"count": count}
            )
            if not created:
                hours.objects.filter(pk=row.pk).update(count=F("count") + count)
    dsn_hourly, totals = (
        apps.get_model("reputation", "DSNHourly"),
        apps.get_model("routing", "DSNTotal"),
    )
    per_pool = dsn_hourly.objects.values("hour", "pool").annotate(n=Sum("count"))
    totals.objects.bulk_create(
        (totals(hour=row["hour"], pool=row["pool"], count=row["n"]) for row in per_pool.iterator()),
        batch_size=1000,
    )


def fill_daily_routing(apps, schema_editor):
    hourly, daily = (
        apps.get_model("routing", "RoutingHourly"),
        apps.get_model("routing", "RoutingDaily"),
    )
    days: Counter = Counter()
    for row in hourly.objects.values("hour", "pool", "reasons", "count").iterator():
        day = row["hour"].replace(hour=0, minute=0, second=0, microsecond=0)
        days[(day, row["pool"], row["reasons"])] += row["count"]
    daily.objects.bulk_create(
        (daily(day=d, pool=p, reasons=r, count=n) for (d, p, r), n in days.items()),
        batch_size=1000,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("reputation", "0005_alerts"),
        ("routing", "0009_dashboard_scores_changes"),
    ]

    operations = [
        migrations.RunPython(fold_minutes_into_hours, migrations.RunPython.noop),
        migrations.RunPython(fill_daily_routing, migrations.RunPython.noop),
    ]
