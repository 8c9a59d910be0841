"""Celery tasks: the scheduled sweep fans out chunks; a chunk applies exactly once; and a real
worker runs a whole scheduled sweep end to end."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from django.conf import settings

from reputation import tasks
from reputation.blocklists import runs
from reputation.models import AddressCheck, BlocklistEvent, CheckRun, ChunkDone, Listing
from tests.support import (
    delete_redis_namespace,
    redis_answers,
    skip_missing,
    start_worker,
    stop_group,
)

pytestmark = pytest.mark.integration


@pytest.mark.django_db
def test_scheduled_sweep_queues_one_chunk_per_256_addresses(
    catalogue, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(runs, "CHUNK_ADDRESSES", 10)
    sent = []
    monkeypatch.setattr(
        tasks.sweep_chunk, "apply_async", lambda args, countdown: sent.append((args, countdown))
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_id = tasks.sweep(jitter=0)
    run = CheckRun.objects.get(pk=run_id)
    assert run.trigger == "schedule" and run.chunks == 4 == len(sent)  # 34 addresses
    assert [args[:2] for args, _ in sent] == [(run_id, i) for i in range(4)]
    for args, _ in sent:
        tasks.sweep_chunk(*args)
    run.refresh_from_db()
    assert run.finished is not None and run.chunks_done == 4
    assert Listing.objects.filter(closed__isnull=True).count() == 7


@pytest.mark.django_db
def test_a_retried_chunk_applies_nothing_twice(catalogue):
    plan = runs.start_run(trigger="schedule")
    tasks.sweep_chunk(plan.run.pk, 0, plan.chunks[0])
    counted = CheckRun.objects.get(pk=plan.run.pk).listed
    tasks.sweep_chunk(plan.run.pk, 0, plan.chunks[0])  # the broker redelivered it
    assert ChunkDone.objects.filter(run=plan.run).count() == 1
    assert CheckRun.objects.get(pk=plan.run.pk).listed == counted
    assert BlocklistEvent.objects.filter(kind="opened").count() == 7


@pytest.mark.django_db
def test_scheduled_sweep_skips_answers_whose_ttl_has_not_passed(catalogue):
    runs.run_now()
    plan = runs.start_run(trigger="schedule")
    # Only the unknown answer (an error code) is due again at once.
    assert plan.chunks == [{"zen.test": ["192.0.2.9"]}]
    assert plan.run.deferred == 34 * 4 - 6 - 1
    AddressCheck.objects.update(fresh_until=AddressCheck.objects.first().checked)
    assert runs.start_run(trigger="schedule").run.deferred == 0


def test_chunks_are_acknowledged_late_and_requeued_when_their_worker_dies():
    assert tasks.sweep_chunk.acks_late and tasks.sweep_chunk.reject_on_worker_lost


@pytest.mark.django_db
def test_every_datagram_counts_against_the_daily_cap(catalogue):
    from reputation.models import QueryUsage

    runs.run_now(zones=["minor.test"])
    used = QueryUsage.objects.get(blocklist__zone="minor.test").queries
    assert used == 2 + 32 + 1  # self-test, the 32 IPv4 addresses, one TXT for the listing


def at_local_time(monkeypatch, hour: int, minute: int) -> None:
    """Fake the clock of reputation.blocklists.runs: a run's share of a daily cap depends on the
    hour."""
    from django.utils import timezone

    moment = timezone.localtime().replace(hour=hour, minute=minute, second=0, microsecond=0)
    monkeypatch.setattr(runs.timezone, "now", lambda: moment)


@pytest.mark.django_db
def test_daily_cap_limits_a_run_to_its_share(catalogue, monkeypatch):
    from reputation.models import Blocklist

    at_local_time(monkeypatch, 12, 0)
    Blocklist.objects.filter(zone="zen.test").update(max_per_day=48)
    plan = runs.start_run(trigger="schedule")
    zen = sum(len(chunk.get("zen.test", [])) for chunk in plan.chunks)
    assert 1 <= zen < 34


@pytest.mark.django_db
def test_last_run_of_the_day_may_use_what_is_left(catalogue, monkeypatch):
    from reputation.models import Blocklist

    at_local_time(monkeypatch, 23, 45)  # less than one sweep interval to midnight
    Blocklist.objects.filter(zone="zen.test").update(max_per_day=48)
    plan = runs.start_run(trigger="schedule")
    assert sum(len(chunk.get("zen.test", [])) for chunk in plan.chunks) == 34


TEST_CATALOGUE = """
[[blocklists]]
zone = "zen.test"
weight = "major"
ipv6 = true
codes = { "127.0.0.2" = "SBL", "127.0.0.4" = "XBL" }
error_codes = ["127.255.255.0/24"]
max_in_flight = 0
max_qps = 0
"""


def manage_json(site, code: str) -> object:
    done = site.manage("shell", "-c", code)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


WAIT = """
import json, time
from reputation.models import CheckRun, ChunkDone, Listing
deadline = time.monotonic() + {timeout}
while True:
    run = CheckRun.objects.first()
    value = {value}
    if run and run.finished or time.monotonic() > deadline:
        break
    time.sleep(0.1)
