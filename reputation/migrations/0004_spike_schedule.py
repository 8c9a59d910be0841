"""The default schedules of the DSN spike check (every 5 minutes) and of the DSN roll-up
(daily). Admins change them under Periodic tasks."""

from django.db import migrations
from django.utils import timezone

SCHEDULES = [
    (
        "DSN spike check",
        "reputation.detect_spikes",
        5,
        "minutes",
        "Compare each DSN series' recent window with its baseline; open and close spikes.",
    ),
    (
        "DSN roll-up",
        "reputation.roll_up_dsn_counts",
        1,
        "days",
        "Fold old per-minute DSN counts into hourly ones (POOLWARDEN_DSN_MINUTE_DAYS).",
    ),
]


def seed(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    for name, task, every, period, description in SCHEDULES:
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "interval": interval, "description": description}
        )
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})
    # The global thresholds, so that admins find them to edit (the defaults of the model).
    apps.get_model("reputation", "SpikeThreshold").objects.get_or_create(dimension="", value="")


def unseed(apps, schema_editor):
    names = [name for name, *_ in SCHEDULES]
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reputation", "0003_spikes"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
