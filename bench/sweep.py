"""Blocklist sweep benchmark: the user's command end to end beside the DNS work it does, pydnsbl
(the Python peer) and dnsperf (the C limit), on SQLite and PostgreSQL, in the same run; a
30 %-loss round; and a `--scale` mode of 65,536 addresses x 40 lists through Celery workers.

    .venv/bin/python bench/sweep.py                      # default mode, median of 5 rounds
    .venv/bin/python bench/sweep.py --repeat 1 --databases sqlite     # a quick look
    .venv/bin/python bench/sweep.py --scale              # 16 pools of /20 x 40 lists, 2 workers
    .venv/bin/python bench/sweep.py --scale --pools 1 --lists 4       # a quick check of it

Needs rbldnsd and dnsperf (`apt-get install rbldnsd dnsperf`), pydnsbl (`.venv/bin/pip install
--only-binary=:all: pydnsbl`, in pyproject's `bench` extra), PostgreSQL on 127.0.0.1:5432
(trust, user postgres; `--databases sqlite` does without it) and, for `--scale`, Redis on
127.0.0.1:6379. A missing one stops the bench with one line, exit status 2. Nothing leaves the
host: every query goes to a local rbldnsd on 127.0.0.1 (or to a loopback proxy in front of
it). Every product process gets an environment built here (its own var/ folder and database,
POOLWARDEN_NAMESERVERS at the bench's rbldnsd, nothing else): the developer's var/ and
variables are never used. Databases are throw-away (SQLite files in a temporary folder;
PostgreSQL databases pw_bench_sweep_<pid>_*, dropped at the end).

Default mode: one rbldnsd serves 20 zones (`--lists`), each listing ~2 % of 198.18.0.0/22
(RFC 2544 benchmarking range; the same seeded choice every run). Per database a site is set up
by the product's own commands: `migrate`, then `config_import --prune` of a document with one
pool (the /22) and the lists, with max_qps = 0 and max_in_flight = 0 (`--limits default`: the
product's per-list defaults instead). Each round (`--repeat`, default 5) then times, one after
the other so that outside load falls on all alike:
  first sweep    `manage.py check_blocklists --json` in a cold process on a fresh copy of the
                 set-up database (no answer recorded yet): wall time from exec to exit;
  later sweep    the same on a database that has had a first sweep (the usual case);
  DNS time       the in-process module: `reputation.blocklists.sweep.sweep()` of the /22 on the
                 site's lists, with the resolver the product builds
                 (`reputation.blocklists.runs.make_resolver`: POOLWARDEN_NAMESERVERS, the
                 product's timeout and window), warm, in one process, timing the sweep only;
  pydnsbl        pydnsbl.DNSBLIpChecker.bulk_check of the /22 on the 20 zones (A queries only,
                 no self-test, no TXT, no database), with the product's timeout, attempts and
                 window, timed inside its own process;
  dnsperf        the same 20,480 A queries by dnsperf, 100 in flight (`Run time`).
Each product run must report exactly the expected listings, no error, no misbehaving list.
The summary gives each figure's median (with every run's load average), and per database:
later sweep / DNS time (target <= 2x) and pydnsbl / later sweep (target >= 3x).

Loss round (`--loss`, default 0.3; `--loss-rounds`, default 2; on the first of `--databases`
unless `--loss-databases` says otherwise): a loopback proxy in front of rbldnsd (a Python
thread of the bench) drops that fraction of replies (seeded). On a copy of the set-up
database a first sweep runs on the clean link; then `check_blocklists --json` runs through
the proxy, each time followed by pydnsbl through it. A listing opened or closed by a lossy
sweep is false (rbldnsd's answers do not change): the figure says how many, beside its time,
its unknown answers and the lists whose self-test failed (their answers are not applied).
pydnsbl's time counts however many listings it missed: it reports a look-up that timed out
on every try as not listed (its `failed_providers`), and the figure says how many listings
went unseen that way.

`--scale`: see bench/sweep_scale.py (65,536 addresses x 40 lists, PostgreSQL, Redis, two
Celery workers, the `reputation.sweep` task).
"""

from __future__ import annotations

