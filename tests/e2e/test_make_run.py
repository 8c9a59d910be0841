"""`make run` as a user runs it: one process tree with web, worker and beat on embedded
defaults; the admin login works; Ctrl-C (SIGINT to the group) stops everything."""

from __future__ import annotations

import http.cookiejar
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from tests.support import REPO, free_port, stop_group, wait_for_http

pytestmark = pytest.mark.integration


def login(base: str, username: str, password: str) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(f"{base}/admin/login/", timeout=10).read().decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode(
        {
            "csrfmiddlewaretoken": token,
            "username": username,
            "password": password,
            "next": "/admin/",
        }
    ).encode()
    request = urllib.request.Request(
        f"{base}/admin/login/", data=form, headers={"Referer": f"{base}/admin/login/"}
    )
    return opener.open(request, timeout=10).read().decode()


@pytest.fixture
def make_run(tmp_path):
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "CELERY_BROKER_URL",
            "CELERY_RESULT_BACKEND",
            "CACHE_URL",
            "DJANGO_SETTINGS_MODULE",  # the product's own settings, not the suite's
        )
        and not k.startswith("MAKE")
    }
    env |= {
        "POOLWARDEN_VAR_DIR": str(tmp_path / "var"),
        "POOLWARDEN_LISTEN": f"127.0.0.1:{port}",
        "POOLWARDEN_ADMIN_PASSWORD": "correct-horse-battery",
    }
    log = (tmp_path / "run.log").open("w+")
    proc = subprocess.Popen(
        ["make", "run"],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc, f"http://127.0.0.1:{port}", env, log
    stop_group(proc, signal.SIGKILL, timeout=5)


def wait_for_log(log, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log.seek(0)
        text = log.read()
        if re.search(pattern, text):
            return text
        time.sleep(0.3)
    log.seek(0)
    raise AssertionError(f"{pattern!r} not in the output:\n{log.read()[-3000:]}")


def test_make_run_serves_admin_with_worker_and_beat_and_stops_on_ctrl_c(make_run):
    proc, base, env, log = make_run
    assert wait_for_http(f"{base}/admin/login/", timeout=180, proc=proc) == 200
    index = login(base, "admin", "correct-horse-battery")
    assert "<title>Outbound IP reputation | Poolwarden</title>" in index
    assert "/admin/routing/pool/" in index
    assert wait_for_http(f"{base}/static/admin/css/base.css", timeout=10) == 200
    wait_for_log(log, r"worker-\d+@\S+ ready", timeout=60)  # a unique name per worker
    wait_for_log(log, r"beat: Starting", timeout=60)
    answer = subprocess.run(
        [f"{REPO}/.venv/bin/python", "manage.py", "ping_worker", "--timeout", "30"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode == 0, answer.stderr
    assert "worker answered (database sqlite3, broker filesystem)" in answer.stdout

    # One instance per var/: a second `make run`, beat or worker refuses, naming the first.
    for command, role in (
        (["make", "--no-print-directory", "run"], "run"),
        ([f"{REPO}/.venv/bin/celery", "-A", "config.celery", "beat"], "beat"),
        ([f"{REPO}/.venv/bin/celery", "-A", "config.celery", "worker", "--pool=solo"], "worker"),
    ):
        second = subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60
        )
        assert second.returncode == 2, (command, second.stdout, second.stderr)
        refusal = [line for line in second.stderr.splitlines() if "another Poolwarden" in line]
        assert len(refusal) == 1, second.stderr
        assert (
            f"another Poolwarden {role} is running on {env['POOLWARDEN_VAR_DIR']} (pid "
            in (refusal[0])
        )
        assert "Traceback" not in second.stderr

    assert stop_group(proc, signal.SIGINT, timeout=20), "processes left after Ctrl-C"
    log.seek(0)
    output = log.read()
    assert "Traceback" not in output
    for name in ("web", "worker", "beat"):
        assert re.search(rf"{name}\.1 +stopped", output) or f"{name}.1 stopped" in output
