"""Reading Postfix's log: lines per second parsed, classified and stored by delivery_log.

    .venv/bin/python bench/deliveries.py [--lines 300000] [--sqlite]

Writes a log of `--lines` lines as a busy Postfix writes it (per message: qmgr, cleanup and
smtpd lines around one delivery attempt per recipient; 90% of the attempts sent, the rest
deferrals and rejections from the corpus of tests/reputation/deliveries/), then times
`manage.py delivery_log FILE` in-process on a scratch database (PostgreSQL from
BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/poolwarden_bench_deliveries,
or SQLite with --sqlite), beside a plain loop that only splits the same lines (the floor).
Target: >= 50,000 lines/s.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
TARGET = 50_000


def corpus() -> list[str]:
    text = (REPO / "tests/reputation/deliveries/corpus.txt").read_text()
    return [
        t.partition(" | ")[2] for t in text.splitlines() if " | " in t and not t.startswith("#")
    ]


def write_log(path: Path, count: int, seed: int = 5) -> None:
    rng = random.Random(seed)
    failures = [line for line in corpus() if "status=sent" not in line]
    sent = next(line for line in corpus() if "status=sent" in line)
    with path.open("w") as f:
        n = 0
        while n < count:
            minute = rng.randrange(60)
            stamp = f"Dec  2 14:{minute:02d}:{rng.randrange(60):02d}"
            f.write(f"{stamp} mx1 postfix/smtpd[77]: 4A{n:X}: client=c.example[198.51.100.9]\n")
            f.write(f"{stamp} mx1 postfix/cleanup[78]: 4A{n:X}: message-id=<{n}@example.org>\n")
            f.write(
                f"{stamp} mx1 postfix/qmgr[79]: 4A{n:X}: from=<a@example.org>, size=2048, nrcpt=1\n"
            )
            attempt = sent if rng.random() < 0.9 else rng.choice(failures)
            address = f"pw-192-0-2-{rng.randrange(1, 250)}"
            f.write(stamp + attempt[15:].replace("pw-192-0-2-5", address) + "\n")
            f.write(f"{stamp} mx1 postfix/qmgr[79]: 4A{n:X}: removed\n")
            n += 5


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pw-bench-deliveries-"))
    if args.sqlite:
        os.environ["DATABASE_URL"] = f"sqlite:///{scratch}/db.sqlite3"
    else:
        os.environ["DATABASE_URL"] = os.environ.get(
            "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/poolwarden_bench_deliveries"
        )
        import psycopg

        admin, name = os.environ["DATABASE_URL"].rsplit("/", 1)
        with psycopg.connect(f"{admin}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    log = scratch / "mail.log"
    write_log(log, args.lines)
    print(f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs; {args.lines:,} lines")
    began = time.perf_counter()
    with log.open("rb") as f:
        floor = sum(1 for line in f if line.split(b" ", 6))
    floor_s = time.perf_counter() - began
    began = time.perf_counter()
    out = io.StringIO()
    call_command("delivery_log", str(log), stdout=out)
    spent = time.perf_counter() - began
    rate = args.lines / spent
    print(f"  {out.getvalue().strip()}")
    print(f"{'split only (the floor)':<40} {floor / floor_s:10,.0f} lines/s")
    verdict = "ok" if rate >= TARGET else "MISSED"
    database = "SQLite" if args.sqlite else "PostgreSQL"
    label = f"delivery_log on {database}"
    print(f"{label:<40} {rate:10,.0f} lines/s  target >= {TARGET:,}  {verdict}")


if __name__ == "__main__":
    main()
