"""Celery tasks: thin shells around the capabilities' domain functions (blocklists.runs,
spikes.detection, alerts.sending).

`reputation.sweep` (started by beat) plans a run and fans its chunks out;
`reputation.sweep_chunk` runs one, and `reputation.check_rdns` checks every address's reverse
DNS once per run. Chunks are acknowledged late and re-queued if their worker
dies, and a chunk applied already is never applied twice (see listings.apply_chunk).
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from reputation import schedules
from reputation.alerts import events, sending
from reputation.blocklists import listings, rdns, runs
from reputation.models import CheckRun, DSNHourly
from reputation.spikes.detection import detect
from routing import routed
from routing.models import (
    AddressCount,
    DSNCount,
    DSNSample,
    DSNTotal,
    RoutingCount,
    RoutingDaily,
    RoutingHourly,
    ScoreCount,
)


@shared_task(name="reputation.sweep")
def sweep(jitter: float | None = None) -> int:
    """Plan a scheduled run and queue its chunks, each after a random delay up to `jitter`
    seconds (the schedule's kwargs; else the stored schedule's), so lists see the load spread."""
    if jitter is None:
        jitter = schedules.sweep_schedule().jitter
    try:
        plan = runs.start_run(trigger=CheckRun.Trigger.SCHEDULE)
    except Exception as exc:  # admins hear of it (an alert), and Celery logs it
        with contextlib.suppress(DatabaseError):
            events.sweep_failed(f"{type(exc).__name__}: {exc}")
        raise
    pool = plan.run.pool or None
    transaction.on_commit(lambda: check_rdns.delay(pool))
    for index, chunk in enumerate(plan.chunks):
        delay = random.uniform(0, jitter) if jitter else 0
        transaction.on_commit(
            lambda i=index, c=chunk, d=delay: sweep_chunk.apply_async(
                (plan.run.pk, i, c), countdown=d
            )
        )
    return plan.run.pk


@shared_task(
    name="reputation.sweep_chunk",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OSError, DatabaseError),
    retry_backoff=True,
    max_retries=5,
)
def sweep_chunk(run_id: int, index: int, chunk: dict[str, list[str]]) -> None:
    run = CheckRun.objects.filter(pk=run_id).first()
    if run is None:
        return  # the run was deleted meanwhile
    runs.run_chunk(run, index, chunk)


@shared_task(name="reputation.check_rdns", autoretry_for=(DatabaseError,), max_retries=3)
def check_rdns(pool: str | None = None) -> dict:
    """Forward-confirmed reverse DNS of every pool address, once per sweep run."""
    results = rdns.check_pools(pool)
    return {"addresses": len(results), "failing": sum(bool(r.failing) for r in results)}


@shared_task(name="reputation.detect_spikes")
def detect_spikes() -> dict:
    """Judge every DSN series against its baseline; open, follow and close spikes."""
    run = detect(timezone.now())
    return {"series": run.series, "opened": len(run.opened), "closed": len(run.closed)}


@shared_task(name="reputation.roll_up_dsn_counts")
def roll_up_dsn_counts(keep_minutes_days: int | None = None) -> int:
    """Expire per-minute DSN and routing counts older than POOLWARDEN_DSN_MINUTE_DAYS
    (default 32) and DSN samples as old (the hourly tables, written with every flush, already
    hold those hours), and drop hourly rows, per-address and per-score counts older than
    POOLWARDEN_DSN_HOURLY_DAYS (default 400), each list's sweeps older than the minutes
    (its latest kept: it says when the list last answered), and the routed Message-IDs older
    than POOLWARDEN_ROUTED_MEMORY_HOURS (default 72) kept in the database. Returns the minute
    rows expired."""
    days = keep_minutes_days or settings.POOLWARDEN_DSN_MINUTE_DAYS
    now = timezone.now()
    cutoff = now - timedelta(days=days)
    expired = 0
    for model in (DSNCount, RoutingCount):
        expired += model.objects.filter(minute__lt=cutoff).delete()[0]
    DSNSample.objects.filter(minute__lt=cutoff).delete()
    horizon = now - timedelta(days=settings.POOLWARDEN_DSN_HOURLY_DAYS)
    for model in (DSNHourly, DSNTotal, RoutingHourly, AddressCount):
        model.objects.filter(hour__lt=horizon).delete()
    for model in (RoutingDaily, ScoreCount):
        model.objects.filter(day__lt=horizon).delete()
    listings.forget_sweeps(before=cutoff)
    routed.forget_expired(now)
    return expired


@shared_task(name="reputation.send_alerts")
def send_alerts() -> dict:
    """Turn new events into alerts and send them (beat starts it every minute)."""
    report = sending.run_once(worker=f"celery:{socket.gethostname()}:{os.getpid()}")
    return {"events": report.events, "sent": len(report.sent), "failed": report.failed}
