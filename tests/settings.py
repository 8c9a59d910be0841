"""The product's settings (config.settings) for the test suite, with every shared resource in
a namespace of this test run and xdist worker: two runs at once (two developers on one
PostgreSQL and Redis, or the workers of one `pytest -n 2`) never see each other's tasks,
results, cache entries, filesystem broker or test databases.

Processes a test starts inherit DJANGO_SETTINGS_MODULE and the variables below, so a worker
or `manage.py` started by a test shares that test's namespace (a Site sets its own var dir).
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

# xdist gives its workers the run's id; a run without xdist makes one for its children.
RUN = os.environ.setdefault(
    "POOLWARDEN_TEST_RUN", os.environ.get("PYTEST_XDIST_TESTRUNUID", secrets.token_hex(4))[:8]
)
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")
NAMESPACE = f"pwtest-{RUN}-{WORKER}"

# The embedded broker, results and secret key of a var dir of this run and worker, not the
# checkout's var/ (a developer's `make run` data). Set only while config.settings reads it:
# xdist workers inherit this process's environment and must compute their own.
OWN_VAR_DIR = (Path(tempfile.gettempdir()) / NAMESPACE).resolve()
_given_var_dir = "POOLWARDEN_VAR_DIR" in os.environ
if not _given_var_dir:
    os.environ["POOLWARDEN_VAR_DIR"] = str(OWN_VAR_DIR)
try:
    from config.settings import *  # noqa: F403
    from config.settings import CACHES, CELERY_BROKER_TRANSPORT_OPTIONS, DATABASES
finally:
    if not _given_var_dir:
        del os.environ["POOLWARDEN_VAR_DIR"]

_REDIS = ("redis://", "rediss://")
CACHES["default"]["KEY_PREFIX"] = NAMESPACE
if CELERY_BROKER_URL.startswith(_REDIS):  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = f"{NAMESPACE}:"
    # A task of a killed worker is requeued within a second of its visibility timeout, not
    # ten (tests/reputation/test_tasks.py shortens that timeout to 4 s).
    CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = 1
elif CELERY_BROKER_URL.startswith("filesystem://"):  # noqa: F405
    # Workers of tests wait for one task at a time: look for it every 0.1 s, not every 1 s.
    CELERY_BROKER_TRANSPORT_OPTIONS["polling_interval"] = 0.1
if (CELERY_RESULT_BACKEND or "").startswith(_REDIS):  # noqa: F405
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"global_keyprefix": f"{NAMESPACE}:"}
# pytest-django appends the xdist worker (test_poolwarden_<run>_gw0); a killed run leaves
# its database behind under a name no later run reuses.
_default = DATABASES["default"]
if _default["ENGINE"].endswith("postgresql"):
    _default.setdefault("TEST", {})["NAME"] = f"test_{_default['NAME']}_{RUN}"
# Tests load the routing snapshot in their own thread (inside the test's transaction); the
# background refresher is exercised by tests that start it, and by real processes.
POOLWARDEN_REFRESH_IN_BACKGROUND = False
