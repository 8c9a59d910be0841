"""Blocklist limits shared by every sweeper (reputation/blocklists/shares.py), on the session's
real backends: the database in every run, Redis too when the cache is Redis.

Holders in one process stand for sweepers anywhere; they share a fake clock, and a "round"
moves it on and lets each holder refresh, so that nothing here waits on wall-clock time but
the multi-process test at the end."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import time

import pytest

from config.shared_redis import REDIS_SCHEMES
from reputation.blocklists.holders import DatabaseBackend, RedisBackend, Unavailable
from reputation.blocklists.shares import PERIOD, TTL, WAIT, Grant, ZoneShares, shares_for
from tests.reputation.blocklists.conftest import BACKENDS, session_redis
from tests.support import REPO, free_port

pytestmark = pytest.mark.integration
LIMITS = (20, 50.0)


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Switch:
    """A real backend that the test can cut off (every call fails) and that counts calls."""

    def __init__(self, backend):
        self.backend, self.cut, self.calls = backend, False, 0

    def __getattr__(self, name):
        method = getattr(self.backend, name)

        def call(*args, **kwargs):
            if self.cut and name != "close":
                raise Unavailable("cut off by the test")
            self.calls += 1
            return method(*args, **kwargs)

        return call


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def holders(backend, clock, zone):
    """A factory of holders of `zone` on the test's backend and clock, joined in the order
    made (without waiting); all of them leave at the end of the test."""
    made: list[ZoneShares] = []

    def make(count: int = 1, limits=LIMITS, **options) -> list[ZoneShares]:
        new = []
        settings = {"backend": backend, "clock": clock, **options}
        for _ in range(count):
            shares = ZoneShares({zone: limits}, holder=f"h{len(made)}", **settings)
            shares.join(wait=False)
            made.append(shares)
            new.append(shares)
        return new

    yield make
    for shares in made:
        shares.close()


def rounds(holders: list[ZoneShares], clock: FakeClock, count: int = 3, step: float = PERIOD):
    """`count` times: move the clock on by `step`, then each holder asks for its grant."""
    for _ in range(count):
        clock.advance(step)
        for shares in holders:
            shares.current()


def grants(holders: list[ZoneShares], zone: str) -> list[Grant]:
    return [shares.current()[zone] for shares in holders]


def in_flight(holders: list[ZoneShares], zone: str) -> list[float]:
    return [grant.in_flight for grant in grants(holders, zone)]


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shares_add_up_to_exactly_the_limit_the_odd_queries_to_the_first_joined(
    holders, clock, zone, count
):
    group = holders(count)
    rounds(group, clock)
    expected = [20 // count + (i < 20 % count) for i in range(count)]
    assert in_flight(group, zone) == expected
    assert sum(expected) == 20
    assert [g.qps for g in grants(group, zone)] == pytest.approx([50.0 / count] * count)


def test_a_limit_smaller_than_the_holders_leaves_the_last_joined_waiting_their_turn(
    holders, clock, zone
):
    group = holders(3, limits=(2, 6.0))
    rounds(group, clock)
    assert in_flight(group, zone) == [1, 1, 0]
    group[0].done(zone)
    rounds(group[1:], clock, 1)
    assert in_flight(group[1:], zone) == [1, 1]


def test_a_holder_that_leaves_gives_its_share_to_the_others_at_their_next_refresh(
    holders, clock, zone
):
    group = holders(3)
    rounds(group, clock)
    assert in_flight(group, zone) == [7, 7, 6]
    group[1].done(zone)
    assert zone not in group[1].current()
    assert in_flight([group[0], group[2]], zone) == [7, 6]  # no refresh due yet
    rounds([group[0], group[2]], clock, 1)
    assert in_flight([group[0], group[2]], zone) == [10, 10]


def test_a_holder_that_stops_beating_expires_and_its_share_goes_to_the_others(
    holders, clock, zone, backend
):
    group = holders(3)
    rounds(group, clock)
    survivors, dead = group[:2], group[2]
    rounds(survivors, clock, count=int(TTL / PERIOD) - 1)
    assert in_flight(survivors, zone) == [7, 7]  # not dead yet
    rounds(survivors, clock, count=2)
    assert in_flight(survivors, zone) == [10, 10]
    assert [row.holder for row in backend.refresh("h0", [zone], 99)[zone]] == ["h0", "h1"]

    # Back after all: it was removed, so it joins again at the end and waits like a newcomer.
    assert dead.current()[zone] == WAIT
    rounds(group, clock)
    assert in_flight(group, zone) == [7, 7, 6]


def test_a_newcomer_sends_nothing_until_every_holder_has_seen_it_and_drained(holders, clock, zone):
    first = holders(2)
    rounds(first, clock)
    assert in_flight(first, zone) == [10, 10]
    (newcomer,) = holders(1)
    everyone = [*first, newcomer]
    waited = 0
    while newcomer.current()[zone] == WAIT:
        waited += 1
        assert waited < 50
        assert sum(in_flight(everyone, zone)) <= 20
        clock.advance(PERIOD / 5)
        for shares in first:
            shares.current()
    # By the time it may send, the others have cut their shares, and half a second (the
    # drain) has passed since the last of them did.
    assert in_flight(everyone, zone) == [7, 7, 6]
    assert waited >= (PERIOD + newcomer.drain) / (PERIOD / 5) - 1


def test_a_holder_alone_starts_at_once(backend, clock, zone):
    def no_sleep(seconds: float) -> None:
        raise AssertionError(f"join() waited {seconds} s")

    with ZoneShares({zone: LIMITS}, backend, clock=clock, sleep=no_sleep) as shares:
        assert shares.current()[zone] == Grant(20, 50.0)


def test_joining_waits_for_the_others_then_returns(backend, zone):
    """join() itself, on the real clock: it returns once the holder may send."""
    with ZoneShares({zone: LIMITS}, backend, period=0.05, drain=0.05) as first:
        second = ZoneShares({zone: LIMITS}, backend, period=0.05, drain=0.05)

        def sleep(seconds: float) -> None:  # the first sweeper keeps working meanwhile
            time.sleep(seconds)
            first.current()

        second.sleep = sleep
        second.join()
        first.current()
        assert [first.current()[zone].in_flight, second.current()[zone].in_flight] == [10, 10]
        second.close()


def test_qps_alone_is_split_and_an_unlimited_in_flight_stays_unlimited(holders, clock, zone):
    group = holders(3, limits=(0, 30.0))
    rounds(group, clock)
    assert grants(group, zone) == [Grant(math.inf, 10.0)] * 3


def test_a_zone_without_limits_is_not_shared_at_all(clock, zone):
    backend = Switch(object())  # any call would fail
    shares = ZoneShares({zone: (0, 0.0)}, backend, clock=clock)
    shares.join()
    assert shares.current() == {zone: Grant(math.inf, math.inf)}
    shares.close()
    assert backend.calls == 0


def test_the_smallest_limit_any_holder_knows_applies(holders, clock, zone):
    group = holders(1, limits=(20, 50.0)) + holders(1, limits=(10, 40.0))
    rounds(group, clock)
    assert grants(group, zone) == [Grant(5, 20.0), Grant(5, 20.0)]


def test_current_asks_the_backend_only_when_a_refresh_is_due(backend, clock, zone):
    counted = Switch(backend)
    shares = ZoneShares({zone: LIMITS}, counted, clock=clock)
    shares.join()
    calls = counted.calls
    for _ in range(100):
        shares.current()
        clock.advance(PERIOD / 200)
    assert counted.calls == calls
    clock.advance(PERIOD)
    shares.current()
    assert counted.calls == calls + 1  # one heartbeat-and-read
    shares.close()


def test_a_holder_cut_off_keeps_to_its_share_among_the_holders_it_last_saw(
    holders, backend, clock, zone, caplog
):
    cut = Switch(backend)
    (first,) = holders(1, backend=cut)
    others = holders(2)
    rounds([first, *others], clock)
    cut.cut = True
    with caplog.at_level(logging.WARNING, logger="reputation.blocklists.shares"):
        rounds([first, *others], clock, count=int(TTL / PERIOD) + 2)
    assert first.current()[zone] == Grant(20 // 3, 50.0 / 3)  # never unlimited
    assert in_flight(others, zone) == [10, 10]  # they removed it
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings

    # The backend answers again: the holder finds itself removed, waits, then shares again.
    cut.cut = False
    rounds([first, *others], clock, count=int(first.retry / PERIOD) + 5)
    assert in_flight([*others, first], zone) == [7, 7, 6]


def test_an_unreachable_redis_gives_a_bounded_share_and_one_warning(clock, zone, caplog):
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with caplog.at_level(logging.WARNING, logger="reputation.blocklists.shares"):
        shares = ZoneShares({zone: LIMITS, "free.test": (0, 0.0)}, backend, clock=clock)
        shares.join()
        for _ in range(3):
            clock.advance(shares.retry)
            assert shares.current() == {zone: Grant(10, 25.0), "free.test": Grant()}
        shares.close()
    backend.close()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_an_unreachable_database_gives_a_bounded_share(db, clock, zone, tmp_path):
    from django.db import connection

    database = dict(connection.settings_dict)
    if connection.vendor == "sqlite":
        database["NAME"] = str(tmp_path / "missing" / "poolwarden.sqlite3")
    else:
        database.update(HOST="127.0.0.1", PORT=free_port())
    with ZoneShares({zone: (1, 3.0)}, DatabaseBackend(database), clock=clock) as shares:
        assert shares.current() == {zone: Grant(1, 1.5)}  # the sweep goes on


def test_leaving_everything_leaves_no_row_behind(holders, backend, clock, zone):
    group = holders(3)
    rounds(group, clock)
    for shares in group:
        shares.close()
    assert backend.refresh("nobody", [zone], 1) == {zone: []}


def test_the_settings_choose_redis_when_the_cache_is_redis_and_both_are_tested_then():
    redis_session = os.environ.get("CACHE_URL", "").startswith(REDIS_SCHEMES)
    shares = shares_for({"zen.test": LIMITS})
    assert type(shares.backend) is (RedisBackend if redis_session else DatabaseBackend)
    tested = ["database", "redis"] if redis_session else ["database"]
    assert tested == BACKENDS
    shares.close()


# Three sweepers in three processes: each joins two zones through shares_for() (Redis in the
# PostgreSQL + Redis run, the database in the SQLite one), staggered, and simulates queries
# inside its grants: on one zone only the queries in flight are limited, on the other only
# the rate. A query is in flight from its send to send + SERVICE; sends are paced at most one
# every 1/qps seconds.
SENDERS = 3
IN_FLIGHT, QPS = 4, 60.0
SERVICE = 0.08  # each query's answer time; under the drain, as the guarantee requires
# Any one-second window may hold up to 2 sends per process above the rate: a pacer can put
# one send on each edge of a window, and send once early when its rate has just dropped.
QPS_SLACK = 2 * SENDERS


@pytest.fixture
def sender_env(request) -> dict[str, str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    if session_redis() is None:  # the database backend: a file the processes share
        database = request.getfixturevalue("shared_database")
        env["DATABASE_URL"] = f"sqlite:///{database['NAME']}"
    return env


def test_three_processes_never_exceed_the_limits_together(sender_env, zone, tmp_path):
    counted, paced = f"inflight.{zone}", f"rate.{zone}"
    plan = {"limits": {counted: (IN_FLIGHT, 0.0), paced: (0, QPS)}, "service": SERVICE}
    senders = [
        start_sender({**plan, "start": 0.3 * k, "stop": 2.4 - 0.3 * k}, sender_env, tmp_path, k)
        for k in range(SENDERS)
    ]
    for sender in senders:
        assert sender.stdout.readline().strip() == "ready", read_errors(tmp_path)
    t0 = time.monotonic() + 0.2
    for sender in senders:
        sender.stdin.write(f"{t0}\n")
        sender.stdin.flush()
    results = []
    for sender in senders:
        out, _ = sender.communicate(timeout=60)
        assert sender.returncode == 0, read_errors(tmp_path)
        results.append(json.loads(out))

    for name in (counted, paced):  # they did overlap, and did work
        assert max(r["most_holders"][name] for r in results) == SENDERS, results
        assert sum(len(r["sends"][name]) for r in results) >= 30, results
    in_flight_sends = sorted(t for r in results for t in r["sends"][counted])
    assert most_in_flight(in_flight_sends) == IN_FLIGHT  # reached, never passed
    assert busiest_second(sorted(t for r in results for t in r["sends"][paced])) <= QPS + QPS_SLACK


def start_sender(plan: dict, env: dict[str, str], folder, k: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reputation.blocklists.shares_sender", json.dumps(plan)],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=(folder / f"sender{k}.err").open("w"),
        text=True,
    )


def read_errors(folder) -> str:
    return "\n".join(path.read_text() for path in sorted(folder.glob("sender*.err")))


def most_in_flight(sends: list[float]) -> int:
    """The most queries in flight at once, each from its send to send + SERVICE."""
    events = sorted([(t, 1) for t in sends] + [(t + SERVICE, -1) for t in sends])
    running = most = 0
    for _, change in events:  # at a tie an answer (-1) sorts before a send
        running += change
        most = max(most, running)
    return most


def busiest_second(sends: list[float]) -> int:
    """The most sends in any one-second window."""
    most, first = 0, 0
    for last, t in enumerate(sends):
        while sends[first] <= t - 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most
