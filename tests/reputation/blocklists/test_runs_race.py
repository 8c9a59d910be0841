"""Two `check_blocklists` started at once (two operators, or a command beside the schedule):
real processes sharing one database, against rbldnsd behind a slow link so that they overlap.

The processes cannot see this test's transaction, and a `transaction=True` test would empty
tables other tests of this worker rely on: on PostgreSQL they share a database made for this
test, on SQLite a migrated site's."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from django.db import connection

from tests.rbldnsd_server import proxy
from tests.support import REPO

pytestmark = [pytest.mark.integration]
LISTS = ("minor.test", "zen.test")
DOC = "".join(f'[[blocklists]]\nzone = "{z}"\nmax_in_flight = 0\nmax_qps = 0\n' for z in LISTS)
REPORT = """
import datetime as dt, json
from django.utils import timezone
from reputation.alerts import events
from reputation.models import CheckRun, Event
events.collect(timezone.now() + dt.timedelta(hours=3))
print(json.dumps({
    "unfinished": list(CheckRun.objects.filter(finished__isnull=True).values_list("pk", flat=True)),
    "warnings": list(Event.objects.filter(kind="sweep-failed").values_list("subject", flat=True)),
}))
"""


@pytest.fixture
def shared_env(site, tmp_path):
    """The environment of processes sharing one fresh, migrated database."""
    if connection.vendor != "postgresql":
        yield site.env
        return
    import psycopg

    db = connection.settings_dict
    name = f"{db['NAME']}_sweeps"[:63]
    server = {"host": db["HOST"] or "127.0.0.1", "port": db["PORT"] or 5432, "user": db["USER"]}
    with psycopg.connect(
        dbname="postgres", autocommit=True, password=db["PASSWORD"], **server
    ) as pg:
        pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg.execute(f'CREATE DATABASE "{name}"')
        try:
            site.env["DATABASE_URL"] = (
                f"postgres://{server['user']}@{server['host']}:{server['port']}/{name}"
            )
            migrated = site.manage("migrate", "--noinput", timeout=300)
            assert migrated.returncode == 0, migrated.stderr
            yield site.env
        finally:
            pg.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def check_blocklists(env: dict[str, str]) -> subprocess.Popen:
    command = [sys.executable, "manage.py", "check_blocklists", "--json"]
    for zone in LISTS:
        command += ["--list", zone]
    return subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_two_sweeps_at_once_both_finish_cleanly_and_never_overlap_on_a_list(
    shared_env, site, rbldnsd, tmp_path
):
    doc = tmp_path / "lists.toml"
    doc.write_text(DOC)
    assert site.manage("config_import", str(doc)).returncode == 0
    skips = []
    with proxy(rbldnsd.port, delay=1.0) as slow:  # a sweep lasts a few seconds
        site.env["POOLWARDEN_NAMESERVERS"] = slow.nameserver
        for _ in range(3):
            pair = [check_blocklists(site.env) for _ in range(2)]
            done = [process.communicate(timeout=180) for process in pair]
            for process, (_, err) in zip(pair, done, strict=True):
                assert process.returncode == 0 and "Traceback" not in err, err
            reports = [json.loads(out) for out, _ in done]
            for zone in LISTS:  # by one run, or by both when one began after the other ended
                assert any(zone not in report["skipped"] for report in reports), reports
            for report in reports:
                for why in report["skipped"].values():
                    assert re.fullmatch(r"run \d+ is still sweeping it", why), reports
                    skips.append(why)
    assert skips, "the two sweeps never overlapped: nothing was tested"
    left = site.manage("shell", "-c", REPORT)
    assert left.returncode == 0, left.stderr
    assert json.loads(left.stdout.strip().splitlines()[-1]) == {"unfinished": [], "warnings": []}
