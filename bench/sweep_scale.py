"""`bench/sweep.py --scale`: one scheduled sweep at an operator's scale, through Celery.

    .venv/bin/python bench/sweep.py --scale                       # 16 pools of /20 x 40 lists
    .venv/bin/python bench/sweep.py --scale --pools 2 --lists 4   # a quick check
    .venv/bin/python bench/sweep.py --scale --keep                # keep the database, then:
    .venv/bin/python bench/sweep.py --scale --database pw_bench_scale_1234 --sweeps later

16 pools (`--pools`), each a /20 of 198.18.0.0/15 (RFC 2544 benchmarking range, split in its
32 /20s: 198.18.0.0/20, 198.18.16.0/20, ...; 16 of them are 198.18.0.0/16, 65,536 addresses),
against 40 lists (`--lists`) in one local rbldnsd, each zone a file listing ~2 % of all the
addresses (seeded) with a TTL of 60 s, the least the product waits before asking again. The
site is a PostgreSQL database of its own (pw_bench_scale_<pid>, dropped at the end unless
`--keep`), with Redis as broker (CELERY_BROKER_URL=redis://127.0.0.1:6379/<--redis-db>, default
9) and cache (the next database, 10): both are flushed before and after, and a lock key in
the broker's database stops a second bench from sharing them. Two Celery workers
(`--workers`) run as the Procfile runs one (`celery -A config.celery worker --pool=threads`),
with `--concurrency 1` each; no beat. The bench sends the task `reputation.sweep` with
jitter 0 (as beat would, by name) and polls the database until the run it planned (the newest
CheckRun) has `finished` set, printing chunks done / chunks, within `--timeout` (20 min).

Figures, for the first sweep (nothing recorded yet) and a later one (started once every
answer's 60 s TTL has passed, so every pair is due again):
  wall           from sending the task to the run's `finished` time: the worker time of one
                 whole sweep with two workers (target <= 5 minutes);
  planning       the `reputation.sweep` task's own time (from the worker's log);
  chunks         how many `reputation.sweep_chunk` tasks ran and their summed time;
  CPU            user + system seconds of each worker process (and children), from /proc;
  rDNS           the `reputation.check_rdns` task the sweep starts beside the chunks;
with the load average. Checked: the open listings are exactly the expected ones, the run has
no unknown answer and no misbehaving list. A sweep that does not finish in time is reported
with its progress and an extrapolation, and the bench stops there.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sweep_site import (
    PYTHON,
    REPO,
    CommandFailed,
    Site,
    config_document,
    fail,
    load,
    make_zones,
    postgres_dsn,
    sql,
)

SCALE_RANGE = ipaddress.ip_network("198.18.0.0/15")  # RFC 2544 benchmarking range
TTL = 60  # seconds: the product never asks again sooner (listings.MIN_FRESH)
TARGET_SECONDS = 300
REDIS = "127.0.0.1:6379"
LOCK = "pw-bench-sweep-scale:lock"
TRIGGER = (
    "import json, time; from config.celery import app; "
    "result = app.send_task('reputation.sweep', kwargs={'jitter': 0}); "
    "print(json.dumps({'id': result.id, 'sent': time.time()}))"
)
TASK_LINE = re.compile(r"Task (reputation\.[a-z_]+)\[([^\]]+)\] (.*)")
SUCCEEDED = re.compile(r"succeeded in ([\d.]+)s")


def add_arguments(parser) -> None:
    group = parser.add_argument_group("--scale")
    group.add_argument("--pools", type=int, default=16, help="pools of a /20 each (max 32)")
    group.add_argument("--workers", type=int, default=2, help="Celery worker processes")
    group.add_argument("--concurrency", type=int, default=1, help="threads per worker")
    group.add_argument("--timeout", type=float, default=1200, help="seconds per sweep")
    group.add_argument("--redis-db", type=int, default=9, help="broker database (cache: +1)")
    group.add_argument(
        "--sweeps",
        default="first,later",
        type=lambda text: [s for s in text.split(",") if s],
        help="which sweeps to time: first, later, or both",
    )
    group.add_argument("--database", help="use (or create) this PostgreSQL database")
    group.add_argument("--keep", action="store_true", help="do not drop the database")


@dataclass
class Sweep:
    """What one scheduled sweep took, as measured here."""

    name: str
    run: dict | None = None  # the CheckRun row
    wall: float | None = None  # sent -> finished
    elapsed: float = 0.0  # sent -> end of waiting
    planning: float | None = None
    chunk_tasks: int = 0
    chunk_seconds: float = 0.0
    rdns: float | None = None
    cpu: dict[int, float] | None = None
    problems: tuple[str, ...] = ()


# --- processes ------------------------------------------------------------------------------


class Workers:
    """`count` Celery workers as the Procfile starts one, each in its own process group with
    its log in `folder`."""

    def __init__(self, site: Site, folder: Path, count: int, concurrency: int):
        self.logs = [folder / f"worker{n + 1}.log" for n in range(count)]
        self.procs = []
        for n, log in enumerate(self.logs):
            with log.open("w") as out:
                self.procs.append(
                    subprocess.Popen(
                        [
                            *(PYTHON, "-m", "celery", "-A", "config.celery", "worker"),
                            *("--pool=threads", f"--concurrency={concurrency}", "--loglevel=INFO"),
                            f"--hostname=bench{n + 1}-{os.getpid()}@%h",
                        ],
                        cwd=REPO,
                        env=site.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        for proc, log in zip(self.procs, self.logs, strict=True):
            while " ready." not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = log.read_text(errors="replace").strip().splitlines()[-1:]
                    fail(f"a Celery worker did not start: {' '.join(tail) or 'no output'}")
                time.sleep(0.2)

    def cpu(self) -> dict[int, float]:
        from tests.support import tree_cpu

        return {proc.pid: tree_cpu(proc.pid) for proc in self.procs}

    def offsets(self) -> list[int]:
        return [log.stat().st_size for log in self.logs]

    def lines_since(self, offsets: list[int]) -> list[str]:
        lines = []
        for log, offset in zip(self.logs, offsets, strict=True):
            with log.open("rb") as file:
                file.seek(offset)
                lines += file.read().decode(errors="replace").splitlines()
        return lines

    def stop(self) -> None:
        for proc in self.procs:
            with_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in self.procs:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                with_group(proc, signal.SIGKILL)
                proc.wait()


def with_group(proc: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


# --- Redis ----------------------------------------------------------------------------------


class RedisDatabases:
    """The broker's and the cache's Redis databases, flushed and locked for this bench."""

    def __init__(self, broker_db: int):
        import redis

        self.broker = redis.Redis.from_url(f"redis://{REDIS}/{broker_db}", socket_timeout=5)
        self.cache = redis.Redis.from_url(f"redis://{REDIS}/{broker_db + 1}", socket_timeout=5)
        self.broker_db = broker_db
        try:
            holder = self.broker.get(LOCK)
        except redis.RedisError as exc:
            fail(f"Redis does not answer on {REDIS}: {exc}")
        if holder and pid_alive(int(holder)):
            fail(
                f"Redis databases {broker_db} and {broker_db + 1} are in use by bench pid "
                f"{int(holder)}: wait for it or pass --redis-db"
            )
        self.flush()
        self.broker.set(LOCK, os.getpid())

    def urls(self) -> dict[str, str]:
        return {
            "CELERY_BROKER_URL": f"redis://{REDIS}/{self.broker_db}",
            "CACHE_URL": f"redis://{REDIS}/{self.broker_db + 1}",
        }

    def flush(self) -> None:
        self.broker.flushdb()
        self.cache.flushdb()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- one sweep ------------------------------------------------------------------------------


def latest_run(database: str, after: int = 0) -> dict | None:
    """The newest CheckRun row with an id above `after`, as a dict (whatever its columns)."""
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(postgres_dsn(database), autocommit=True, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT * FROM reputation_checkrun WHERE id > %s ORDER BY id DESC LIMIT 1", (after,)
        ).fetchone()


def open_listings(database: str) -> set[tuple[str, str]]:
    rows = sql(
        "SELECT l.address, b.zone FROM reputation_listing l "
        "JOIN reputation_blocklist b ON b.id = l.blocklist_id WHERE l.closed IS NULL",
        database,
    )
    return {(address, zone) for address, zone in rows}


def sweep_once(name: str, site: Site, workers: Workers, timeout: float) -> Sweep:
    """Send `reputation.sweep` and wait for its run to finish (or the timeout)."""
    result = Sweep(name)
    last = latest_run(site.name)
    before = last["id"] if last else 0
    cpu, offsets = workers.cpu(), workers.offsets()
    out, _ = site.manage("shell", "-c", TRIGGER)
    sent = json.loads(out.strip().splitlines()[-1])
    print(f"{name} sweep: task reputation.sweep sent (load {load()})", flush=True)
    shown = 0.0
    while True:
        time.sleep(2)
        result.elapsed = time.time() - sent["sent"]
        run = latest_run(site.name, before)
        if run and run.get("finished"):
            result.run = run
            result.wall = run["finished"].timestamp() - sent["sent"]
            break
        if result.elapsed - shown >= 30:
            shown = result.elapsed
            print(f"  {progress(run)}, {result.elapsed:.0f} s, load {load()}", flush=True)
        if result.elapsed > timeout:
            result.run = run
            break
    result.cpu = {pid: seconds - cpu[pid] for pid, seconds in workers.cpu().items()}
    if result.run is not None and result.wall is not None:
        wait_for_rdns(workers, offsets, timeout - result.elapsed)
    read_log(result, workers.lines_since(offsets), sent["id"])
    return result


def progress(run: dict | None) -> str:
    if run is None:
        return "no run planned yet"
    done, chunks = run.get("chunks_done", "?"), run.get("chunks", "?")
    return f"run {run['id']}: chunks {done}/{chunks} done"


def wait_for_rdns(workers: Workers, offsets: list[int], timeout: float) -> None:
    """The sweep's reverse-DNS task may still run: let it end before the next figure."""
    deadline = time.monotonic() + max(timeout, 60)
    while time.monotonic() < deadline:
        for line in workers.lines_since(offsets):
            match = TASK_LINE.search(line)
            if match and match[1] == "reputation.check_rdns" and "received" not in match[3]:
                return
        time.sleep(1)


