"""Routing through a database outage: decisions per second and p50/p99 latency of the HTTP API
(gunicorn, as config/gunicorn.py runs it) and of the policy service, in steady state, while
PostgreSQL is cut off and while it hangs, side by side.

    .venv/bin/python bench/outage.py                    # 20 s per phase, 4 API + 2 policyd clients
    .venv/bin/python bench/outage.py --seconds 10 --api-clients 2 --policyd-clients 1

Needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres): a scratch database is created and
dropped. The processes reach it through tests/tcp_proxy.py, which cuts it (connections reset,
new ones refused) or makes it hang (connections held, nothing forwarded); between phases it
passes for a few seconds. Clients send as fast as they are answered, on kept-alive
connections. The target (issue 14): no failed decision and p99 < 50 ms in every phase; the
counts in routing_routingcount must equal the decisions made once the database is back.
The load average is printed per phase: on a shared machine it says how far to trust a run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.reliability.stack import POSTGRES, Stack, postgres_answers  # noqa: E402
from tests.reliability.traffic import ApiLoad, PolicydLoad, between, summary  # noqa: E402
from tests.tcp_proxy import TcpProxy  # noqa: E402

TARGET_P99_MS = 50.0
# (phase, proxy mode, reported)
PHASES = (
    ("steady", "pass", True),
    ("database cut", "cut", True),
    ("back", "pass", False),
    ("database hang", "hang", True),
    ("back", "pass", False),
)
RECOVERY_SECONDS = 5


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run(stack: Stack, proxy: TcpProxy, options) -> list[tuple[str, dict, str]]:
    """Drive the phases under load; (phase, adapter -> summary, load average) per phase."""
    api = stack.start_api()
    policyd = stack.start_policyd()
    loads = {
        **{f"api{i}": ApiLoad(api, stack.token) for i in range(options.api_clients)},
        **{f"policyd{i}": PolicydLoad(policyd) for i in range(options.policyd_clients)},
    }
    for client in loads.values():
        client.start()
    time.sleep(2)  # every gunicorn worker has loaded its snapshot
    results = []
    try:
        for name, mode, reported in PHASES:
            proxy.mode = mode
            start = time.monotonic()
            time.sleep(options.seconds if reported else RECOVERY_SECONDS)
            if reported:
                results.append((name, by_adapter(loads, start, time.monotonic()), load()))
    finally:
        proxy.mode = "pass"
        for client in loads.values():
            client.stop()
    decided = sum(len(client.samples) for client in loads.values())
    counted = wait_for_count(stack, decided)
    print(f"counts after recovery: {counted:,} counted for {decided:,} decisions")
    return results


def by_adapter(loads: dict, start: float, end: float) -> dict[str, dict]:
    merged: dict[str, list] = {}
    for name, client in loads.items():
        merged.setdefault(name.rstrip("0123456789"), []).extend(between(client.samples, start, end))
    return {adapter: summary(samples) for adapter, samples in merged.items()}


def wait_for_count(stack: Stack, decided: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while (counted := stack.routed()) != decided and time.monotonic() < deadline:
        time.sleep(1)
    return counted


def report(results) -> None:
    print(f"\n{'phase':<14} {'adapter':<8} {'decisions/s':>11} {'failed':>6} {'p50 ms':>7}", end="")
    print(f" {'p99 ms':>7}  target p99 < {TARGET_P99_MS:.0f} ms   load average")
    for phase, adapters, loadavg in results:
        for adapter, row in adapters.items():
            verdict = "ok" if row["p99"] < TARGET_P99_MS and not row["failed"] else "MISSED"
            print(
                f"{phase:<14} {adapter:<8} {row['rate']:>11,.0f} {row['failed']:>6} "
                f"{row['p50']:>7.1f} {row['p99']:>7.1f}  {verdict:<22} {loadavg}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20, help="length of each phase")
    parser.add_argument("--api-clients", type=int, default=4)
    parser.add_argument("--policyd-clients", type=int, default=2)
    options = parser.parse_args()
    if not postgres_answers():
        sys.exit("bench needs PostgreSQL on 127.0.0.1:5432 (trust, user postgres)")
    from tests.dns_server import serve

    work = Path(tempfile.mkdtemp(prefix="pw-bench-outage-"))
    proxy = TcpProxy(POSTGRES).start()
    try:
        with serve(work) as dns:
            stack = Stack(
                database=f"pw_bench_outage_{os.getpid()}",
                db_proxy=proxy.address,
                nameserver=dns.nameserver,
                POOLWARDEN_POLICY_REFRESH="2",
                POOLWARDEN_FLUSH_INTERVAL="2",
            )
            try:
                stack.create()
                print(f"load average at the start: {load()} ({os.cpu_count()} CPUs)")
                results = run(stack, proxy, options)
            finally:
                stack.cleanup()
        report(results)
    finally:
        proxy.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
