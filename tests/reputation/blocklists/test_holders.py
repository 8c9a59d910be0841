"""Where the holders of each zone are kept (reputation/blocklists/holders.py), on the session's
real backends: the database in every run, Redis too when the cache is Redis."""

from __future__ import annotations

import time

import pytest
from django.db import transaction

from reputation.blocklists.holders import DatabaseBackend, short_waits
from reputation.blocklists.shares import Grant, ZoneShares

pytestmark = pytest.mark.integration


def holders(backend, zone: str) -> list[tuple[str, int]]:
    """(holder, beat) of every holder of `zone`, in join order."""
    return [(row.holder, row.beat) for row in backend.refresh("nobody", [zone], 0)[zone]]


def test_holders_keep_their_join_order_and_joining_again_changes_nothing(backend, zone):
    for holder in ("a", "b", "c"):
        backend.join(holder, {zone: (20, 50.0)}, 1)
    backend.join("a", {zone: (20, 50.0)}, 7)
    rows = backend.refresh("b", [zone], 2)[zone]
    assert [(r.holder, r.beat, r.in_flight, r.qps) for r in rows] == [
        ("a", 1, 20, 50.0),
        ("b", 2, 20, 50.0),
        ("c", 1, 20, 50.0),
    ]
    assert rows[0].seq < rows[1].seq < rows[2].seq


def test_a_heartbeat_never_brings_back_a_holder_that_left(backend, zone):
    backend.join("a", {zone: (20, 50.0)}, 1)
    backend.leave("a", [zone])
    assert backend.refresh("a", [zone], 2) == {zone: []}


def test_a_holder_is_reaped_only_if_it_has_not_beaten_since(backend, zone):
    backend.join("a", {zone: (20, 50.0)}, 1)
    backend.refresh("a", [zone], 2)
    backend.reap(zone, "a", 1)  # seen dead at beat 1, but it beat since
    assert holders(backend, zone) == [("a", 2)]
    backend.reap(zone, "a", 2)
    assert holders(backend, zone) == []


def test_holders_that_died_long_ago_are_forgotten_and_a_newcomer_starts_at_once(new_backend, zone):
    backend = new_backend(forget=0.2)
    backend.join("killed", {zone: (20, 50.0)}, 1)
    time.sleep(0.4)  # real time: Redis expires the zone, the database compares wall clocks

    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"join() waited {seconds} s for a dead holder")

    with ZoneShares({zone: (20, 50.0)}, backend, holder="new", sleep=no_sleep) as shares:
        assert shares.current()[zone] == Grant(20, 50.0)
        assert [holder for holder, _ in holders(backend, zone)] == ["new"]


def test_database_heartbeats_are_committed_whatever_the_callers_transaction(shared_database, zone):
    writer, reader = DatabaseBackend(shared_database), DatabaseBackend(shared_database)
    try:
        with transaction.atomic():  # the caller's: the backend's own connection is not in it
            writer.join("a", {zone: (20, 50.0)}, 1)
            writer.refresh("a", [zone], 2)
            assert holders(reader, zone) == [("a", 2)]
        writer.leave("a", [zone])
    finally:
        writer.close()
        reader.close()


def test_database_waits_are_bounded_by_the_backends_timeout():
    postgres = {"ENGINE": "django.db.backends.postgresql", "OPTIONS": {"options": "-c jit=off"}}
    short_waits(postgres, 1.0)
    assert postgres["OPTIONS"] == {
        "options": "-c jit=off -c statement_timeout=1000 -c lock_timeout=1000",
        "connect_timeout": 2,
        "tcp_user_timeout": 2000,
    }
    sqlite = {"ENGINE": "django.db.backends.sqlite3", "OPTIONS": {"timeout": 20}}
    short_waits(sqlite, 1.0)
    assert sqlite["OPTIONS"] == {"timeout": 1.0}
