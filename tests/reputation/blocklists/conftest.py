"""Fixtures of the shared blocklist limits (test_shares.py, test_holders.py): the holders'
backends on the session's real servers, never a stand-in."""

from __future__ import annotations

import copy
import uuid

import pytest
from django.conf import settings
from django.db.utils import load_backend

from config.shared_redis import shared_redis
from reputation.blocklists.holders import DatabaseBackend, RedisBackend


def session_redis() -> str | None:
    """The session's Redis URL when its cache is Redis (CACHE_URL=redis://…), else None."""
    shared = shared_redis()
    return shared.url if shared else None


# The database backend in every run, and Redis too when the session's cache is Redis (CI's
# PostgreSQL + Redis run). Nothing here skips: a Redis that does not answer fails the tests.
BACKENDS = ["database", "redis"] if session_redis() else ["database"]


@pytest.fixture
def shared_database(db, tmp_path) -> dict | None:
    """Settings of a database that other connections and processes share: on PostgreSQL the
    test database (None, DatabaseBackend's default); on SQLite, whose in-memory test database
    the test's transaction keeps locked, a file holding the holders' table."""
    from django.db import connection

    from reputation.models import ZoneHolder

    if connection.vendor != "sqlite":
        return None
    database = copy.deepcopy(connection.settings_dict)
    database["NAME"] = str(tmp_path / "shares.sqlite3")
    wrapper = load_backend(database["ENGINE"]).DatabaseWrapper(database, "shares-setup")
    try:
        with wrapper.schema_editor(atomic=False) as editor:
            editor.create_model(ZoneHolder)
    finally:
        wrapper.close()
    return database


@pytest.fixture(params=BACKENDS)
def new_backend(request):
    """A factory of backends of the kind under test (options: see holders.py), all closed at
    the end of the test."""
    made = []

    def make(**options):
        if request.param == "redis":
            backend = RedisBackend(
                session_redis(), prefix=settings.CACHES["default"]["KEY_PREFIX"], **options
            )
            assert backend.client.ping()  # no answer: the test fails here, plainly
        else:
            backend = DatabaseBackend(request.getfixturevalue("shared_database"), **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(new_backend):
    return new_backend()


@pytest.fixture
def zone() -> str:
    """A zone of this test alone (the backends' rows outlive a test's transaction)."""
    return f"{uuid.uuid4().hex[:12]}.shares.test"
