"""DSN spike detection at volume, on PostgreSQL, printed beside the issue's targets.

    .venv/bin/python bench/spikes.py [--domains 1000] [--days 30]

Loads 30 days of per-minute DSN counts for 1,000 sender domains (sparse, as real ones are:
a few DSNs per domain per hour, daily rhythm, one domain spiking) into a scratch PostgreSQL
database (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/poolwarden_bench),
then times one detection run over every dimension, and the dashboard's DSN volume chart data
(hourly buckets over 30 days and the 7 days of baseline before them, and the spikes).
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ["DATABASE_URL"] = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/poolwarden_bench"
)

TARGET_DETECT, TARGET_QUERY = 10.0, 0.300
NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def setup_database() -> None:
    import psycopg

    url = os.environ["DATABASE_URL"]
    admin_url, name = url.rsplit("/", 1)
    with psycopg.connect(f"{admin_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def rows(domains: int, days: int, seed: int = 7):
    """(minute, domain, status, count) rows: ~3 DSNs per domain and hour in office hours."""
    rng = random.Random(seed)
    start = NOW - timedelta(days=days)
    for minute in range(days * 1440):
        at = start + timedelta(minutes=minute)
        hour = at.hour + at.minute / 60
        rate = domains * 0.05 * (0.2 + math.exp(-((hour - 14) ** 2) / 18))
        if NOW - timedelta(minutes=15) <= at:
            yield at, "victim0.example", "5.1.1", 40  # the one spike
        for _ in range(poisson(rng, rate)):
            status = "5.1.1" if rng.random() < 0.6 else "5.7.1"
            yield at, f"customer{rng.randrange(domains)}.example", status, 1


REFINED_CLASSES = {"5.1.1": "unknown-user", "5.7.1": "blocked"}


def poisson(rng: random.Random, rate: float) -> int:
    # Normal approximation is fine for the large rates of the whole service.
    return (
        max(0, round(rng.gauss(rate, math.sqrt(rate))))
        if rate > 30
        else sum(1 for _ in range(int(rate * 3) + 1) if rng.random() < rate / (int(rate * 3) + 1))
    )


def load(domains: int, days: int) -> int:
    from collections import Counter

    from django.db import connection

    counts = Counter()
    for at, domain, status, n in rows(domains, days):
        counts[(at, domain, status)] += n
    buffer = io.StringIO()
    for (at, domain, status), n in counts.items():
        source = f"mx.{domain}"
        refined = REFINED_CLASSES[status]
        buffer.write(
            f"{at.isoformat()}\thigh-risk\t{source}\t{domain}\texample.org\t{status}\t"
            f"mx.example.org\t{refined}\t{n}\n"
        )
    buffer.seek(0)
    columns = (
        "minute",
        "pool",
        "source",
        "recipient_domain",
        "original_domain",
        "status",
        "reporting_mta",
        "refined_class",
        "count",
    )
    # As the engine's flushes also write them: the DSNs per hour and pool, which the
    # dashboard's DSN chart reads for ranges longer than six hours.
    hours = Counter()
    for (at, _domain, _status), n in counts.items():
        hours[at.replace(minute=0)] += n
    totals = "".join(f"{hour.isoformat()}\thigh-risk\t{n}\n" for hour, n in hours.items())
    with connection.cursor() as cursor:
        copy_sql = f"COPY routing_dsncount ({', '.join(columns)}) FROM STDIN"
        with cursor.copy(copy_sql) as copy:
            copy.write(buffer.read())
        with cursor.copy("COPY routing_dsntotal (hour, pool, count) FROM STDIN") as copy:
            copy.write(totals)
        cursor.execute("ANALYZE routing_dsncount")
        cursor.execute("ANALYZE routing_dsntotal")
    return len(counts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    setup_database()
    started = time.perf_counter()
    loaded = load(args.domains, args.days)
    print(
        f"loaded {loaded:,} per-minute rows ({args.domains} domains x {args.days} days) "
        f"in {time.perf_counter() - started:.1f} s"
    )

    from unittest import mock

    from reputation.dashboard import timerange
    from reputation.dashboard.history import dsn_volume
    from reputation.spikes.detection import detect

    started = time.perf_counter()
    run = detect(NOW)
    detect_s = time.perf_counter() - started
    opened = sorted({f"{s.dimension}={s.value or '*'} ({s.cause})" for s in run.opened})
    print(f"detection: {run.series:,} series, spikes opened: {', '.join(opened) or 'none'}")

    timings = []
    for _ in range(5):
        started = time.perf_counter()
        with mock.patch("django.utils.timezone.now", return_value=NOW):
            chart = dsn_volume(rng=timerange.parse("30d", now=NOW))
        points = chart.counts
        timings.append(time.perf_counter() - started)
    query_s = sorted(timings)[len(timings) // 2]
    print(
        f"{'detection run, every dimension':<45} {detect_s:8.2f} s   target < {TARGET_DETECT} s"
        f"  {'ok' if detect_s < TARGET_DETECT else 'ABOVE TARGET'}"
    )
    print(
        f"{'dashboard DSN volume, 30 d hourly (median)':<45} {query_s * 1000:8.0f} ms  "
        f"target < {TARGET_QUERY * 1000:.0f} ms  "
        f"{'ok' if query_s < TARGET_QUERY else 'ABOVE TARGET'}"
        f"  ({len(points)} points, {sum(points):,} DSNs)"
    )


if __name__ == "__main__":
    main()
