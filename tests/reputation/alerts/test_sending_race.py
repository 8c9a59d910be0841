"""Two worker processes racing for the same events send each alert exactly once.

The workers are real `manage.py send_alerts` processes: on PostgreSQL they share the test
database, on SQLite a migrated site of their own (an in-memory test database cannot be shared
between processes)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.reputation.alerts.servers import HookServer
from tests.support import REPO, database_env, stop_group

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
ADDRESSES = [f"192.0.2.{n}" for n in range(1, 15)]
CHANNELS = ("one", "two")
SETUP = """
from django.utils import timezone
from reputation.models import Blocklist, BlocklistEvent, Channel, KnownAddress, Listing
for name in {channels!r}:
    Channel.objects.create(name=name, kind="webhook", config={{"url": "{url}/" + name}},
                           digest_seconds=0)
codes = {{"127.0.0.2": "RACE"}}
blocklist = Blocklist.objects.create(zone="race.test", weight="major", codes=codes)
now = timezone.now()
for address in {addresses!r}:
    KnownAddress.objects.get_or_create(address=address)
    Listing.objects.create(address=address, pool="normal", blocklist=blocklist,
                           codes=["127.0.0.2"], meanings=["RACE"], opened=now)
    BlocklistEvent.objects.create(kind="opened", blocklist=blocklist, address=address, created=now)
"""


def manage(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def alerted(hook: HookServer) -> Counter:
    return Counter((r.path, e["address"]) for r in hook.requests for e in r.json()["events"])


def test_two_worker_processes_send_each_alert_exactly_once(request):
    env = database_env(request)
    with HookServer() as hook:
        # The workers poll first, so both are at work when the events appear one by one.
        workers = [manage(env, "send_alerts", "--interval", "0.05") for _ in range(2)]
        script = SETUP.format(addresses=ADDRESSES, channels=CHANNELS, url=hook.url)
        setup = manage(env, "shell", "-c", script)
        assert setup.wait(120) == 0, setup.stderr.read()
        deadline = time.monotonic() + 60
        while len(alerted(hook)) < len(CHANNELS) * len(ADDRESSES) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a late duplicate would arrive now
        for worker in workers:
            assert stop_group(worker), "send_alerts did not stop on SIGTERM"
        errors = [w.stderr.read() for w in workers]
        assert [w.returncode for w in workers] == [0, 0], errors
        seen = alerted(hook)
    assert set(seen) == {(f"/{c}", a) for c in CHANNELS for a in ADDRESSES}, errors
    assert set(seen.values()) == {1}, errors