import argparse
import importlib.util
import ipaddress
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sweep_site import (
    PYTHON,
    CommandFailed,
    Site,
    Zones,
    config_document,
    drop_all,
    fail,
    listed_pairs,
    load,
    make_zones,
    postgres_answers,
    verdict,
)

NETWORK = ipaddress.ip_network("198.18.0.0/22")  # RFC 2544 benchmarking range
RBLDNSD = "/usr/sbin/rbldnsd"
TARGETS = {"later_over_dns": 2.0, "pydnsbl_over_later": 3.0}

# Run by `manage.py shell -c` on a site: the product's sweep module and resolver, warm.
DNS_TIME = """
import ipaddress, json, time
import reputation
from django.conf import settings
from reputation.blocklists.runs import make_resolver
from reputation.blocklists.sweep import sweep
from reputation.models import Blocklist
lists = list(Blocklist.objects.filter(enabled=True).order_by("zone"))
targets = [str(ip) for ip in ipaddress.ip_network("%(network)s")]
specs = [b.spec() for b in lists]
sweep(targets, specs, make_resolver(lists))
resolver = make_resolver(lists)
started = time.perf_counter()
outcome = sweep(targets, specs, resolver)
seconds = time.perf_counter() - started
print(json.dumps({
    "seconds": seconds,
    "listed": [[r.target, r.zone] for r in outcome.results if r.verdict.status == "listed"],
    "unknown": sum(r.verdict.status == "unknown" for r in outcome.results),
    "misbehaving": sorted(outcome.misbehaving),
    "queries": outcome.queries,
    "dns_timeout": settings.POOLWARDEN_DNS_TIMEOUT,
    "timeout": getattr(resolver, "timeout", None),
    "attempts": getattr(resolver, "attempts", None),
    "window": getattr(resolver, "window", None),
    "code": reputation.__file__,
}))
"""

# Run by `python -c`: pydnsbl on a c-ares resolver that asks the bench's rbldnsd (or proxy).
PYDNSBL = """
import asyncio, ipaddress, json, sys, time
import aiodns, pydnsbl
from pydnsbl.providers import Provider
port, tries, window = int(sys.argv[1]), int(sys.argv[3]), int(sys.argv[4])
timeout, zones, network = float(sys.argv[2]), sys.argv[5].split(","), sys.argv[6]
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
checker = pydnsbl.DNSBLIpChecker(
    providers=[Provider(z) for z in zones], timeout=timeout, tries=tries, concurrency=window
)
checker._resolver = aiodns.DNSResolver(
    nameservers=["127.0.0.1"], timeout=timeout, tries=tries, udp_port=port, tcp_port=port, loop=loop
)
started = time.perf_counter()
results = checker.bulk_check([str(ip) for ip in ipaddress.ip_network(network)])
seconds = time.perf_counter() - started
found = [[r.addr, zone] for r in results for zone in r.detected_by]
failed = sum(len(r.failed_providers) for r in results)
print(json.dumps({"seconds": seconds, "found": found, "failed": failed}))
"""


@dataclass
class Sample:
    seconds: float
    load: float  # the 1-minute load average when the run ended
    note: str = ""
    right: bool = True


@dataclass
class Figures:
    """Every run of every figure, in the order they ran."""

    samples: dict[str, list[Sample]] = field(default_factory=dict)

    def add(self, name: str, sample: Sample) -> None:
        self.samples.setdefault(name, []).append(sample)
        mark = "" if sample.right else "  <-- WRONG"
        line = f"  {name:38} {sample.seconds:8.2f} s  {sample.note}  load {load()}{mark}"
        print(line, flush=True)

    def median(self, name: str) -> float | None:
        runs = [s.seconds for s in self.samples.get(name, []) if s.right]
        return statistics.median(runs) if runs else None


@dataclass
class Peers:
    """How pydnsbl and dnsperf are run: the product's timeout, attempts and window."""

    timeout: float
    attempts: int
    window: int


# --- the product ----------------------------------------------------------------------------