def read_log(result: Sweep, lines: list[str], task_id: str) -> None:
    """Planning time, chunk tasks and their time, rDNS time and failures from the logs."""
    problems = []
    for line in lines:
        match = TASK_LINE.search(line)
        if not match:
            if " ERROR/" in line or "Traceback" in line:
                problems.append(line.strip())
            continue
        task, ident, rest = match.groups()
        succeeded = SUCCEEDED.match(rest)
        if rest.startswith("received"):
            continue
        if succeeded is None:
            problems.append(line.strip())
            continue
        seconds = succeeded.group(1)
        if task == "reputation.sweep" and ident == task_id:
            result.planning = float(seconds)
        elif task == "reputation.sweep_chunk":
            result.chunk_tasks += 1
            result.chunk_seconds += float(seconds)
        elif task == "reputation.check_rdns":
            result.rdns = float(seconds)
    result.problems = tuple(problems)


def report(result: Sweep, expected: set, database: str) -> bool:
    """Print one sweep's figures; True if it finished right within the target."""
    run = result.run or {}
    cpu = ", ".join(f"{seconds:.0f} s" for seconds in (result.cpu or {}).values())
    print(f"{result.name} sweep (load {load()}):")
    if result.wall is None:
        done, chunks = run.get("chunks_done") or 0, run.get("chunks") or 0
        guess = f", about {result.elapsed * chunks / done:.0f} s at this pace" if done else ""
        print(f"  NOT FINISHED after {result.elapsed:.0f} s: {progress(result.run)}{guess}")
    else:
        verdict = "ok" if result.wall <= TARGET_SECONDS else "MISSED"
        print(
            f"  worker time (wall, {len(result.cpu or {})} workers) {result.wall:8.1f} s  "
            f"target <= {TARGET_SECONDS} s {verdict}"
        )
    planning = f"{result.planning:.1f} s" if result.planning is not None else "not seen"
    print(f"  planning task                  {planning}")
    print(f"  chunk tasks                    {result.chunk_tasks} ({result.chunk_seconds:.1f} s)")
    rdns = f"{result.rdns:.1f} s" if result.rdns is not None else "not finished"
    print(f"  rDNS task                      {rdns}")
    print(f"  CPU per worker                 {cpu}")
    keys = ("addresses", "queries", "listed", "clean", "unknown", "deferred", "misbehaving")
    print("  run: " + ", ".join(f"{k} {run[k]}" for k in keys if k in run))
    for line in result.problems[:5]:
        print(f"  worker log: {line[:300]}")
    if len(result.problems) > 5:
        print(f"  ... and {len(result.problems) - 5} more problem lines in the worker logs")
    if result.wall is None:
        return False
    found = open_listings(database)
    right = found == expected and not run.get("unknown") and not run.get("misbehaving")
    print(
        f"  open listings {len(found)} of {len(expected)} expected "
        f"({len(expected - found)} missing, {len(found - expected)} extra): "
        f"{'ok' if right else 'WRONG'}"
    )
    return right and result.wall <= TARGET_SECONDS


