"""The periodic tasks, with one source of truth: django-celery-beat's tables, which beat runs
and the admin edits.

`sync` (the `sync_schedules` command, run by `make run` and by a migration) writes each
schedule's defaults there: the built-in ones, or the environment's for the sweep
(`POOLWARDEN_SWEEP_INTERVAL`, `POOLWARDEN_SWEEP_JITTER`). It creates a schedule that was never
created, and applies the environment's value only when it differs from the value it applied
last (kept in `ScheduleDefault`), so an admin's later change stands until the environment
changes, and a schedule an admin deleted stays deleted.

Everything that depends on the schedule (the "no sweep ran" alert, the daily query budget's
share per run, the dashboard) reads the stored one with `sweep_schedule()`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass

from django.conf import settings
from django.utils import timezone

SWEEP = "Blocklist sweep"
PERIODS = (("days", 86400), ("hours", 3600), ("minutes", 60), ("seconds", 1))
SECONDS = {**dict(PERIODS), "microseconds": 1e-6}  # every period IntervalSchedule knows


@dataclass(frozen=True)
class Default:
    name: str
    task: str
    seconds: int
    kwargs: dict
    description: str

    def value(self) -> dict:
        return {"seconds": self.seconds, "kwargs": self.kwargs}


def defaults() -> list[Default]:
    """Every periodic task Poolwarden runs, with the defaults the environment gives."""
    return [
        Default(
            SWEEP,
            "reputation.sweep",
            settings.POOLWARDEN_SWEEP_INTERVAL,
            {"jitter": settings.POOLWARDEN_SWEEP_JITTER},
            "Check every pool address against the enabled blocklists; each chunk starts after "
            "a random delay of up to `jitter` seconds (kwargs). Default: POOLWARDEN_SWEEP_"
            "INTERVAL and POOLWARDEN_SWEEP_JITTER.",
        ),
        Default(
            "DSN spike check",
            "reputation.detect_spikes",
            300,
            {},
            "Compare each DSN series' recent window with its baseline; open and close spikes.",
        ),
        Default(
            "DSN roll-up",
            "reputation.roll_up_dsn_counts",
            86400,
            {},
            "Fold old per-minute DSN counts into hourly ones (POOLWARDEN_DSN_MINUTE_DAYS).",
        ),
        Default(
            "Send alerts",
            "reputation.send_alerts",
            60,
            {},
            "Turn new events into alerts and send them.",
        ),
    ]


def as_interval(seconds: int) -> tuple[int, str]:
    """1800 -> (30, "minutes"): the largest whole period, as the admin shows it."""
    for period, size in PERIODS:
        if seconds % size == 0:
            return seconds // size, period
    raise AssertionError("unreachable: every whole number of seconds is whole seconds")


def describe(every: int, period: str) -> str:
    return f"every {period[:-1]}" if every == 1 else f"every {every} {period}"


def sync(apps=None, *, now: dt.datetime | None = None) -> list[str]:
    """Write the defaults into django-celery-beat as the module docstring says; return one
    line per change. `apps` is a migration's app registry (None: the real models)."""
    if apps is None:
        from django.apps import apps
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    ScheduleDefault = apps.get_model("reputation", "ScheduleDefault")
    now = now or timezone.now()
    lines = []
    for default in defaults():
        record = ScheduleDefault.objects.filter(name=default.name).first()
        applied = None if record is None else record.applied
        task = PeriodicTask.objects.filter(name=default.name).first()
        every, period = as_interval(default.seconds)
        if task is None and applied is not None:
            continue  # deleted in the admin: not ours to bring back
        if task is None:
            interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
            PeriodicTask.objects.create(
                name=default.name,
                task=default.task,
                interval=interval,
                kwargs=json.dumps(default.kwargs),
                description=default.description,
            )
            lines.append(f"{default.name}: created, {describe(every, period)}")
        elif default.value() != (applied or stored_value(task)) and (
            applied is not None or _from_environment(default)
        ):
            interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
            task.interval, task.crontab, task.solar, task.clocked = interval, None, None, None
            task.kwargs = json.dumps({**json.loads(task.kwargs or "{}"), **default.kwargs})
            task.save()
            lines.append(
                f"{default.name}: {describe(every, period)}"
                + "".join(f", {k} {v}" for k, v in default.kwargs.items())
                + " (from the environment)"
            )
        ScheduleDefault.objects.update_or_create(
            name=default.name, defaults={"applied": default.value(), "updated": now}
        )
    if lines:
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": now})
    return lines


def _from_environment(default: Default) -> bool:
    """Whether the environment sets this schedule (only the sweep's can be set there)."""
    return default.name == SWEEP and any(
        os.environ.get(name, "").strip()
        for name in ("POOLWARDEN_SWEEP_INTERVAL", "POOLWARDEN_SWEEP_JITTER")
    )


def stored_value(task) -> dict | None:
    """A stored interval task as a `Default.value()`, to compare; None for other kinds."""
    if task.interval_id is None:
        return None
    return {"seconds": interval_seconds(task.interval), "kwargs": json.loads(task.kwargs or "{}")}


def interval_seconds(interval) -> float:
    """A django-celery-beat IntervalSchedule in seconds."""
    return interval.every * SECONDS[interval.period]


@dataclass(frozen=True)
class SweepSchedule:
    enabled: bool
    every: dt.timedelta | None  # between two scheduled runs; None when beat will not run it
    jitter: float  # seconds of random delay spread over a run's chunks

    @property
    def every_text(self) -> str:
        """ "every 30 minutes", or "" without a regular period."""
        return describe(*as_interval(int(self.every.total_seconds()))) if self.every else ""

    def overdue(self, last_started: dt.datetime, now: dt.datetime) -> bool:
        """No scheduled run for three periods after `last_started`: beat or the worker is
        down, or every sweep fails before it starts."""
        return bool(self.every) and last_started < now - 3 * self.every


def sweep_schedule(now: dt.datetime | None = None) -> SweepSchedule:
    """The blocklist sweep as stored (what beat runs, as the admin last left it)."""
    from django_celery_beat.models import PeriodicTask

    task = (
        PeriodicTask.objects.select_related("interval", "crontab", "solar", "clocked")
        .filter(task="reputation.sweep", enabled=True)
        .order_by("pk")
        .first()
    )
    if task is None:
        return SweepSchedule(enabled=False, every=None, jitter=0.0)
    jitter = json.loads(task.kwargs or "{}").get("jitter", settings.POOLWARDEN_SWEEP_JITTER)
    return SweepSchedule(enabled=True, every=_period(task, now or timezone.now()), jitter=jitter)


def _period(task, now: dt.datetime) -> dt.timedelta | None:
    """Time between two runs: the interval, or the gap between a crontab's next two runs."""
    if task.interval is not None:
        return dt.timedelta(seconds=interval_seconds(task.interval))
    if task.crontab is not None:
        schedule = task.crontab.schedule

        def next_run(after: dt.datetime) -> dt.datetime:
            schedule.nowfun = lambda: after  # Celery's own crontab arithmetic, from `after`
            return after + schedule.remaining_estimate(after)

        first = next_run(now)
        return max(next_run(first + dt.timedelta(seconds=1)) - first, dt.timedelta(minutes=1))
    return None  # solar or one-off clocked: no regular period to miss
