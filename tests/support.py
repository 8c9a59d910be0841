"""Helpers for tests that run real processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NoReturn

import pytest

# Two loopback pools as `config_import` takes them: the sites of the benches, the e2e tests
# and the reliability stack.
LOOPBACK_POOLS = """\
[[pools]]
name = "normal"
kind = "normal"
ranges = ["127.0.0.2/32", "127.0.0.4/32"]

[[pools]]
name = "high-risk"
kind = "high-risk"
ranges = ["127.0.0.3/32"]
take_listed_out = false
"""
REPO = Path(__file__).resolve().parent.parent
DSN_SAMPLES = REPO / "tests" / "routing" / "samples" / "dsn"  # real DSNs of real MTAs


def skip_missing(group: str, what: str, install: str) -> NoReturn:
    """Skip the test for a missing tool, package or service, in the one form that the
    terminal summary of tests/conftest.py counts by `group` and answers with `install`."""
    pytest.skip(f"missing {group}: {what} (install: {install})")


def require_tool(group: str, *paths: str, install: str) -> None:
    """Skip unless every executable in `paths` exists."""
    missing = [p for p in paths if not (shutil.which(p) or Path(p).exists())]
    if missing:
        skip_missing(group, " and ".join(missing) + " not installed", install)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def delete_redis_namespace(url: str, namespace: str) -> None:
    """Delete the keys of one test namespace (tests/settings.py) from the Redis at `url`."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=1000))
        if keys:
            client.delete(*keys)
    except redis.ConnectionError:
        pass  # the server went away: nothing left to clean
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float, proc: subprocess.Popen | None = None) -> int:
    """Poll `url` until it answers; return the status. Raise if `proc` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> bool:
    """Signal the process group of `proc`; True if every member is gone within `timeout`."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        proc.poll()
        if not group_alive(proc.pid):
            return True
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    return False


def start_worker(env: dict, name: str, *, quiet: bool = False) -> subprocess.Popen:
    """A real Celery worker (solo pool) in its own process group, with `env`."""
    import secrets
    import sys

    output = subprocess.DEVNULL if quiet else None
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config.celery",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            # No waiting for (or chatting with) peers: each test's worker is alone.
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            f"--hostname={name}-{secrets.token_hex(4)}@%h",
        ],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=output,
        stderr=output,
    )


def database_env(request) -> dict[str, str]:
    """The environment of a process that uses the database this test sees: on PostgreSQL the
    test database (the test needs transaction=True), on SQLite a migrated site of its own (an
    in-memory test database cannot be shared between processes)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        return request.getfixturevalue("site").env
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    return {**os.environ, "DATABASE_URL": url}


CLOCK_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(root: int) -> float:
    """User + system CPU seconds of `root` and its live descendants, each with its reaped
    children's (so a process that exits between two readings is still counted)."""
    stats, children = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # gone meanwhile
            pid = int(entry.name)
            stats[pid] = sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
            children.setdefault(int(fields[1]), []).append(pid)
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += stats.get(pid, 0)
        todo += children.get(pid, [])
    return total / CLOCK_TICK
