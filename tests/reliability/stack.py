"""Poolwarden's processes on a PostgreSQL database of their own, reached through a `TcpProxy`
(tests/tcp_proxy.py) so that a test or bench/outage.py can cut it or make it hang: the HTTP API
under gunicorn, the policy service on a unix socket, the milter, and a Celery worker.

The database is created on the real server (127.0.0.1:5432, user postgres), migrated with
`manage.py migrate`, given the loopback pools of CONFIG by `manage.py config_import` and an API
token; `drop()` removes it. Counts are read on the real server, never through the proxy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support import LOOPBACK_POOLS, REPO, free_port, stop_group, wait_for_http

POSTGRES = ("127.0.0.1", 5432)
REDIS = ("127.0.0.1", 6379)
CONFIG = LOOPBACK_POOLS
ISSUE_TOKEN = "from routing.tokens import issue; print(issue(name='outage')[1])"  # the token, once


def postgres_answers() -> bool:
    import psycopg

    try:
        psycopg.connect(admin_dsn(), connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def admin_dsn(dbname: str = "postgres") -> str:
    return f"host={POSTGRES[0]} port={POSTGRES[1]} user=postgres dbname={dbname}"


class Stack:
    """The processes of one site; `env` is what each of them gets."""

    def __init__(
        self,
        *,
        database: str,
        db_proxy: str,
        nameserver: str,
        cache_url: str | None = None,
        settings: str = "config.settings",
        **variables: str,
    ):
        self.database = database
        self.work = Path(tempfile.mkdtemp(prefix="pw-outage-"))
        self.work.chmod(0o755)
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL")
        }
        env.update(
            DJANGO_SETTINGS_MODULE=settings,
            DATABASE_URL=f"postgres://postgres@{db_proxy}/{database}",
            POOLWARDEN_VAR_DIR=str(self.work / "var"),
            POOLWARDEN_NAMESERVERS=nameserver,
            POOLWARDEN_DNS_TIMEOUT="2",
            PYTHONPATH=str(REPO),
            **variables,
        )
        if cache_url:
            env["CACHE_URL"] = cache_url
        self.env = env
        self.procs: dict[str, subprocess.Popen] = {}
        self.token = ""

    # --- the database -------------------------------------------------------------------

    def create(self) -> None:
        """A fresh database, migrated, with the pools of CONFIG and an API token."""
        self.drop()
        self.sql(f'CREATE DATABASE "{self.database}"')
        self.manage("migrate", "--noinput")
        (self.work / "pools.toml").write_text(CONFIG)
        self.manage("config_import", "--prune", str(self.work / "pools.toml"))
        self.token = self.manage("shell", "-c", ISSUE_TOKEN).split()[-1]

    def drop(self) -> None:
        self.sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')

    @staticmethod
    def sql(statement: str, dbname: str = "postgres"):
        import psycopg

        with psycopg.connect(admin_dsn(dbname), autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(statement)
            return cursor.fetchall() if cursor.description else None

    def routed(self) -> int:
        """Decisions counted in routing_routingcount, read on the server itself."""
        rows = self.sql("SELECT coalesce(sum(count), 0) FROM routing_routingcount", self.database)
        return int(rows[0][0])

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise AssertionError(f"manage.py {args[0]}: {result.stderr.strip()[-2000:]}")
        return result.stdout

    # --- the processes ------------------------------------------------------------------

    def spawn(self, name: str, argv: list[str], **variables: str) -> subprocess.Popen:
        """`argv` in its own process group, its output in work/<name>.log."""
        log = open(self.work / f"{name}.log", "w")  # noqa: SIM115 - the child holds it
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env={**self.env, **variables},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self.procs[name] = proc
        return proc

    def log(self, name: str) -> str:
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_api(self, *, workers: int = 2, threads: int = 4) -> str:
        """gunicorn as deployed (config/gunicorn.py); returns its base URL once it routes."""
        listen = f"127.0.0.1:{free_port()}"
        gunicorn = str(Path(sys.executable).parent / "gunicorn")
        proc = self.spawn(
            "api",
            [gunicorn, "-c", "config/gunicorn.py", "config.wsgi"],
            POOLWARDEN_LISTEN=listen,
            WEB_CONCURRENCY=str(workers),
            WEB_THREADS=str(threads),
        )
        url = f"http://{listen}"
        wait_for_http(f"{url}/healthz", 60, proc)
        return url

    def start_policyd(self) -> str:
        path = str(self.work / "policyd.sock")
        proc = self.spawn(
            "policyd", [sys.executable, "manage.py", "policyd", "--listen", f"unix:{path}"]
        )
        wait_for(lambda: os.path.exists(path), proc, "policyd's socket")
        return path

    def start_milter(self) -> int:
        port = free_port()
        listen = f"127.0.0.1:{port}"
        proc = self.spawn("milter", [sys.executable, "manage.py", "milter", "--listen", listen])
        wait_for(lambda: port_open(port), proc, "the milter's port")
        return port

    def start_worker(self) -> subprocess.Popen:
        from tests.support import start_worker

        proc = start_worker(self.env, "outage", quiet=True)
        self.procs["worker"] = proc
        return proc

    def pids(self, name: str) -> set[int]:
        """The process and its children (gunicorn's workers), to tell a restart."""
        proc = self.procs[name]
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
        found = {proc.pid}
        if children.exists():
            found |= {int(pid) for pid in children.read_text().split()}
        return found

    def stop(self) -> dict[str, int]:
        """SIGTERM to every process group (they flush their counters); their exit codes."""
        codes = {}
        for name, proc in self.procs.items():
            stop_group(proc, timeout=30)
            codes[name] = proc.wait()
        return codes

    def cleanup(self) -> None:
        import shutil

        self.stop()
        self.drop()
        shutil.rmtree(self.work, ignore_errors=True)


def port_open(port: int) -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(ready, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode} before {what}")
        if ready():
            return
        time.sleep(0.05)
    raise AssertionError(f"no {what} after {timeout} s")
