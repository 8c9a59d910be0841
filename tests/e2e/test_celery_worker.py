"""A real Celery worker, on the configured broker (Redis in CI, the embedded filesystem
broker by default), runs a task sent from this process and returns its answer."""

from __future__ import annotations

import os
import secrets

import pytest
from django.conf import settings

from config.celery import ping
from tests.support import start_worker, stop_group

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def worker():
    proc = start_worker(os.environ.copy(), "test")
    yield proc
    assert stop_group(proc), "worker did not stop on SIGTERM"


def test_worker_runs_a_task_end_to_end(worker):
    token = secrets.token_hex(8)
    answer = ping.delay(token).get(timeout=60)
    assert answer["token"] == token
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    assert answer["database"] == engine
    assert answer["broker"] == settings.CELERY_BROKER_URL.split("://", 1)[0]


def test_ci_runs_on_redis_when_asked():
    """Under CI the broker must be the real Redis, not the embedded fallback."""
    if os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"):
        assert settings.CELERY_BROKER_URL.startswith("redis://")
        assert settings.CELERY_RESULT_BACKEND.startswith("redis://")
    else:
        assert settings.CELERY_BROKER_URL.startswith("filesystem://")
