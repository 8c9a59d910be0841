"""Sender limits' cost, printed beside the issue's targets.

    .venv/bin/python bench/limits.py [--redis redis://127.0.0.1:6379/8] [--seconds 5]

(a) one limit check on Redis (the Lua script: hold, four windows, add), p50/p99 over many
    senders, against the target of < 1 ms p99;
(b) in-process decisions/s (classify + limits + counting) with limits off and on (Redis),
    against the target of keeping >= 90 %. The in-process figure is the hardest case: over
    HTTP or policyd the request's own cost dwarfs the check, so the ratio there is higher.
Keys go under a prefix of their own and are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()

from config.shared_redis import SharedRedis  # noqa: E402
from routing import classify  # noqa: E402
from routing.counters import Counters  # noqa: E402
from routing.limits.checker import LimitChecker  # noqa: E402
from routing.limits.rules import LimitPolicy, LimitRule  # noqa: E402
from routing.limits.store import RedisStore  # noqa: E402
from routing.message import build_facts  # noqa: E402
from routing.policy import PolicySnapshot, PoolSnapshot  # noqa: E402

POOLS = {
    "normal": PoolSnapshot("normal", "normal", ("192.0.2.1", "192.0.2.2")),
    "high-risk": PoolSnapshot("high-risk", "high-risk", ("198.51.100.1",)),
}
RULE = LimitRule(
    "*", external_per_hour=10**6, internal_per_hour=10**6, per_day=10**6, high_risk_per_hour=10**6
)


def facts(i: int):
    return build_facts(
        mail_from=f"user{i % 1000}@customer{i % 50}.test",
        rcpt_to=[f"r{i}@example.org"],
        sasl_login=f"user{i % 1000}",
    )


def check_latency(store: RedisStore, n: int) -> list[float]:
    limits = {
        name: RULE.maximum(name)
        for name in ("external_per_hour", "internal_per_hour", "per_day", "high_risk_per_hour")
    }
    adds = {"external_per_hour": 1, "per_day": 1}
    times = []
    for i in range(n):
        started = time.perf_counter()
        store.check(f"user{i % 1000}", limits, adds, "block", datetime.now(UTC))
        times.append(time.perf_counter() - started)
    return times


def decisions_per_second(policy: PolicySnapshot, checker: LimitChecker, seconds: float) -> float:
    counters, messages = Counters(), [facts(i) for i in range(5000)]
    done, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for message in messages[:500]:
            decision = checker.apply(message, classify.decide(message, policy, None), policy)
            counters.record(message, decision)
        done += 500
        messages = messages[500:] + messages[:500]
    return done / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    shared = SharedRedis(args.redis, f"pw-bench-limits-{uuid.uuid4().hex[:8]}")
    store = RedisStore(shared)
    try:
        times = sorted(check_latency(store, 20_000))
        p50, p99 = statistics.median(times), times[int(len(times) * 0.99)]
        print(
            f"(a) limit check on Redis: p50 {p50 * 1000:.3f} ms, p99 {p99 * 1000:.3f} ms "
            f"(target: p99 < 1 ms) {'OK' if p99 < 0.001 else 'MISSED'}"
        )
        off = PolicySnapshot(pools=POOLS)
        on = PolicySnapshot(pools=POOLS, limits=LimitPolicy(rules=(RULE,)))
        without = decisions_per_second(off, LimitChecker(store), args.seconds)
        with_limits = decisions_per_second(on, LimitChecker(store), args.seconds)
        ratio = with_limits / without
        print(
            f"(b) in-process decisions/s: {without:,.0f} without limits, {with_limits:,.0f} "
            f"with limits on Redis ({ratio:.0%}; target >= 90 % over API/policyd)"
        )
    finally:
        keys = list(store.client.scan_iter(match=shared.key("*"), count=1000))
        if keys:
            store.client.delete(*keys)
        store.close()


if __name__ == "__main__":
    main()