# --- the mode -------------------------------------------------------------------------------


def run(options) -> None:
    if not 1 <= options.pools <= 32:
        fail("--pools: 1 to 32 (198.18.0.0/15 holds 32 /20s)")
    if unknown := set(options.sweeps) - {"first", "later"}:
        fail(f"--sweeps: unknown {sorted(unknown)[0]!r} (first, later)")
    if options.database and not options.database.startswith("pw_bench_"):
        fail("--database: a name starting with pw_bench_ (config_import --prune rewrites it)")
    options.lists = options.lists or 40
    networks = list(SCALE_RANGE.subnets(new_prefix=20))[: options.pools]
    pools = {f"bench{n:02}": [str(network)] for n, network in enumerate(networks)}
    work = Path(tempfile.mkdtemp(prefix="pw-bench-scale-"))
    work.chmod(0o755)
    redis = RedisDatabases(options.redis_db)
    name = options.database or f"pw_bench_scale_{os.getpid()}"
    site, workers = None, None
    from tests.rbldnsd_server import serve

    try:
        zones = make_zones(work / "zones", networks, options.lists, ttl=TTL)
        addresses = sum(n.num_addresses for n in networks)
        print(
            f"{options.pools} pools of /20 ({addresses} addresses) x {options.lists} lists = "
            f"{addresses * options.lists} look-ups, {len(zones.expected)} listings expected; "
            f"{options.workers} workers x {options.concurrency}; {os.cpu_count()} CPUs, "
            f"load {load()}"
        )
        limits = "product defaults" if options.limits else "max_qps = 0, max_in_flight = 0"
        print(f"per-list limits: {limits}; zone TTL {TTL} s")
        with serve(work / "zones", zones.args, probe=zones.probe) as rbldnsd:
            site = Site(work / "site", "postgres", name, rbldnsd.nameserver, **redis.urls())
            prepare(site, config_document(pools, zones.names, limits=options.limits))
            workers = Workers(site, work, options.workers, options.concurrency)
            sweeps(options, site, workers, zones.expected)
    finally:
        if workers is not None:
            workers.stop()
        redis.flush()
        if site is not None and not options.keep:
            site.drop()
        elif site is not None:
            print(f"kept database {name}: --database {name} --sweeps later reuses it")
        shutil.rmtree(work, ignore_errors=True)