def product_sweep(figures: Figures, name: str, site: Site, expected: set) -> dict | None:
    """One `check_blocklists --json` in a cold process on `site`, checked and recorded."""
    try:
        report, seconds = site.check_blocklists()
    except CommandFailed as exc:
        figures.add(name, Sample(0.0, os.getloadavg()[0], f"FAILED: {exc}", right=False))
        return None
    judged = verdict(report, expected)
    note = f"{judged}  (DNS inside: {report.get('seconds', 0):.2f} s, {report['queries']} queries)"
    figures.add(name, Sample(seconds, os.getloadavg()[0], note, right=judged == "ok"))
    if "elapsed" in report:  # the run inside the command: no Python or Django start-up
        inside = Sample(report["elapsed"], os.getloadavg()[0], judged, right=judged == "ok")
        figures.add(f"{name}, inside the command", inside)
    return report


def dns_time(site: Site, expected: set) -> dict:
    """The in-process module's sweep of the /22 (see DNS_TIME) on `site`'s lists."""
    out, _ = site.manage("shell", "-c", DNS_TIME % {"network": NETWORK})
    result = json.loads(out.strip().splitlines()[-1])
    found = {tuple(pair) for pair in result["listed"]}
    problems = []
    if found != expected:
        problems.append(f"{len(expected - found)} missing, {len(found - expected)} extra")
    if result["unknown"] or result["misbehaving"]:
        problems.append(f"{result['unknown']} unknown, misbehaving {result['misbehaving']}")
    result["verdict"] = "WRONG: " + "; ".join(problems) if problems else "ok"
    return result


def record_dns_time(figures: Figures, site: Site, expected: set) -> None:
    result = dns_time(site, expected)
    note = f"{result['verdict']}  ({result['queries']} queries)"
    sample = Sample(result["seconds"], os.getloadavg()[0], note, result["verdict"] == "ok")
    figures.add("DNS time (in-process module)", sample)


# --- the peers ------------------------------------------------------------------------------


def pydnsbl(port: int, zones: list[str], peers: Peers) -> dict:
    """pydnsbl's sweep (PYDNSBL) in a new process; "wall" is that process's whole life."""
    args = [str(port), str(peers.timeout), str(peers.attempts), str(peers.window)]
    args += [",".join(zones), str(NETWORK)]
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-c", PYDNSBL, *args],
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - started
    if done.returncode != 0:
        fail(f"pydnsbl: {(done.stderr.strip().splitlines() or ['no output'])[-1]}")
    result = json.loads(done.stdout)
    result.update(found={tuple(pair) for pair in result["found"]}, wall=wall)
    return result


def record_pydnsbl(
    figures: Figures, name: str, port: int, zones: Zones, peers: Peers, *, lossy: bool = False
) -> None:
    """pydnsbl's time; on a lossy link its misses are counted, not held against the time."""
    result = pydnsbl(port, zones.names, peers)
    missed = len(zones.expected - result["found"])
    extra = len(result["found"] - zones.expected)
    right = not extra and (lossy or not missed)
    note = "ok" if not missed and not extra else "WRONG: " if not right else ""
    if missed or extra:
        note += f"{missed} listings missed, {extra} extra"
    note += f"  ({result['failed']} look-ups failed, reported as not listed; "
    note += f"cold process {result['wall']:.2f} s)"
    figures.add(name, Sample(result["seconds"], os.getloadavg()[0], note, right))


def dnsperf(port: int, zones: Zones, folder: Path, peers: Peers) -> tuple[float, int, int]:
    queries = folder / "queries.txt"
    if not queries.exists():
        names = [".".join(reversed(str(ip).split("."))) for ip in NETWORK]
        lines = [f"{name}.{zone} A" for zone in zones.names for name in names]
        queries.write_text("\n".join(lines) + "\n")
    command = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-n", "1"]
    command += ["-q", str(peers.window), "-t", str(max(1, round(peers.timeout * peers.attempts)))]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    elapsed = float(re.search(r"Run time \(s\):\s+([\d.]+)", done.stdout).group(1))
    noerror = int(re.search(r"NOERROR (\d+)", done.stdout).group(1))
    lost = int(re.search(r"Queries lost:\s+(\d+)", done.stdout).group(1))
    return elapsed, noerror, lost


