"""Two processes flushing the same counter keys at once, inserted in opposite orders: each
flush locks its rows in sorted order, so neither waits for the other in a cycle (PostgreSQL
would detect a deadlock and fail one of them), and every count arrives exactly once.

The flushers are real `manage.py shell` processes: on PostgreSQL they share the test
database, on SQLite a migrated site of their own."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support import REPO, database_env

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
SOURCES, ROUNDS = 60, 100
FLUSHER = """
import time
from datetime import UTC, datetime
from pathlib import Path
from routing.counters import Counters
from routing.facts import Decision, MessageFacts

sources = [f"sasl:customer{{n:03}}" for n in range({sources})]
if {reverse}:
    sources.reverse()
decision = Decision("normal", "normal", "192.0.2.1", (), None, False, "x.example")
counters = Counters(lambda: datetime(2026, 11, 27, 10, 15, tzinfo=UTC))
ready = Path({ready!r})
(ready / "{name}").touch()
while len(list(ready.iterdir())) < 2:  # both flush from the start
    time.sleep(0.01)
errors = []
for _ in range({rounds}):
    for source in sources:
        counters.record(MessageFacts(source=source), decision)
    try:
        counters.flush()
    except Exception as exc:  # kept for the next flush
        errors.append(" ".join(str(exc).split()))
counters.flush()
print(len(errors), errors[:1])
"""
TOTALS = """
import json
from django.db.models import Sum
from routing.models import RoutingCount, RoutingDaily, RoutingHourly
per_source = RoutingCount.objects.values_list("source").annotate(Sum("count"))
print(json.dumps({
    "per_source": sorted({count for _, count in per_source}),
    "sources": len(per_source),
    "hourly": RoutingHourly.objects.aggregate(Sum("count"))["count__sum"],
    "daily": RoutingDaily.objects.aggregate(Sum("count"))["count__sum"],
}))
"""


def shell(env: dict[str, str], script: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def last_line(out: str) -> str:
    return out.strip().splitlines()[-1]  # after the shell's own "objects imported" line


def test_concurrent_flushes_of_the_same_keys_never_deadlock_and_add_up(request, tmp_path):
    env = database_env(request)
    flushers = [
        shell(
            env,
            FLUSHER.format(
                sources=SOURCES, rounds=ROUNDS, reverse=reverse, ready=str(tmp_path), name=name
            ),
        )
        for name, reverse in (("ascending", False), ("descending", True))
    ]
    outputs = [flusher.communicate(timeout=300) for flusher in flushers]
    assert [f.returncode for f in flushers] == [0, 0], outputs
    assert [last_line(out) for out, _ in outputs] == ["0 []", "0 []"], outputs
    totals = shell(env, TOTALS)
    out, err = totals.communicate(timeout=120)
    assert totals.returncode == 0, err
    assert json.loads(last_line(out)) == {
        "per_source": [2 * ROUNDS],
        "sources": SOURCES,
        "hourly": 2 * ROUNDS * SOURCES,
        "daily": 2 * ROUNDS * SOURCES,
    }