print(json.dumps(value))
"""
LISTED = "sorted(Listing.objects.values_list('address', flat=True))"


def when_swept(site, value: str, timeout: float = 90) -> object:
    """`value` (an expression of `run`, the first CheckRun) once that run has finished or
    `timeout` has passed: one process that polls, not one per poll."""
    return manage_json(site, WAIT.format(timeout=timeout, value=value))


def wait_for_unacked(url: str, task: str, timeout: float = 30) -> None:
    """Until a message of `task` is delivered to a worker and not yet acknowledged."""
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        held = client.hvals(f"{settings.NAMESPACE}:unacked")
        if any(json.loads(m)[0]["headers"]["task"] == task for m in held):
            return
        time.sleep(0.05)
    raise AssertionError(f"no worker took a {task} within {timeout} s")


def test_real_worker_runs_a_scheduled_sweep_end_to_end(site, rbldnsd, tmp_path):
    doc = tmp_path / "lists.toml"
    doc.write_text(TEST_CATALOGUE)
    assert site.manage("config_import", str(doc), "--prune").returncode == 0
    site.env["POOLWARDEN_NAMESERVERS"] = rbldnsd.nameserver
    worker = start_worker(site.env, "sweep")
    try:
        done = site.manage(
            "shell", "-c", "from reputation.tasks import sweep; sweep.delay(jitter=0)"
        )
        assert done.returncode == 0, done.stderr
        finished, listed = when_swept(site, f"[bool(run and run.finished), {LISTED}]")
        assert finished, "the worker did not finish the sweep"
        assert listed == ["192.0.2.5", "192.0.2.7", "198.51.100.3", "2001:db8::25"]
    finally:
        assert stop_group(worker), "worker did not stop on SIGTERM"


KILL_CATALOGUE = (
    TEST_CATALOGUE
    + """
[[blocklists]]
zone = "silent.test"
weight = "minor"
max_in_flight = 0
max_qps = 0
"""
)


@pytest.fixture
def redis_broker():
    """The suite's Redis broker, or the local Redis; the keys of this test's processes are in
    the test's namespace (tests/settings.py), deleted afterwards."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    if not url.startswith("redis://"):
        url = "redis://127.0.0.1:6379/0"
    if not redis_answers(url):
        skip_missing("redis", f"nothing answers at {url}", "apt-get install redis-server")
    yield url
    delete_redis_namespace(url, settings.NAMESPACE)


def test_a_worker_killed_mid_chunk_loses_nothing_and_duplicates_nothing(
    site, rbldnsd, redis_broker, tmp_path
):
    """SIGKILL the worker while it sweeps a chunk (silent.test keeps it busy for seconds):
    the unacknowledged chunk comes back from Redis to a new worker and is applied once."""
    doc = tmp_path / "lists.toml"
    doc.write_text(KILL_CATALOGUE)
    assert site.manage("config_import", str(doc), "--prune").returncode == 0
    site.env |= {
        "POOLWARDEN_NAMESERVERS": rbldnsd.nameserver,
        "POOLWARDEN_DNS_TIMEOUT": "6",  # silent.test: a try every 2 s, given up after 6 s
        "CELERY_BROKER_URL": redis_broker,
        "CELERY_VISIBILITY_TIMEOUT": "4",
    }
    first = start_worker(site.env, "doomed", quiet=True)
    try:
        done = site.manage(
            "shell", "-c", "from reputation.tasks import sweep; sweep.delay(jitter=0)"
        )
        assert done.returncode == 0, done.stderr
        wait_for_unacked(redis_broker, "reputation.sweep_chunk")
        time.sleep(1)  # the worker is sweeping the chunk now: silent.test keeps it 6 s
    finally:
        stop_group(first, signal.SIGKILL, timeout=10)
    assert when_swept(site, "bool(run.finished)", timeout=0) is False  # killed mid-chunk
    second = start_worker(site.env, "heir", quiet=True)
    try:
        value = f"[bool(run.finished), ChunkDone.objects.count(), {LISTED}]"
        finished, chunks, listed = when_swept(site, value)
        assert finished, "the chunk of the killed worker never came back"
        assert chunks == 1
        assert listed == ["192.0.2.5", "192.0.2.7", "198.51.100.3", "2001:db8::25"]
    finally:
        assert stop_group(second), "worker did not stop on SIGTERM"


