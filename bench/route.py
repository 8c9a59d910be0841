"""Routing engine throughput, printed beside the issue's targets.

    .venv/bin/python bench/route.py            # all three
    .venv/bin/python bench/route.py --only a   # one part (a, b or c)

(a) classify from facts with a warm sender-domain cache;
(b) parse + classify of a typical 4 KB message and of a 100 KB one;
(c) POST /api/v1/route on gunicorn (the production server, 2 processes) under concurrent
    keep-alive load from a separate process (wrk, Debian package `wrk`), with sender domains
    resolved by a real unbound on loopback (Debian package `unbound`).
Nothing leaves the machine: DNS goes to unbound on 127.0.0.1 serving `.test` zones.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="pw-bench-"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["POOLWARDEN_VAR_DIR"] = str(WORK / "var")
for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()

from routing.counters import Counters  # noqa: E402
from routing.dns import DomainChecker, DomainLookup, make_resolver  # noqa: E402
from routing.engine import Engine  # noqa: E402
from routing.facts import MessageFacts  # noqa: E402
from routing.policy import PolicySnapshot, PoolSnapshot, SnapshotCache  # noqa: E402

TARGETS = {"a": 100_000, "b4": 5_000, "b100": None, "c": 1_000}
DOMAINS = [f"customer{i}.example" for i in range(5_000)]


def offline_engine() -> Engine:
    """An engine with a fixed policy (two /24 pools) and every benchmark domain cached."""
    normal = PoolSnapshot("normal", "normal", tuple(f"192.0.2.{i}" for i in range(1, 255)))
    risky = PoolSnapshot("high-risk", "high-risk", tuple(f"198.51.100.{i}" for i in range(1, 255)))
    policy = PolicySnapshot(
        trusted_headers=("X-Spam-Status",), pools={"normal": normal, "high-risk": risky}
    )
    checker = DomainChecker(make_resolver(["127.0.0.1:1"], timeout=0.1))
    for domain in DOMAINS:
        checker.local.set(domain, DomainLookup(domain, True, None, 3600), 3600)
    return Engine(
        checker=checker, snapshots=SnapshotCache(loader=lambda: policy), counters=Counters()
    )


def rate(func, count: int) -> float:
    func(0)  # warm up
    start = time.perf_counter()
    for i in range(count):
        func(i)
    return count / (time.perf_counter() - start)


def bench_a() -> float:
    engine = offline_engine()
    facts = [
        MessageFacts(
            mail_from=f"news@{d}", sender_domain=d, spam_score=(i % 10), source=f"sasl:c{i % 50}"
        )
        for i, d in enumerate(DOMAINS)
    ]
    for f in facts:  # warm the per-domain address choice too, as in steady state
        engine.route(f)
    return rate(lambda i: engine.route(facts[i % len(facts)]), 300_000)


def message(size: int) -> bytes:
    head = (
        b"Received: from client.example (client.example [203.0.113.9])\r\n"
        b"\tby mx.example.net (Postfix) with ESMTPSA id 4Xy; Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        b"From: Newsletter <news@customer1.example>\r\nTo: reader@example.org\r\n"
        b"Subject: Our November news\r\nDate: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
        b"Message-ID: <abc123@customer1.example>\r\nMIME-Version: 1.0\r\n"
        b"X-Spam-Status: No, score=1.3 required=5.0 tests=DKIM_SIGNED,DKIM_VALID\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
    )
    line = b"Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    return head + line * ((size - len(head)) // len(line) + 1)


def bench_b(size: int) -> float:
    engine = offline_engine()
    raw = message(size)[:size]
    return rate(lambda i: engine.route_message(raw, mail_from=f"news@{DOMAINS[i % 5000]}"), 20_000)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
local senders = {"both.test", "a-only.test", "mx-only.test", "aaaa-only.test", "neither.test"}
local n = 0
request = function()
  n = n + 1
  local body = string.format(
    '{"mail_from": "user%%d@%%s", "rcpt_to": ["r@example.org"], "spam_score": %%d}',
    n, senders[(n %% #senders) + 1], n %% 9)
  return wrk.format(nil, "/api/v1/route", nil, body)
end
"""


def bench_c(seconds: int) -> float:
    for tool in ("wrk", "/usr/sbin/unbound"):
        if not shutil.which(tool):
            sys.exit(f"bench (c) needs {tool}: apt-get install wrk unbound")
    from tests.dns_server import serve
    from tests.support import free_port, stop_group, wait_for_http

    env = dict(os.environ)
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
    token = subprocess.run(
        [*manage, "shell", "-c", "from routing import tokens; print(tokens.issue('bench')[1])"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    (WORK / "dns").mkdir()
    with serve(WORK / "dns") as dns:
        port = free_port()
        env |= {
            "POOLWARDEN_NAMESERVERS": dns.nameserver,
            "POOLWARDEN_LISTEN": f"127.0.0.1:{port}",
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": "8",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "config/gunicorn.py", "config.wsgi"],
            cwd=REPO,
            env=env,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_http(f"http://127.0.0.1:{port}/healthz", timeout=30, proc=server)
            script = WORK / "route.lua"
            script.write_text(WRK_SCRIPT % token)
            url = f"http://127.0.0.1:{port}"
            wrk = ["wrk", "-t2", "-c16", "-s", str(script), url]
            subprocess.run([*wrk, "-d2s"], capture_output=True, check=True)  # warm the caches
            out = subprocess.run(
                [*wrk, f"-d{seconds}s", "--latency"], capture_output=True, text=True, check=True
            ).stdout
        finally:
            stop_group(server)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        sys.exit(f"bench (c): {errors.group(1)} requests failed\n{out}")
    print(out.rstrip())
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def report(label: str, value: float, target: int | None) -> None:
    goal = f"{target:>10,}/s" if target else "         -  "
    verdict = "" if target is None else ("ok" if value >= target else "BELOW TARGET")
    print(f"{label:<52} {value:>12,.0f}/s   target {goal}  {verdict}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["a", "b", "c"])
    parser.add_argument("--seconds", type=int, default=10, help="length of the load in (c)")
    args = parser.parse_args()
    print(f"routing benchmark on {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    if args.only in (None, "a"):
        report("(a) classify from facts, warm cache", bench_a(), TARGETS["a"])
    if args.only in (None, "b"):
        report("(b) parse + classify, 4 KB message", bench_b(4 * 1024), TARGETS["b4"])
        report("(b) parse + classify, 100 KB message", bench_b(100 * 1024), TARGETS["b100"])
    if args.only in (None, "c"):
        value = bench_c(args.seconds)
        report("(c) HTTP API, gunicorn 2 procs, wrk 16 connections", value, TARGETS["c"])
    shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