def prepare(site: Site, document: str) -> None:
    """Create and set up the database, or bring a kept one up to date with the document."""
    exists = sql("SELECT 1 FROM pg_database WHERE datname = %s", params=(site.name,))
    started = time.perf_counter()
    if exists:
        site.manage("migrate", "--noinput")
        path = site.work / "config.toml"
        path.write_text(document)
        site.manage("config_import", "--prune", str(path))
        print(
            f"database {site.name} reused, configuration imported in "
            f"{time.perf_counter() - started:.0f} s (load {load()})"
        )
    else:
        try:
            site.create(document)
        except CommandFailed as exc:
            fail(str(exc))
        print(
            f"database {site.name}: migrate + config_import in "
            f"{time.perf_counter() - started:.0f} s (load {load()})"
        )


def sweeps(options, site: Site, workers: Workers, expected: set) -> None:
    finished_at = None
    for name in ("first", "later"):
        if name not in options.sweeps:
            continue
        if name == "first" and latest_run(site.name) is not None:
            print("note: this database has swept before: the first sweep is not a first one")
        if finished_at is not None:  # every answer's TTL must pass: all pairs due again
            pause = finished_at + TTL + 2 - time.time()
            if pause > 0:
                print(f"waiting {pause:.0f} s for the first sweep's answers to expire")
                time.sleep(pause)
        result = sweep_once(name, site, workers, options.timeout)
        report(result, expected, site.name)
        if result.wall is None:
            print("stopping: the sweep did not finish within --timeout")
            return
        finished_at = result.run["finished"].timestamp()
