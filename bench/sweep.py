"""Blocklist sweep benchmark: 1,024 addresses (a /22) x 20 lists = 20,480 look-ups against a
local rbldnsd on loopback, by Poolwarden's sweeper, by pydnsbl (the Python peer) and by
dnsperf (the C limit). Each run is checked to find the same listings.

    .venv/bin/python bench/sweep.py [--lists 20] [--loss 0.3]

Needs rbldnsd and dnsperf (Debian packages) and pydnsbl (pip install '.[bench]'). Nothing
leaves the host: every query goes to 127.0.0.1. Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reputation.blocklists import dnsbl
from reputation.blocklists.sweep import sweep
from reputation.blocklists.sweeper import UDPSweeper
from tests.rbldnsd_server import HOST, proxy, serve

NETWORK = ipaddress.ip_network("198.18.0.0/22")  # RFC 2544 benchmarking range
LISTED_FRACTION = 0.02


def make_zones(folder: Path, count: int, seed: int = 7) -> tuple[list[str], set[tuple[str, str]]]:
    """Zone files bench0.test ... with ~2 % of the /22 listed each; returns the rbldnsd zone
    arguments and the expected (address, zone) listings."""
    rng = random.Random(seed)
    addresses = [str(ip) for ip in NETWORK]
    args, expected = [], set()
    for n in range(count):
        zone = f"bench{n}.test"
        listed = rng.sample(addresses, int(len(addresses) * LISTED_FRACTION))
        lines = ["$TTL 300", f":127.0.0.2:Listed on {zone}, see http://{zone}/?$", "127.0.0.2"]
        lines += listed
        (folder / f"{zone}.zone").write_text("\n".join(lines) + "\n")
        args.append(f"{zone}:ip4set:{zone}.zone")
        expected |= {(a, zone) for a in listed}
    return args, expected


def ours(port: int, zones: list[str], window: int = 100) -> tuple[float, set, int, int]:
    """Seconds, listings found, unknown answers and queries sent, with runs.py's defaults
    (POOLWARDEN_DNS_TIMEOUT = 3: 1 s per try, 3 attempts)."""
    specs = [dnsbl.ListSpec(zone, codes={"127.0.0.2": "listed"}) for zone in zones]
    resolver = UDPSweeper([(HOST, port)], timeout=1.0, attempts=3, window=window)
    started = time.perf_counter()
    outcome = sweep([str(ip) for ip in NETWORK], specs, resolver)
    seconds = time.perf_counter() - started
    found = {(r.target, r.zone) for r in outcome.results if r.verdict.status == dnsbl.LISTED}
    unknown = sum(1 for r in outcome.results if r.verdict.status == dnsbl.UNKNOWN)
    return seconds, found, unknown, resolver.sent


def peer(port: int, zones: list[str]) -> tuple[float, set]:
    import aiodns
    import pydnsbl
    from pydnsbl.providers import Provider

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    checker = pydnsbl.DNSBLIpChecker(
        providers=[Provider(zone) for zone in zones], timeout=1, tries=4, concurrency=100
    )
    # pydnsbl takes no resolver port: give it a c-ares resolver that asks rbldnsd's.
    checker._resolver = aiodns.DNSResolver(
        nameservers=[HOST], timeout=1, tries=4, udp_port=port, tcp_port=port, loop=loop
    )
    started = time.perf_counter()
    results = checker.bulk_check([str(ip) for ip in NETWORK])
    seconds = time.perf_counter() - started
    found = set()
    for result in results:
        found |= {(result.addr, zone) for zone in result.detected_by}
    return seconds, found


def dnsperf(port: int, zones: list[str], folder: Path) -> tuple[float, int, int]:
    queries = folder / "queries.txt"
    lines = [f"{dnsbl.reversed_name(str(ip))}.{zone} A" for zone in zones for ip in NETWORK]
    queries.write_text("\n".join(lines) + "\n")
    done = subprocess.run(
        ["dnsperf", "-s", HOST, "-p", str(port), "-d", str(queries), "-n", "1", "-q", "100"],
        capture_output=True,
        text=True,
        check=True,
    )
    elapsed = float(re.search(r"Run time \(s\):\s+([\d.]+)", done.stdout).group(1))
    noerror = int(re.search(r"NOERROR (\d+)", done.stdout).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", done.stdout).group(1))
    return elapsed, noerror, lost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lists", type=int, default=20)
    parser.add_argument("--loss", type=float, default=0.3, help="reply loss for the lossy run")
    options = parser.parse_args()
    for tool in ("/usr/sbin/rbldnsd", "dnsperf"):
        if not shutil.which(tool):
            sys.exit(f"bench/sweep.py: {tool} not found (apt-get install rbldnsd dnsperf)")
    source = Path(tempfile.mkdtemp(prefix="pw-bench-zones-"))
    try:
        args, expected = make_zones(source, options.lists)
        zones = [a.split(":", 1)[0] for a in args]
        with serve(source, args, probe="2.0.0.127.bench0.test") as server:
            report(server.port, zones, expected, source, options.loss)
    finally:
        shutil.rmtree(source, ignore_errors=True)


def report(port: int, zones: list[str], expected: set, folder: Path, loss: float) -> None:
    total = len(zones) * NETWORK.num_addresses
    print(
        f"{NETWORK.num_addresses} addresses x {len(zones)} lists = {total} look-ups, "
        f"{len(expected)} listings expected, rbldnsd on {HOST}:{port}"
    )
    ours(port, zones)  # warm-up (imports, rbldnsd caches)
    runs = [ours(port, zones) for _ in range(5)]
    best = min(runs, key=lambda r: r[0])
    median = sorted(r[0] for r in runs)[2]
    line("poolwarden sweeper (best of 5)", best[0], best[1] == expected and not best[2])
    line("poolwarden sweeper (median of 5)", median, all(r[1] == expected for r in runs))
    peer_seconds, found = peer(port, zones)
    line("pydnsbl", peer_seconds, found == expected)
    perf, noerror, lost = dnsperf(port, zones, folder)
    line("dnsperf (A queries only)", perf, noerror == len(expected) and not lost)
    for fraction in (0.0, loss):  # through a Python proxy on loopback that drops replies
        with proxy(port, loss=fraction) as lossy:
            seconds, found, unknown, sent = ours(lossy.port, zones)
        note = f"({lossy.dropped} replies dropped, {sent} queries, {unknown} unknown)"
        right = found == expected and not unknown
        line(f"sweeper via proxy, {fraction:.0%} lost", seconds, right, note)
    with proxy(port, loss=loss) as lossy:
        peer_lossy, found = peer(lossy.port, zones)
    line(f"pydnsbl via proxy, {loss:.0%} lost", peer_lossy, found == expected)
    print(
        f"sweeper is {peer_seconds / median:.1f}x faster than pydnsbl and "
        f"{median / perf:.2f}x the time of dnsperf (median run)"
    )


def line(name: str, seconds: float, right: bool, note: str = "") -> None:
    """One figure, with the load average (a shared machine's figures need it)."""
    verdict = "same listings" if right else "WRONG RESULT"
    load = "load {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    print(f"{name:34} {seconds:7.3f} s  {verdict} {note} [{load}]")


if __name__ == "__main__":
    main()