@pytest.mark.django_db
def test_a_scheduled_sweep_that_cannot_start_raises_an_event(catalogue, monkeypatch):
    from reputation.models.alerts import Event

    def broken(**kwargs):
        raise runs.RunError("no blocklist with zone 'gone.test' in the catalogue")

    monkeypatch.setattr(runs, "start_run", broken)
    with pytest.raises(runs.RunError):
        tasks.sweep(jitter=0)
    event = Event.objects.get(kind="sweep-failed")
    assert "gone.test" in event.data["reason"]


# Task names that databases and brokers hold: beat entries written by the migrations, and sweep
# chunks queued by a sweep. Moving modules must not change them (a renamed task would leave
# every existing installation's schedule sending a name no worker knows).
STORED_TASK_NAMES = {
    "reputation.sweep",
    "reputation.detect_spikes",
    "reputation.roll_up_dsn_counts",
    "reputation.send_alerts",
}


@pytest.mark.django_db
def test_every_scheduled_task_of_a_migrated_database_is_a_registered_task():
    import inspect

    from django_celery_beat.models import PeriodicTask

    from config.celery import app

    app.loader.import_default_modules()
    scheduled = PeriodicTask.objects.exclude(task__startswith="celery.")
    assert {p.task for p in scheduled} == STORED_TASK_NAMES
    for entry in scheduled:
        task = app.tasks[entry.task]
        inspect.signature(task.run).bind(*json.loads(entry.args), **json.loads(entry.kwargs))
    assert "reputation.sweep_chunk" in app.tasks  # queued by a sweep, maybe still in a broker


BEAT_SENDS_EVERY_ENTRY = """
import json
from config.celery import app
from django_celery_beat.schedulers import DatabaseScheduler
from reputation.models import CheckRun

scheduler = DatabaseScheduler(app=app, lazy=True)
answers = {}
for entry in scheduler.all_as_schedule().values():
    if not entry.task.startswith("celery."):
        entry.options["ignore_result"] = False  # only so that this script hears the answer
        answers[entry.task] = scheduler.apply_async(entry, advance=False).get(timeout=60)
run = CheckRun.objects.get(pk=answers["reputation.sweep"])
print(json.dumps([answers, run.trigger, run.chunks]))
"""


def test_beat_entries_of_a_migrated_database_run_in_a_real_worker(site, rbldnsd, tmp_path):
    """Every enabled entry is sent the way celery beat sends it (DatabaseScheduler.apply_async,
    by the task name stored in the row, with the row's arguments) and a real worker runs it."""
    doc = tmp_path / "lists.toml"
    doc.write_text(TEST_CATALOGUE)
    assert site.manage("config_import", str(doc), "--prune").returncode == 0
    site.env["POOLWARDEN_NAMESERVERS"] = rbldnsd.nameserver
    worker = start_worker(site.env, "beat-entries", quiet=True)
    try:
        answers, trigger, chunks = manage_json(site, BEAT_SENDS_EVERY_ENTRY)
    finally:
        assert stop_group(worker), "worker did not stop on SIGTERM"
    assert set(answers) == STORED_TASK_NAMES
    assert trigger == "schedule" and chunks >= 1
    assert set(answers["reputation.detect_spikes"]) == {"series", "opened", "closed"}
    assert answers["reputation.roll_up_dsn_counts"] == 0
    assert set(answers["reputation.send_alerts"]) == {"events", "sent", "failed"}
