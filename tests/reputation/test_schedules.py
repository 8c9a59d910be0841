"""One source of truth for schedules: the environment's defaults are written into
django-celery-beat by `sync_schedules`; an admin's change stands until the environment changes;
the "no sweep ran" alert and the daily budget read the schedule as stored."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from reputation import schedules
from reputation.alerts import events
from reputation.models import CheckRun, Event, ScheduleDefault

pytestmark = pytest.mark.django_db


def sweep_task() -> PeriodicTask:
    return PeriodicTask.objects.select_related("interval").get(name=schedules.SWEEP)


def set_environment(settings, monkeypatch, interval: int | None, jitter: int | None) -> None:
    """What config/settings.py would read from these variables."""
    for name, value, default in (
        ("POOLWARDEN_SWEEP_INTERVAL", interval, 1800),
        ("POOLWARDEN_SWEEP_JITTER", jitter, 120),
    ):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(value))
        setattr(settings, name, default if value is None else value)


def test_migrated_database_holds_every_schedule_with_its_default():
    stored = {t.name: (t.task, str(t.interval)) for t in PeriodicTask.objects.all()}
    assert stored == {
        "Blocklist sweep": ("reputation.sweep", "every 30 minutes"),
        "DSN spike check": ("reputation.detect_spikes", "every 5 minutes"),
        "DSN roll-up": ("reputation.roll_up_dsn_counts", "every day"),
        "Send alerts": ("reputation.send_alerts", "every minute"),
    }
    assert json.loads(sweep_task().kwargs) == {"jitter": 120}
    assert ScheduleDefault.objects.count() == 4


def test_environment_is_applied_once_then_the_admin_change_stands(settings, monkeypatch, capsys):
    set_environment(settings, monkeypatch, interval=600, jitter=30)
    call_command("sync_schedules")
    assert "Blocklist sweep: every 10 minutes, jitter 30" in capsys.readouterr().out
    task = sweep_task()
    assert (task.interval.every, task.interval.period) == (10, "minutes")
    assert json.loads(task.kwargs) == {"jitter": 30}

    # An operator sets 2 hours in the admin; restarts with the same environment keep it.
    task.interval = IntervalSchedule.objects.create(every=2, period="hours")
    task.save()
    call_command("sync_schedules")
    assert capsys.readouterr().out == ""
    assert str(sweep_task().interval) == "every 2 hours"

    # The environment changes: its new value is applied, once.
    set_environment(settings, monkeypatch, interval=900, jitter=30)
    call_command("sync_schedules")
    assert str(sweep_task().interval) == "every 15 minutes"
    assert schedules.sync() == []


def test_first_sync_without_environment_keeps_an_edited_schedule(settings, monkeypatch):
    ScheduleDefault.objects.all().delete()  # an install from before this table existed
    task = sweep_task()
    task.interval = IntervalSchedule.objects.create(every=45, period="minutes")
    task.save()
    set_environment(settings, monkeypatch, interval=None, jitter=None)
    assert schedules.sync() == []
    assert str(sweep_task().interval) == "every 45 minutes"
    set_environment(settings, monkeypatch, interval=3600, jitter=None)
    assert schedules.sync() == ["Blocklist sweep: every hour, jitter 120 (from the environment)"]


def test_a_deleted_schedule_stays_deleted_and_a_missing_one_is_created():
    PeriodicTask.objects.filter(name="DSN roll-up").delete()
    assert schedules.sync() == []
    assert not PeriodicTask.objects.filter(name="DSN roll-up").exists()
    ScheduleDefault.objects.filter(name="Send alerts").delete()
    PeriodicTask.objects.filter(name="Send alerts").delete()
    assert schedules.sync() == ["Send alerts: created, every minute"]
    assert PeriodicTask.objects.get(name="Send alerts").task == "reputation.send_alerts"


def test_interval_is_shown_in_the_largest_whole_period():
    assert schedules.as_interval(1800) == (30, "minutes")
    assert schedules.as_interval(7200) == (2, "hours")
    assert schedules.as_interval(90) == (90, "seconds")
    assert schedules.as_interval(172800) == (2, "days")


def test_every_period_of_an_interval_schedule_converts_to_seconds():
    for every, period, seconds in (
        (3, "days", 259200),
        (2, "hours", 7200),
        (500, "microseconds", 0.0005),
    ):
        assert schedules.interval_seconds(IntervalSchedule(every=every, period=period)) == seconds


def missing_sweep_alerts(last_started_ago: dt.timedelta) -> list[str]:
    now = timezone.now()
    CheckRun.objects.all().delete()
    Event.objects.all().delete()
    CheckRun.objects.create(
        trigger=CheckRun.Trigger.SCHEDULE, started=now - last_started_ago, finished=now
    )
    events.collect(now)
    return list(Event.objects.filter(kind="sweep-failed").values_list("subject", flat=True))


def test_no_sweep_alert_follows_the_stored_schedule_not_the_environment(settings):
    settings.POOLWARDEN_SWEEP_INTERVAL = 60  # the environment says 1 minute: not what runs
    task = sweep_task()
    task.interval = IntervalSchedule.objects.create(every=2, period="hours")
    task.save()
    assert missing_sweep_alerts(dt.timedelta(hours=5)) == []
    [subject] = missing_sweep_alerts(dt.timedelta(hours=7))
    assert subject.startswith("No blocklist sweep since")

    task.interval = IntervalSchedule.objects.create(every=10, period="minutes")
    task.save()
    assert len(missing_sweep_alerts(dt.timedelta(minutes=31))) == 1
    assert missing_sweep_alerts(dt.timedelta(minutes=29)) == []

    task.enabled = False  # the operator stopped scheduled sweeps: nothing is missing
    task.save()
    assert missing_sweep_alerts(dt.timedelta(days=3)) == []


def test_crontab_schedule_period_is_the_gap_between_two_runs():
    task = sweep_task()
    task.interval = None
    task.crontab = CrontabSchedule.objects.create(minute="0", hour="*/4")
    task.save()
    stored = schedules.sweep_schedule()
    assert stored.enabled and stored.every == dt.timedelta(hours=4)
    assert stored.jitter == 120
    assert missing_sweep_alerts(dt.timedelta(hours=11)) == []
    assert len(missing_sweep_alerts(dt.timedelta(hours=13))) == 1
