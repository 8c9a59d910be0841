"""Start-up configuration: bad values stop every entry point with one line naming the
variable; production mode insists on its secrets and passes `check --deploy`."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

pytestmark = pytest.mark.integration


def run(args: list[str], tmp_path, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECRET_KEY")}
    base.pop("ALLOWED_HOSTS", None)
    base["POOLWARDEN_VAR_DIR"] = str(tmp_path / "var")
    return subprocess.run(
        args, cwd=REPO, env={**base, **env}, capture_output=True, text=True, timeout=60
    )


def manage(tmp_path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", *args], tmp_path, **env)


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("DATABASE_URL", "postgres://u@h:port/db", "cannot parse"),
        ("DATABASE_URL", "just-a-path.db", "not a URL"),
        ("DATABASE_URL", "postgres://u@127.0.0.1:5432", "names no database"),
        ("CELERY_BROKER_URL", "kafka://127.0.0.1", "unsupported scheme 'kafka'"),
        ("CACHE_URL", "memcached://127.0.0.1", "unsupported scheme 'memcached'"),
        ("EMAIL_URL", "smtp://u:pw@h:nope", "cannot parse"),
        ("DEBUG", "perhaps", "expected a boolean"),
        ("EMAIL_PORT", "twenty-five", "expected an integer"),
        ("POOLWARDEN_SWEEP_INTERVAL", "0", "expected at least 1, got '0'"),
        ("POOLWARDEN_SWEEP_JITTER", "-5", "expected at least 0, got '-5'"),
    ],
)
def test_bad_variable_stops_startup_with_one_line(tmp_path, variable, value, expected):
    result = manage(tmp_path, "check", **{variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"poolwarden: configuration error: {variable}:")
    assert expected in lines[0]
    assert "Traceback" not in result.stderr


def test_error_message_hides_the_database_password(tmp_path):
    result = manage(tmp_path, "check", DATABASE_URL="mysql://user:hunter2@h/db")
    assert result.returncode == 2
    assert "hunter2" not in result.stderr


def test_celery_worker_with_bad_broker_url_exits_with_one_line(tmp_path):
    celery = [sys.executable, "-m", "celery", "-A", "config.celery", "worker"]
    result = run(celery, tmp_path, CELERY_BROKER_URL="kafka://127.0.0.1")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "poolwarden: configuration error: CELERY_BROKER_URL: unsupported scheme 'kafka' "
        "(use one of amqp://, amqps://, filesystem://, memory://, pyamqp://, redis://, rediss://)"
    ]


def test_production_mode_requires_secret_key(tmp_path):
    result = manage(tmp_path, "check", DEBUG="0", ALLOWED_HOSTS="mx.example.net")
    assert result.returncode == 2
    assert "SECRET_KEY: required when DEBUG=0" in result.stderr


def test_production_mode_requires_allowed_hosts(tmp_path):
    result = manage(tmp_path, "check", DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 2
    assert "ALLOWED_HOSTS: required when DEBUG=0" in result.stderr


def test_check_deploy_is_clean_in_production_mode(tmp_path):
    result = manage(
        tmp_path,
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="mx.example.net",
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_development_secret_key_is_generated_once_and_kept(tmp_path):
    first = manage(
        tmp_path, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"
    )
    second = manage(
        tmp_path, "shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"
    )
    assert first.returncode == 0, first.stderr
    key = first.stdout.strip().splitlines()[-1]
    assert len(key) >= 50
    assert second.stdout.strip().splitlines()[-1] == key
    assert (tmp_path / "var" / "secret_key").stat().st_mode & 0o077 == 0


def test_postgresql_connections_run_without_jit(monkeypatch):
    """PostgreSQL's JIT is off for Poolwarden's connections (it slows the dashboard's
    aggregates), unless the URL passes its own options."""
    from config import env

    monkeypatch.setenv("PW_TEST_DB", "postgres://u@127.0.0.1:5432/pw")
    assert env.database("PW_TEST_DB", REPO)["OPTIONS"]["options"] == "-c jit=off"
    monkeypatch.setenv("PW_TEST_DB", "postgres://u@127.0.0.1:5432/pw?options=-c%20work_mem%3D64MB")
    assert env.database("PW_TEST_DB", REPO)["OPTIONS"]["options"] == "-c work_mem=64MB"


def test_postgresql_honours_the_jit_option(monkeypatch):
    """A connection made with those options really runs without JIT (a real server)."""
    import psycopg

    from config import env

    url = "postgres://postgres@127.0.0.1:5432/postgres"
    monkeypatch.setenv("PW_TEST_DB", url)
    options = env.database("PW_TEST_DB", REPO)["OPTIONS"]["options"]
    with psycopg.connect(url, options=options) as conn:
        assert conn.execute("SHOW jit").fetchone()[0] == "off"


@pytest.mark.parametrize("how", ["cannot-create", "under-a-file"])
def test_unwritable_var_dir_is_one_line_naming_the_path(tmp_path, how):
    if how == "under-a-file":
        (tmp_path / "file").write_text("")
        var = tmp_path / "file" / "var"
    elif os.geteuid() == 0:  # root writes through permissions: use a file system that refuses
        var = Path("/sys/poolwarden-var")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        var = tmp_path / "ro" / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DATABASE_URL")}
    env.update(POOLWARDEN_VAR_DIR=str(var), DEBUG="1")
    for args in (["manage.py", "check"], ["-m", "celery", "-A", "config.celery", "inspect"]):
        result = subprocess.run(
            [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
        assert lines[0].startswith(
            f"poolwarden: configuration error: POOLWARDEN_VAR_DIR: cannot write {var}"
        )
        assert "set POOLWARDEN_VAR_DIR to a folder" in lines[0]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("WEB_THREADS", "x", "expected an integer, got 'x'"),
        ("WEB_CONCURRENCY", "0", "expected at least 1, got '0'"),
        ("POOLWARDEN_WORKERS", "-2", "expected at least 1, got '-2'"),
    ],
)
def test_make_run_checks_the_process_counts_before_starting_anything(
    tmp_path, variable, value, expected
):
    result = manage(tmp_path, "run", **{variable: value})
    assert result.returncode == 2
    assert result.stderr.strip() == f"poolwarden: configuration error: {variable}: {expected}"
    assert not (tmp_path / "var" / "run.lock").exists()  # refused before taking the lock
