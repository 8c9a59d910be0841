"""Routing while the database cannot be reached: the last snapshot keeps routing and says so;
a process that never loaded one answers 503 / 451 with the reason, never a wrong pool."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from routing import engine as engine_module
from routing import tokens
from routing.counters import Counters
from routing.dns import DomainChecker, DomainLookup, make_resolver
from routing.engine import Engine, health
from routing.mta import milter_protocol as mp
from routing.mta.milter import PoolFilter
from routing.mta.policyd import answer
from routing.policy import RELOAD_STALLED, PolicySnapshot, SnapshotCache
from tests.routing.mta.test_milter import POLICY, eom_macros, offline_engine

REQUEST = {"request": "smtpd_access_policy", "sender": "a@both.test", "recipient": "r@x.test"}


def down() -> PolicySnapshot:
    raise ConnectionError('connection to server at "127.0.0.1", port 5432 failed')


def engine_never_loaded() -> Engine:
    engine = offline_engine()
    engine.snapshots = SnapshotCache(down)
    return engine


def test_policyd_defers_with_the_reason_when_no_snapshot_was_ever_loaded():
    reply = answer(REQUEST, engine_never_loaded())
    assert reply.startswith(b"action=451 4.3.0 Poolwarden: routing policy unavailable: ")
    assert b"port 5432 failed" in reply


def test_the_milter_defers_with_the_reason_when_no_snapshot_was_ever_loaded():
    milter = PoolFilter(engine_never_loaded())
    milter.header("From", b"a@both.test")
    assert milter.end_of_message_now(eom_macros("a@both.test")) is None  # needs the thread
    (reply,) = milter.end_of_message(eom_macros("a@both.test"))
    assert reply[4:5] == mp.REPLYCODE
    assert b"451 4.3.0 Poolwarden: routing policy unavailable" in reply


def test_a_stale_snapshot_routes_by_its_pools_with_a_problem():
    engine = offline_engine()
    engine.snapshots.loader = down
    engine.snapshots.invalidate()
    _, decision = engine.route_envelope(mail_from="a@both.test", rcpt_to=["r@x.test"])
    assert decision.source_ip in POLICY.pools["normal"].addresses
    assert any("database unreachable" in problem for problem in decision.problems)
    assert health(engine)[0] == "degraded"


def test_health_says_ok_degraded_or_unavailable():
    assert health(offline_engine()) == ("ok", "")
    engine = engine_never_loaded()
    with pytest.raises(Exception, match="unavailable"):
        engine.snapshots.get()
    state, detail = health(engine)
    assert state == "unavailable" and "port 5432 failed" in detail


def test_a_reload_that_hangs_shows_in_decisions_and_health_within_seconds():
    """A hung link fails no query for a long time (tcp_user_timeout, or never when a proxy
    holds it): the stalled reload itself says that the policy in use is getting old."""
    clock, release = [0.0], threading.Event()
    engine = offline_engine()

    def hanging() -> PolicySnapshot:
        release.wait(10)
        return PolicySnapshot(spam_threshold=7.0)

    engine.snapshots = SnapshotCache(lambda: POLICY, refresh=0.05, clock=lambda: clock[0]).start()
    try:
        engine.snapshots.loader = hanging
        wait(lambda: engine.snapshots.reloading_since is not None)
        assert engine.snapshots.get() is POLICY and health(engine)[0] == "ok"
        clock[0] += RELOAD_STALLED + 1
        _, decision = engine.route_envelope(mail_from="a@both.test", rcpt_to=["r@x.test"])
        assert decision.source_ip in POLICY.pools["normal"].addresses
        assert any("database not answering" in problem for problem in decision.problems)
        assert engine.snapshots.fresh() is engine.snapshots.get()  # one copy per stall
        assert health(engine)[0] == "degraded"
        release.set()
        wait(lambda: engine.snapshots.get().spam_threshold == 7.0)
        assert engine.snapshots.get().problems == () and health(engine) == ("ok", "")
    finally:
        release.set()
        engine.snapshots.stop()


def wait(condition, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def site_down(monkeypatch, settings):
    """This process's engine, built while the database is unreachable."""
    engine_module.reset_engine()
    built = Engine(
        checker=DomainChecker(make_resolver(["127.0.0.1:1"], timeout=0.1)),
        snapshots=SnapshotCache(down),
        counters=Counters(),
    )
    monkeypatch.setattr(engine_module, "_engine", built)
    yield built
    monkeypatch.setattr(engine_module, "_engine", None)


@pytest.mark.django_db
def test_the_api_answers_503_json_and_healthz_503_while_nothing_was_loaded(client, site_down):
    response = client.post(
        "/api/v1/route",
        {"mail_from": "a@both.test"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer pw_x",
    )
    assert response.status_code == 503
    assert response["Retry-After"] == "10"
    assert response.json()["error"].startswith("routing policy unavailable: connection to")
    health_response = client.get("/healthz")
    assert health_response.status_code == 503
    assert health_response.content.startswith(b"unavailable: no routing policy loaded yet")


@pytest.mark.django_db
def test_metrics_serve_the_snapshot_gauges_while_routing_on_a_stale_snapshot(client):
    engine_module.reset_engine()
    token = tokens.issue("prometheus")[1]
    engine = engine_module.get_engine(flush_in_background=False)
    engine.snapshots.get()
    engine.snapshots.loader = down
    engine.snapshots.invalidate()
    try:
        response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
        assert response.status_code == 200
        text = response.content.decode()
        assert "poolwarden_policy_reload_failing 1" in text
        assert "poolwarden_policy_snapshot_age_seconds " in text
        assert client.get("/healthz").content.startswith(b"degraded: routing on a policy")
    finally:
        engine_module.reset_engine()


class BrokenCache:
    """A shared cache whose server is gone."""

    def __init__(self) -> None:
        self.calls = 0

    def get(self, key):
        self.calls += 1
        raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    set = get


def test_a_dead_shared_cache_is_left_alone_for_a_while():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:  # a port nobody answers
        sock.bind(("127.0.0.1", 0))
        resolver = make_resolver([f"127.0.0.1:{sock.getsockname()[1]}"], timeout=0.1)
        cache = BrokenCache()
        checker = DomainChecker(resolver, shared=cache)
        checker.local.set("both.test", DomainLookup("both.test", True, True, 3600), 3600)
        assert checker.check("both.test").has_mx  # local cache: the shared one is not asked
        first = checker.check("one.test")
        second = checker.check("two.test")
    assert first.unknown and second.unknown  # no DNS answer, but an answer, not an exception
    assert cache.calls == 1  # asked once, then left alone for SHARED_RETRY seconds