def record_dnsperf(figures: Figures, port: int, zones: Zones, folder: Path, peers: Peers) -> None:
    elapsed, noerror, lost = dnsperf(port, zones, folder, peers)
    right = noerror == len(zones.expected) and not lost
    note = f"{'ok' if right else 'WRONG'}  ({noerror} listed, {lost} lost; A queries only)"
    figures.add("dnsperf", Sample(elapsed, os.getloadavg()[0], note, right))


# --- the rounds -----------------------------------------------------------------------------


def set_up(work: Path, databases: list[str], nameserver: str, document: str) -> dict[str, Site]:
    """Per database, the set-up site (migrated, the bench's configuration imported)."""
    sites = {}
    for database in databases:
        name = "template" if database == "sqlite" else f"pw_bench_sweep_{os.getpid()}"
        site = Site(work / database, database, name, nameserver)
        sites[database] = site
        seconds = site.create(document)
        print(f"{database}: migrate + config_import in {seconds:.1f} s (load {load()})")
    return sites


def later_site(template: Site, expected: set) -> Site:
    """A copy of the set-up database after one first sweep (checked, not timed)."""
    site = template.copy(f"{template.name}_later")
    report, seconds = site.check_blocklists()
    judged = verdict(report, expected)
    print(f"{template.database}: first sweep of the later-sweep database {seconds:.1f} s {judged}")
    if judged != "ok":
        fail(f"{template.database}: the first sweep found the wrong listings: {judged}")
    return site


def rounds(options, zones: Zones, sites: dict, port: int, work: Path, peers: Peers) -> Figures:
    figures = Figures()
    later = {database: later_site(site, zones.expected) for database, site in sites.items()}
    for n in range(options.repeat):
        print(f"round {n + 1}/{options.repeat} (load {load()})", flush=True)
        for database, template in sites.items():
            fresh = template.copy(f"{template.name}_first")
            try:
                product_sweep(figures, f"{database}: first sweep", fresh, zones.expected)
            finally:
                fresh.drop()
            product_sweep(figures, f"{database}: later sweep", later[database], zones.expected)
        record_dns_time(figures, next(iter(sites.values())), zones.expected)
        record_pydnsbl(figures, "pydnsbl", port, zones, peers)
        record_dnsperf(figures, port, zones, work, peers)
    for site in later.values():
        site.drop()
    return figures


def loss_round(options, zones: Zones, template: Site, port: int, peers: Peers) -> Figures:
    """`check_blocklists` and pydnsbl through a proxy that drops `options.loss` of replies,
    after a clean first sweep; false openings and closings counted."""
    from tests.rbldnsd_server import proxy

    figures = Figures()
    site = template.copy(f"{template.name}_loss")
    try:
        report, _ = site.check_blocklists()
        before = listed_pairs(report)
        if before != zones.expected:
            fail(f"{template.database}: the clean first sweep: {verdict(report, zones.expected)}")
        db = template.database
        with proxy(port, loss=options.loss) as lossy:
            through = site.with_nameserver(lossy.nameserver)
            lost = f"{options.loss:.0%} lost"
            for _ in range(options.loss_rounds):
                dropped = lossy.dropped
                lossy_sweep(figures, f"{db}: later sweep, {lost}", through, before)
                print(f"    ({lossy.dropped - dropped} replies dropped by the proxy)")
                dropped = lossy.dropped
                record_pydnsbl(figures, f"pydnsbl, {lost}", lossy.port, zones, peers, lossy=True)
                print(f"    ({lossy.dropped - dropped} replies dropped by the proxy)")
    finally:
        site.drop()
    return figures


def lossy_sweep(figures: Figures, name: str, site: Site, before: set) -> None:
    try:
        report, seconds = site.check_blocklists()
    except CommandFailed as exc:
        figures.add(name, Sample(0.0, os.getloadavg()[0], f"FAILED: {exc}", right=False))
        return
    after = listed_pairs(report)
    opened, closed = len(after - before), len(before - after)
    right = not opened and not closed
    note = "no false listing or delisting" if right else "WRONG: "
    if not right:
        note += f"{opened} listings falsely opened, {closed} falsely closed"
    note += f"  ({len(report['errors'])} unknown answers, {len(report['misbehaving'])} lists"
    note += f" misbehaving: not applied; DNS inside: {report.get('seconds', 0):.2f} s, "
    note += f"{report['queries']} queries)"
    figures.add(name, Sample(seconds, os.getloadavg()[0], note, right))


