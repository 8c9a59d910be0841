"""Shared fixtures. Under POOLWARDEN_REQUIRE_ALL=1 (CI) a skipped test fails the run, so a
missing service or package can never pass for a green suite; either way the summary names
what is missing and how to install it (tests/support.py skip_missing)."""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter

import pytest

from tests.dns_server import dns_server  # noqa: F401 - the session's unbound on loopback
from tests.rbldnsd_server import rbldnsd  # noqa: F401 - the session's rbldnsd on loopback
from tests.support import free_port  # noqa: F401 - re-exported for tests

REQUIRE_ALL = os.environ.get("POOLWARDEN_REQUIRE_ALL") == "1"
# Tests never query real resolvers: a process started by a test inherits this dead loopback
# resolver unless the test points it at the test DNS server.
NO_DNS = "127.0.0.1:1"
os.environ["POOLWARDEN_NAMESERVERS"] = NO_DNS


@pytest.fixture(autouse=True)
def _loopback_dns_only(settings):
    """Every engine built in a test resolves through loopback only, and none outlives it."""
    from routing.engine import reset_engine

    settings.POOLWARDEN_NAMESERVERS = [NO_DNS]
    settings.POOLWARDEN_DNS_TIMEOUT = 0.5
    reset_engine()
    yield
    reset_engine()


@pytest.fixture
def engine(settings, dns_server):  # noqa: F811 - the imported fixture
    """This process's routing engine, resolving with the test DNS server; counters are
    flushed by the test (no background thread)."""
    from routing.engine import get_engine, reset_engine

    settings.POOLWARDEN_NAMESERVERS = [dns_server.nameserver]
    settings.POOLWARDEN_DNS_TIMEOUT = 1.5
    reset_engine()
    return get_engine(flush_in_background=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Runs where the test ran (an xdist worker too): the controller gets the failed report.
    outcome = yield
    report = outcome.get_result()
    if REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{FORBIDDEN} {skip_reason(report)}"


FORBIDDEN = "skipped, but POOLWARDEN_REQUIRE_ALL=1 forbids skips:"
MISSING = re.compile(r"missing (\S+): .* \(install: (.+)\)$")


def skip_reason(report) -> str:
    longrepr = report.longrepr
    return longrepr[2] if isinstance(longrepr, tuple | list) else str(longrepr)


def pytest_terminal_summary(terminalreporter):
    """One line naming what is missing, e.g. "skipped for missing tools: unbound (12),
    postfix (8) — install: apt-get install unbound postfix"."""
    counts: Counter[str] = Counter()
    installs: dict[str, str] = {}
    stats = terminalreporter.stats
    for report in stats.get("skipped", []) + stats.get("failed", []) + stats.get("error", []):
        if match := MISSING.search(skip_reason(report)):
            counts[match[1]] += 1
            installs[match[1]] = match[2]
    if counts:
        groups = ", ".join(f"{group} ({n})" for group, n in counts.most_common())
        terminalreporter.write_line(
            f"skipped for missing tools: {groups} — install: {install_line(installs.values())}"
        )


def install_line(commands) -> str:
    """The install commands, with every `apt-get install` merged into one."""
    apt = [c.removeprefix("apt-get install ") for c in commands if c.startswith("apt-get install")]
    other = sorted({c for c in commands if not c.startswith("apt-get install")})
    return "; ".join(([f"apt-get install {' '.join(dict.fromkeys(apt))}"] if apt else []) + other)


def pytest_sessionfinish(session):
    """Leave nothing of this process's namespace (tests/settings.py) behind."""
    from django.conf import settings

    namespace = getattr(settings, "NAMESPACE", None)
    if namespace is None:
        return
    from tests.support import delete_redis_namespace

    redis_urls = {settings.CELERY_BROKER_URL, settings.CELERY_RESULT_BACKEND}
    redis_urls.add(settings.CACHES["default"].get("LOCATION"))
    for url in redis_urls:
        if isinstance(url, str) and url.startswith(("redis://", "rediss://")):
            delete_redis_namespace(url, namespace)
    if settings.VAR_DIR == settings.OWN_VAR_DIR:
        shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


@pytest.fixture
def operator(django_user_model):
    return make_staff(django_user_model, "olivia", "operators")


@pytest.fixture
def viewer(django_user_model):
    return make_staff(django_user_model, "victor", "viewers")


def make_staff(user_model, username: str, group: str):
    from django.contrib.auth.models import Group

    user = user_model.objects.create_user(username, password="pw-" + username, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return user


class Site:
    """A migrated Poolwarden installation of its own (SQLite, embedded broker) in a temporary
    folder, for tests that run `manage.py` as a user would."""

    def __init__(self, var_dir):
        import os

        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CACHE_URL")
        }
        self.env["POOLWARDEN_VAR_DIR"] = str(var_dir)
        self.env["POOLWARDEN_NAMESERVERS"] = NO_DNS

    def manage(self, *args: str, input: str | None = None, timeout: float = 120):
        import subprocess
        import sys

        from tests.support import REPO

        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


@pytest.fixture(scope="session")
def site_template(tmp_path_factory):
    site = Site(tmp_path_factory.mktemp("site-template"))
    result = site.manage("migrate", "--noinput")
    assert result.returncode == 0, result.stderr
    return site


@pytest.fixture
def site(site_template, tmp_path):
    """A fresh copy of the migrated site, so each test starts from the defaults."""

    var_dir = tmp_path / "site-var"
    shutil.copytree(site_template.env["POOLWARDEN_VAR_DIR"], var_dir)
    return Site(var_dir)
