"""A real Redis for the limit stores: the session's cache when it is Redis, else the local
one (POOLWARDEN_TEST_REDIS_URL), each test under a key prefix of its own."""

from __future__ import annotations

import os
import uuid

import pytest

from config.shared_redis import SharedRedis, shared_redis
from routing.limits.store import DatabaseStore, RedisStore
from tests.support import redis_answers, skip_missing

LOCAL_REDIS = os.environ.get("POOLWARDEN_TEST_REDIS_URL", "redis://127.0.0.1:6379/3")


@pytest.fixture
def shared():
    """A SharedRedis with a key prefix of the test's own; its keys are deleted at the end."""
    url = shared_redis().url if shared_redis() else LOCAL_REDIS
    if not redis_answers(url):
        skip_missing("redis", f"no Redis answers at {url}", "apt-get install redis-server")
    made = SharedRedis(url, f"pw-test-limits-{uuid.uuid4().hex[:12]}")
    yield made
    client = made.client(1.0)
    keys = list(client.scan_iter(match=made.key("*"), count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(params=["database", "redis"])
def new_store(request):
    """A factory of stores ("processes") on the store under test."""
    shared_made = request.getfixturevalue("shared") if request.param == "redis" else None
    made = []

    def make():
        store = RedisStore(shared_made) if shared_made else DatabaseStore()
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