# --- the report -----------------------------------------------------------------------------


def summary(figures: Figures, databases: list[str]) -> None:
    print(f"\n{'figure':42} {'median':>8} {'min':>8} {'max':>8}  load (1 min) after each run")
    for name, samples in figures.samples.items():
        runs = [s.seconds for s in samples if s.right]
        loads = " ".join(f"{s.load:.2f}" for s in samples)
        wrong = len(samples) - len(runs)
        suffix = f"  ({wrong} of {len(samples)} runs WRONG or failed)" if wrong else ""
        if runs:
            median, low, high = statistics.median(runs), min(runs), max(runs)
            print(f"{name:42} {median:8.2f} {low:8.2f} {high:8.2f}  {loads}{suffix}")
        else:
            print(f"{name:42} {'-':>8} {'-':>8} {'-':>8}  {loads}{suffix}")
    dns, peer = figures.median("DNS time (in-process module)"), figures.median("pydnsbl")
    for database in databases:
        later = figures.median(f"{database}: later sweep")
        if later is None or dns is None or peer is None:
            print(f"{database}: no ratio (a figure has no right run)")
            continue
        inside = figures.median(f"{database}: later sweep, inside the command")
        if inside is not None:
            print(
                f"{database}: later sweep inside the command (start-up excluded) / DNS time = "
                f"{inside / dns:.1f}x (target <= {TARGETS['later_over_dns']:.0f}x) "
                f"{judge(inside / dns <= TARGETS['later_over_dns'])}; pydnsbl / it = "
                f"{peer / inside:.2f}x"
            )
        ratio, speed = later / dns, peer / later
        print(
            f"{database}: later sweep / DNS time = {ratio:.1f}x (target <= "
            f"{TARGETS['later_over_dns']:.0f}x) {judge(ratio <= TARGETS['later_over_dns'])}; "
            f"pydnsbl / later sweep = {speed:.2f}x (target >= "
            f"{TARGETS['pydnsbl_over_later']:.0f}x) {judge(speed >= TARGETS['pydnsbl_over_later'])}"
        )


def loss_summary(figures: Figures, databases: list[str], loss: float) -> None:
    peer = figures.median(f"pydnsbl, {loss:.0%} lost")
    for database in databases:
        name = f"{database}: later sweep, {loss:.0%} lost"
        samples = figures.samples.get(name, [])
        failed = any(s.note.startswith("FAILED") for s in samples) or not samples
        right = all(s.right for s in samples) and not failed
        ran = [s.seconds for s in samples if not s.note.startswith("FAILED")]
        ours = statistics.median(ran) if ran else None
        line = f"{database}, {loss:.0%} of replies lost: "
        if failed:
            line += "a lossy sweep FAILED"
        else:
            line += "no false listing or delisting" if right else "FALSE LISTINGS OR DELISTINGS"
        if ours is not None and peer is not None:
            line += f"; {ours:.1f} s against pydnsbl's {peer:.1f} s (target: no slower) "
            line += judge(ours <= peer)
        print(line)


def judge(ok: bool) -> str:
    return "ok" if ok else "MISSED"


# --- main -----------------------------------------------------------------------------------


def require(options) -> None:
    """Stop with one line (exit status 2) when something the bench needs is missing."""
    if not Path(RBLDNSD).exists():
        fail(f"{RBLDNSD} not found (apt-get install rbldnsd)")
    if not options.scale and not shutil.which("dnsperf"):
        fail("dnsperf not found (apt-get install dnsperf)")
    if not options.scale and importlib.util.find_spec("pydnsbl") is None:
        fail("pydnsbl not installed (.venv/bin/pip install --only-binary=:all: pydnsbl)")
    if (options.scale or "postgres" in options.databases) and not postgres_answers():
        fail("PostgreSQL does not answer on 127.0.0.1:5432 (user postgres, trust)")


