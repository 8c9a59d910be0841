"""The hourly tables (routing.RoutingHourly, DSNHourly) now hold every hour, written with each
flush of the counters, instead of only hours rolled up from expired minutes: add the minute
rows still kept to them, once, so that charts over weeks read hours only; and fill the new
per-pool DSN totals (routing.DSNTotal) from the hourly DSN counts."""

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


class Migration(migrations.Migration):
    dependencies = [
        ("reputation", "0005_alerts"),
        ("routing", "0009_dashboard_scores_changes"),
    ]

    operations = [migrations.RunPython(fold_minutes_into_hours, migrations.RunPython.noop)]
