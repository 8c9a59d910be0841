"""Mail keeps moving while PostgreSQL or Redis is cut off or hangs.

One scenario, all adapters at once: steady traffic into the HTTP API (gunicorn), the policy
service and the milter (under a real Postfix), then the database cut for 20 s, back, hung for
20 s, back, and Redis cut. Every request must get a decision from the last snapshot, fast;
after recovery every decision is counted exactly once, no process was restarted, and the
Celery worker runs a task that needs the database again. No API decision may wait on the
database: the slowest one of every phase stays far below the shortest database wait (the 5 s
connect timeout; before the snapshot, a hang held every request ~20 s). The latency target
of issue 14 (p99 < 50 ms) is a speed figure: bench/outage.py measures it; here the p99 is
printed (on a shared CI box scheduling alone reaches 200 ms).
"""

from __future__ import annotations

import email
import time
import urllib.request

import pytest

from tests.reliability.traffic import ApiLoad, MailLoad, PolicydLoad, between, summary

pytestmark = pytest.mark.integration

# (phase, which proxy, its mode, seconds)
PHASES = (
    ("steady", "database", "pass", 3),
    ("database cut", "database", "cut", 20),
    ("database back", "database", "pass", 3),
    ("database hang", "database", "hang", 20),
    ("database back", "database", "pass", 3),
    ("redis cut", "redis", "cut", 5),
    ("redis back", "redis", "pass", 3),
)
WAIT_LIMIT_MS = 2500  # half the connect timeout, the shortest wait on the database
DETECT_SPIKES = (
    "from reputation.tasks import detect_spikes; print(detect_spikes.delay().get(timeout=60))"
)


def run_phases(proxies: dict, healthz: str) -> tuple[list[tuple[str, float, float]], dict]:
    """Step through PHASES; returns (phase, start, end) of each and /healthz midway in each."""
    timeline, health = [], {}
    for name, which, mode, seconds in PHASES:
        proxies[which].mode = mode
        start = time.monotonic()
        time.sleep(seconds / 2)
        health[name] = health_text(healthz)
        time.sleep(seconds / 2)
        timeline.append((name, start, time.monotonic()))
    return timeline, health


def health_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode().strip()


def report(loads: dict, timeline) -> dict[str, dict]:
    """Print and return each adapter's summary per phase."""
    table = {}
    print(f"\n{'phase':<15} {'adapter':<8} {'n':>6} {'failed':>6} {'p50 ms':>7} {'p99 ms':>7}")
    for name, start, end in timeline:
        for adapter, load in loads.items():
            row = summary(between(load.samples, start, end))
            table[(name, adapter)] = row
            print(
                f"{name:<15} {adapter:<8} {row['n']:>6} {row['failed']:>6} "
                f"{row['p50']:>7.1f} {row['p99']:>7.1f}"
            )
    return table


def late_in(samples, phase: str, timeline) -> list:
    """The samples of the second half of `phase`, when the outage has been noticed."""
    _, start, end = next(t for t in timeline if t[0] == phase)
    return between(samples, (start + end) / 2, end)


def wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.5)
    return predicate()


def delivered_pools(sink, ids: list[str]) -> dict[str, str]:
    """X-Test-Id -> X-Delivery-Pool of the messages the sink received."""
    wanted = set(ids)
    pools = {}
    for delivery in list(sink.deliveries):
        msg = email.message_from_bytes(delivery.data)
        if msg["X-Test-Id"] in wanted:
            pools[msg["X-Test-Id"]] = msg["X-Delivery-Pool"] or ""
    return pools


def test_every_message_gets_a_decision_through_database_and_redis_outages(
    stack, db_proxy, redis_proxy, milter_postfix, sink, capsys
):
    api = stack.start_api()
    policyd = stack.start_policyd()
    worker = stack.start_worker()
    assert health_text(f"{api}/healthz") == "ok"
    loads = {
        "api": ApiLoad(api, stack.token, rate=40),
        "api2": ApiLoad(api, stack.token, rate=40),
        "policyd": PolicydLoad(policyd, rate=40),
        "milter": MailLoad(milter_postfix.smtpd_port, rate=4),
    }
    for load in loads.values():
        load.start()
    time.sleep(1)  # every gunicorn worker has loaded its snapshot
    pids = {name: stack.pids(name) for name in ("api", "policyd", "milter", "worker")}
    proxies = {"database": db_proxy, "redis": redis_proxy}
    try:
        timeline, health = run_phases(proxies, f"{api}/healthz")
    finally:
        for proxy in proxies.values():
            proxy.mode = "pass"
        for load in loads.values():
            load.stop()

    with capsys.disabled():
        table = report(loads, timeline)
        print("healthz:", health)
    failures = [s for load in loads.values() for s in load.samples if not s.ok]
    assert not failures, failures[:5]
    for (phase, adapter), row in table.items():
        assert row["n"] > 0, (phase, adapter)
        if adapter.startswith("api"):
            assert row["max"] < WAIT_LIMIT_MS, (phase, adapter, row)
    for outage in ("database cut", "database hang"):
        assert health[outage].startswith("degraded"), health
        assert all("problems" in s.detail for s in late_in(loads["api"].samples, outage, timeline))
    assert health["redis back"] == "ok", health

    mail = loads["milter"]
    assert wait_until(lambda: len(delivered_pools(sink, mail.ids)) == len(mail.ids), 60)
    assert all(delivered_pools(sink, mail.ids).values())  # every one has X-Delivery-Pool
    maillog = milter_postfix.log()
    for trouble in ("status=deferred", "warning: milter", " 451 "):
        assert trouble not in maillog, maillog[-3000:]

    decided = sum(len(load.samples) for load in loads.values())
    assert wait_until(lambda: stack.routed() == decided, 30), (stack.routed(), decided)
    assert {name: stack.pids(name) for name in pids} == pids  # nothing was restarted
    assert worker.poll() is None
    assert stack.manage("shell", "-c", DETECT_SPIKES).strip()  # the worker reaches it again