def peers_from(result: dict) -> Peers:
    """The product's resolver parameters (as the DNS-time run reports them) for the peers."""
    timeout = result["timeout"] or result["dns_timeout"] / 3
    return Peers(timeout, result["attempts"] or 3, result["window"] or 100)


def default_mode(options) -> None:
    work = Path(tempfile.mkdtemp(prefix="pw-bench-sweep-"))
    work.chmod(0o755)
    from tests.rbldnsd_server import serve

    try:
        zones = make_zones(work / "zones", [NETWORK], options.lists)
        document = config_document({"bench": [str(NETWORK)]}, zones.names, limits=options.limits)
        with serve(work / "zones", zones.args, probe=zones.probe) as rbldnsd:
            total = NETWORK.num_addresses * len(zones.names)
            print(
                f"{NETWORK.num_addresses} addresses x {len(zones.names)} lists = {total} look-ups, "
                f"{len(zones.expected)} listings expected, rbldnsd on {rbldnsd.nameserver}; "
                f"{os.cpu_count()} CPUs, load {load()}"
            )
            limits = "product defaults" if options.limits else "max_qps = 0, max_in_flight = 0"
            print(f"per-list limits: {limits}")
            sites = set_up(work, options.databases, rbldnsd.nameserver, document)
            first = next(iter(sites.values()))
            settings = dns_time(first, zones.expected)  # a warm-up, and the product's settings
            peers = peers_from(settings)
            print(
                f"product: {Path(settings['code']).parent}, POOLWARDEN_DNS_TIMEOUT unset "
                f"(default {settings['dns_timeout']} s): resolver timeout {peers.timeout:g} s "
                f"x {peers.attempts} attempts, window {peers.window}; the same for pydnsbl "
                f"(c-ares timeout, tries, concurrency) and dnsperf (-q {peers.window})"
            )
            figures = rounds(options, zones, sites, rbldnsd.port, work, peers)
            losses = Figures()
            if options.loss_rounds:
                print(f"loss round: {options.loss:.0%} of replies dropped (load {load()})")
                for database in options.loss_databases:
                    part = loss_round(options, zones, sites[database], rbldnsd.port, peers)
                    for name, samples in part.samples.items():
                        losses.samples.setdefault(name, []).extend(samples)
        summary(figures, list(sites))
        if options.loss_rounds:
            summary(losses, [])
            loss_summary(losses, options.loss_databases, options.loss)
        print(f"load at the end: {load()}")
    finally:
        drop_all()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5, help="rounds (medians of this many)")
    parser.add_argument("--lists", type=int, help="blocklists (default 20; --scale: 40)")
    parser.add_argument(
        "--databases",
        default="sqlite,postgres",
        type=lambda text: [d for d in text.split(",") if d],
        help="comma-separated: sqlite, postgres",
    )
    parser.add_argument(
        "--limits",
        choices=("none", "default"),
        default="none",
        help="per-list max_qps/max_in_flight: none (0) or the product's defaults",
    )
    parser.add_argument("--loss", type=float, default=0.3, help="replies dropped (loss round)")
    parser.add_argument("--loss-rounds", type=int, default=2, help="lossy sweeps (0: none)")
    parser.add_argument(
        "--loss-databases",
        type=lambda text: [d for d in text.split(",") if d],
        help="where the loss round runs (default: the first of --databases)",
    )
    parser.add_argument("--scale", action="store_true", help="see bench/sweep_scale.py")
    import sweep_scale

    sweep_scale.add_arguments(parser)
    options = parser.parse_args()
    options.limits = options.limits == "default"
    options.loss_databases = options.loss_databases or options.databases[:1]
    if unknown := set(options.databases) - {"sqlite", "postgres"}:
        fail(f"--databases: unknown {sorted(unknown)[0]!r} (sqlite, postgres)")
    if unknown := set(options.loss_databases) - set(options.databases):
        fail(f"--loss-databases: {sorted(unknown)[0]!r} is not one of --databases")
    require(options)
    # SIGTERM (a CI timeout, kill) runs the clean-up too: databases dropped, processes stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if options.scale:
        sweep_scale.run(options)
    else:
        options.lists = options.lists or 20
        default_mode(options)


if __name__ == "__main__":
    main()
