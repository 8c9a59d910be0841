"""Helpers of bench/sweep.py: local blocklist zones for rbldnsd, throw-away Poolwarden sites
(each with its own var/ folder and its own SQLite file or PostgreSQL database), the product's
commands run as cold processes with an environment built here (nothing of the caller's
leaks in), and the machine's load average. Not a benchmark by itself.
"""

from __future__ import annotations

import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tomli_w

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable  # the project's .venv python
POSTGRES = "127.0.0.1:5432"
LISTED_FRACTION = 0.02
CODE = "127.0.0.2"
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def fail(message: str) -> None:
    """One line on stderr and exit status 2 (a missing tool, a broken product run)."""
    print(f"bench/sweep.py: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def load() -> str:
    """The 1, 5 and 15-minute load averages: a figure means something only beside them."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


# --- zones ----------------------------------------------------------------------------------


@dataclass
class Zones:
    """Zone files for rbldnsd: `args` for its command line, `names` of the zones, and the
    (address, zone) pairs every correct sweep must find listed."""

    args: list[str]
    names: list[str]
    expected: set[tuple[str, str]]

    @property
    def probe(self) -> str:
        return f"2.0.0.127.{self.names[0]}"


def make_zones(
    folder: Path,
    networks: list[ipaddress.IPv4Network],
    count: int,
    *,
    seed: int = 7,
    ttl: int = 300,
) -> Zones:
    """Zone files bench0.test ... each listing ~2 % of the addresses of `networks` (the same
    seeded choice on every run) and 127.0.0.2 for the self-test."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    addresses = [str(ip) for network in networks for ip in network]
    args, names, expected = [], [], set()
    for n in range(count):
        zone = f"bench{n}.test"
        listed = rng.sample(addresses, int(len(addresses) * LISTED_FRACTION))
        lines = [f"$TTL {ttl}", f":{CODE}:Listed on {zone}, see http://{zone}/?$", "127.0.0.2"]
        (folder / f"{zone}.zone").write_text("\n".join(lines + listed) + "\n")
        args.append(f"{zone}:ip4set:{zone}.zone")
        names.append(zone)
        expected |= {(a, zone) for a in listed}
    return Zones(args, names, expected)


def config_document(pools: dict[str, list[str]], zones: list[str], *, limits: bool) -> str:
    """The configuration document (README, "Configuration file") of a bench site: these pools
    (kind normal) and one list per zone, half of them major. Without `limits`, each list has
    max_qps = 0 and max_in_flight = 0 (no per-list limit); with it, the product's defaults."""
    lists = []
    for n, zone in enumerate(zones):
        entry = {
            "zone": zone,
            "kind": "ip",
            "weight": "major" if n % 2 == 0 else "minor",
            "enabled": True,
            "codes": {CODE: "listed"},
        }
        if not limits:
            entry.update(max_qps=0, max_in_flight=0)
        lists.append(entry)
    document = {
        "pools": [{"name": name, "kind": "normal", "ranges": r} for name, r in pools.items()],
        "blocklists": lists,
    }
    return tomli_w.dumps(document)


# --- sites ----------------------------------------------------------------------------------


def postgres_dsn(dbname: str = "postgres") -> str:
    host, port = POSTGRES.split(":")
    return f"host={host} port={port} user=postgres dbname={dbname}"


def postgres_answers() -> bool:
    import psycopg

    try:
        psycopg.connect(postgres_dsn(), connect_timeout=2).close()
    except psycopg.Error:
        return False
    return True


def sql(statement: str, dbname: str = "postgres", params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(postgres_dsn(dbname), autocommit=True, connect_timeout=5) as conn:
        cursor = conn.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def create_from_template(name: str, template: str) -> None:
    """CREATE DATABASE from a template, which must have no session: a product process that
    used it has exited, but its server backend may take a moment to go."""
    import psycopg

    for attempt in range(20):
        try:
            sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except psycopg.errors.ObjectInUse:
            if attempt == 19:
                raise
            time.sleep(0.25)


class CommandFailed(Exception):
    """A product command exited non-zero; the message holds its last stderr line."""


LIVE: dict[tuple[str, str], Site] = {}  # databases created here and not dropped yet


def drop_all() -> None:
    """Drop every database created here that is still there (the bench's clean-up)."""
    for site in list(LIVE.values()):
        site.drop()


class Site:
    """One throw-away Poolwarden site: a folder (its var/ and SQLite file) and a database.

    `database` is "sqlite" or "postgres"; `name` names the PostgreSQL database (created and
    dropped here) or the SQLite file. Every command gets `env`, built from nothing but this
    site's settings, the product's defaults for the rest.
    """

    def __init__(self, work: Path, database: str, name: str, nameserver: str, **variables: str):
        self.work, self.database, self.name = work, database, name
        self.nameserver = nameserver
        self.variables = variables
        work.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        if self.database == "sqlite":
            return f"sqlite:///{self.work / (self.name + '.sqlite3')}"
        return f"postgres://postgres@{POSTGRES}/{self.name}"

    @property
    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{Path(PYTHON).parent}:{SYSTEM_PATH}",
            "HOME": str(self.work),
            "LANG": "C.UTF-8",
            "PYTHONPATH": str(REPO),
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "POOLWARDEN_VAR_DIR": str(self.work / "var"),
            "DATABASE_URL": self.url,
            "POOLWARDEN_NAMESERVERS": self.nameserver,
            **self.variables,
        }

    def with_nameserver(self, nameserver: str) -> Site:
        """The same site and database, asking another resolver (the loss proxy)."""
        return Site(self.work, self.database, self.name, nameserver, **self.variables)

    def manage(self, *args: str, timeout: float = 3600) -> tuple[str, float]:
        """`manage.py <args>` in a new process: (stdout, wall seconds from start to exit)."""
        started = time.perf_counter()
        done = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
            raise CommandFailed(f"manage.py {args[0]} ({self.database}): {lines[-1]}")
        return done.stdout, seconds

    def create(self, document: str) -> float:
        """A new database, migrated and holding exactly `document` (config_import --prune,
        which also removes the seeded pools and lists); the seconds it took."""
        started = time.perf_counter()
        self.drop()
        if self.database == "postgres":
            sql(f'CREATE DATABASE "{self.name}"')
        LIVE[self.database, self.name] = self
        self.manage("migrate", "--noinput")
        path = self.work / "config.toml"
        path.write_text(document)
        self.manage("config_import", "--prune", str(path))
        return time.perf_counter() - started

    def copy(self, name: str) -> Site:
        """A fresh database with this one's contents (a site as `create` left it, quickly):
        a copy of the SQLite file, or a PostgreSQL database made from this one as template."""
        other = Site(self.work, self.database, name, self.nameserver, **self.variables)
        other.drop()
        if self.database == "sqlite":
            source = self.work / f"{self.name}.sqlite3"
            for suffix in ("", "-wal"):
                if Path(f"{source}{suffix}").exists():
                    shutil.copy(f"{source}{suffix}", self.work / f"{name}.sqlite3{suffix}")
        else:
            create_from_template(name, self.name)
        LIVE[other.database, other.name] = other
        return other

    def drop(self) -> None:
        LIVE.pop((self.database, self.name), None)
        if self.database == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                (self.work / f"{self.name}.sqlite3{suffix}").unlink(missing_ok=True)
        else:
            sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def check_blocklists(self, timeout: float = 3600) -> tuple[dict, float]:
        """`check_blocklists --json` in a cold process: (its JSON, wall seconds)."""
        out, seconds = self.manage("check_blocklists", "--json", timeout=timeout)
        return json.loads(out), seconds


def listed_pairs(report: dict) -> set[tuple[str, str]]:
    """The (address, zone) pairs of a `check_blocklists --json` report's `listed`."""
    return {(item["address"], item["zone"]) for item in report["listed"]}


def verdict(report: dict, expected: set[tuple[str, str]]) -> str:
    """ "ok", or what is wrong with a `check_blocklists --json` report on a loss-free link."""
    found = listed_pairs(report)
    problems = []
    if found != expected:
        problems.append(f"{len(expected - found)} listings missing, {len(found - expected)} extra")
    if report["errors"]:
        kinds = sorted({e["kind"] for e in report["errors"]})
        problems.append(f"{len(report['errors'])} errors ({', '.join(kinds)})")
    if report["misbehaving"]:
        problems.append(f"misbehaving: {', '.join(report['misbehaving'])}")
    return "WRONG: " + "; ".join(problems) if problems else "ok"
