"""DSN spike detection: its accuracy on a synthetic world, and its cost at volume on
PostgreSQL, printed beside the issue's targets.

    .venv/bin/python bench/spikes.py [--only parse|accuracy|cost] [--seeds 2]
                                     [--domains 1000] [--days 30]

**Parsing**: every bounce under tests/routing/samples/dsn/ read and parsed (`routing.dsn`:
detection, recipients, statuses, refined classes) over and over for 3 s, beside flufl.bounce
(Mailman's bounce scanner, recipients only) interleaved in the same run: messages per second.

**Accuracy** (no database; bench/spike_world.py): eleven weeks of DSNs from 60 customers with
a daily and weekly rhythm (Mondays 08-10 at twice a weekday) and day-to-day noise; the first
three weeks are history, the last eight are measured with an incident of each cause at three
sizes (30, 75, 300 DSNs per 15 minutes) every 10-20 hours. Poolwarden's detector (its own
baseline, grouping, incident and cause code) runs every 5 minutes; beside it, in the same run,
a plain same-hour-yesterday threshold per series (more than twice yesterday's window and at
least 20 DSNs), its cause judged by the same rules. Printed: false alarms per week, recall
within 15 minutes and cause accuracy per cause, alerts per incident.

**Cost** (PostgreSQL, BENCH_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/poolwarden_bench): 30 days of per-minute DSN counts for
1,000 sender domains (sparse, as real ones are), one detection run over every dimension, the
dashboard's DSN volume chart over 30 days; then a fresh database with a 50,000-DSN burst in
the last 10 minutes (400 sources, 2,000 domains, one victim domain): one detection run and the
incidents it opens.
"""

from __future__ import annotations

import argparse
import io
import logging
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

TARGET_DETECT, TARGET_QUERY, TARGET_BURST = 10.0, 0.300, 5.0
TARGET_FALSE_PER_WEEK, TARGET_RECALL, TARGET_CAUSE = 0.0, 0.95, 0.90
NOW = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def setup_database() -> None:
    import psycopg
    from django.db import connections

    connections.close_all()

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
        buffer.write(
            f"{at.isoformat()}\thigh-risk\t{source}\t{domain}\texample.org\t{status}\t"
            f"mx.example.org\t{REFINED.get(status, 'other')}\t{n}\n"
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


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
REFINED = {"5.1.1": "unknown-user", "5.7.1": "blocked", "5.2.2": "mailbox-full"}


def load_burst(total: int = 50_000) -> int:
    """A backscatter burst on a fresh install: `total` DSNs in the last 10 minutes."""
    from collections import Counter

    from django.db import connection

    rng = random.Random(11)
    counts = Counter()
    for _ in range(total):
        at = NOW - timedelta(minutes=rng.randrange(1, 11))
        source = f"mx{rng.randrange(400)}.customer.example"
        status = rng.choice(("5.1.1", "5.1.1", "5.2.2", "5.7.1"))
        original = f"c{rng.randrange(2000)}.example"
        counts[(at, source, original, status)] += 1
    lines = "".join(
        f"{at.isoformat()}\thigh-risk\t{source}\tvictim.example\t{original}\t{status}\t"
        f"{source}\t{REFINED[status]}\t{n}\n"
        for (at, source, original, status), n in counts.items()
    )
    columns = "minute, pool, source, recipient_domain, original_domain, status, reporting_mta"
    # As the engine keeps them: at most 200 DSN recipients per flush (here per minute).
    from routing.models import DSNSample

    DSNSample.objects.bulk_create(
        DSNSample(
            minute=NOW - timedelta(minutes=1 + i // 200),
            pool="high-risk",
            source=f"mx{rng.randrange(400)}.customer.example",
            recipient=f"forged{i}@victim.example",
            original_recipient=f"user{rng.randrange(10**6)}@c{rng.randrange(2000)}.example",
            status="5.1.1",
            diagnostic="550 5.1.1 User unknown",
            reporting_mta="mx.customer.example",
            routed_by_us=False,
            refined_class="unknown-user",
        )
        for i in range(2000)
    )
    with connection.cursor() as cursor:
        with cursor.copy(
            f"COPY routing_dsncount ({columns}, refined_class, count) FROM STDIN"
        ) as c:
            c.write(lines)
        cursor.execute("ANALYZE routing_dsncount")
    return len(counts)


def parsing(seconds: float = 3.0) -> None:
    import email
    import email.policy

    from routing.dsn import is_delivery_report, parse_report

    raws = [f.read_bytes() for f in sorted((REPO / "tests/routing/samples/dsn").glob("*.eml"))]

    def ours(raw: bytes) -> object:
        msg = email.message_from_bytes(raw, policy=email.policy.compat32)
        return is_delivery_report(msg) and parse_report(msg)[0]

    try:
        from flufl.bounce import scan_message
    except ImportError:
        scan_message = None
    logging.getLogger("flufl.bounce").setLevel(logging.WARNING)  # it logs every detector

    def peer(raw: bytes) -> object:
        return scan_message(email.message_from_bytes(raw))

    totals = {"Poolwarden routing.dsn": [0, 0.0], "flufl.bounce (peer)": [0, 0.0]}
    runners = {
        "Poolwarden routing.dsn": ours,
        "flufl.bounce (peer)": peer if scan_message else None,
    }
    for _ in range(6):  # interleaved rounds
        for name, run in runners.items():
            if run is None:
                continue
            began = time.perf_counter()
            while time.perf_counter() - began < seconds / 6:
                for raw in raws:
                    run(raw)
                totals[name][0] += len(raws)
            totals[name][1] += time.perf_counter() - began
    for name, (count, spent) in totals.items():
        rate = (
            f"{count / spent:8.0f} messages/s"
            if spent
            else "  (not installed: pip install flufl.bounce)"
        )
        print(f"{'parsing ' + str(len(raws)) + ' bounces, ' + name:<45} {rate}")


def accuracy(seeds: int) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import spike_world as world_module

    from reputation.spikes.baseline import Thresholds

    thresholds = Thresholds()
    learn, weeks = 3, 11
    start = learn * 7 * world_module.BINS_PER_DAY
    ours, peer, learning = [], [], []
    for seed in range(1, seeds + 1):
        began = time.perf_counter()
        world = world_module.build(weeks=weeks, learn_weeks=learn, seed=seed)
        alerts = world_module.replay_poolwarden(world, start, thresholds, seed)
        ours.append(world_module.score(world, alerts, start))
        peer.append(
            world_module.score(
                world, world_module.replay_yesterday(world, start, thresholds, seed), start
            )
        )
        # The third week of history, by hour of day (two weeks kept): what a new install sees.
        early = world_module.replay_poolwarden(
            world, 14 * world_module.BINS_PER_DAY, thresholds, seed
        )
        for alert in early:
            if alert.opened < start:
                day, minute = divmod(alert.opened * world_module.BIN, 1440)
                learning.append(f"{WEEKDAYS[day % 7]} {minute // 60:02d}:{minute % 60:02d}")
        print(
            f"  world {seed}: {len(world.injected)} incidents over {weeks - learn} weeks, "
            f"replayed in {time.perf_counter() - began:.0f} s"
        )
    print_scores("Poolwarden (seasonal baseline, incidents)", ours)
    print_scores("peer: same window yesterday x2, per series", peer)
    print(
        f"  third week of history (hour-of-day baseline, before the week is learned): "
        f"{len(learning)} alarms" + (f" ({', '.join(learning[:6])})" if learning else "")
    )
    weeks_total = sum(s.weeks for s in ours)
    false_rate = sum(s.false_alarms for s in ours) / weeks_total
    found = sum(sum(s.found.values()) for s in ours)
    injected = sum(sum(s.total.values()) for s in ours)
    right = sum(sum(s.right.values()) for s in ours)
    per_incident = [n for s in ours for n in s.per_incident]
    print(
        f"{'false spikes per week':<45} {false_rate:8.2f}     target {TARGET_FALSE_PER_WEEK:g}  "
        f"{verdict(false_rate <= TARGET_FALSE_PER_WEEK)}"
    )
    print(
        f"{'incidents found within 15 minutes':<45} {found / injected:8.1%}     target >= "
        f"{TARGET_RECALL:.0%}  {verdict(found / injected >= TARGET_RECALL)}"
    )
    print(
        f"{'of which with the right cause':<45} {right / max(found, 1):8.1%}     target >= "
        f"{TARGET_CAUSE:.0%}  {verdict(right / max(found, 1) >= TARGET_CAUSE)}"
    )
    print(
        f"{'alerts per incident':<45} {max(per_incident, default=0):8d}     target 1      "
        f"{verdict(max(per_incident, default=0) <= 1)}"
    )


def print_scores(name: str, scores: list) -> None:
    from collections import Counter

    weeks = sum(s.weeks for s in scores)
    found, right, total = Counter(), Counter(), Counter()
    for s in scores:
        found.update(s.found)
        right.update(s.right)
        total.update(s.total)
    per_incident = [n for s in scores for n in s.per_incident]
    false_alarms = sum(s.false_alarms for s in scores)
    print(f"{name}:")
    mean = sum(per_incident) / max(len(per_incident), 1)
    print(
        f"  false alarms {false_alarms} in {weeks:.0f} weeks "
        f"({false_alarms / weeks:.1f} per week); alerts per incident found: mean {mean:.1f}, "
        f"max {max(per_incident, default=0)}"
    )
    for cause in sorted(total):
        share_found = found[cause] / total[cause]
        share_right = right[cause] / max(found[cause], 1)
        print(
            f"  {cause:<22} found {found[cause]:3d}/{total[cause]:<3d} ({share_found:5.1%})"
            f"  right cause {right[cause]:3d}/{found[cause]:<3d} ({share_right:5.1%})"
        )


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def cost(domains: int, days: int) -> None:
    setup_database()
    args = argparse.Namespace(domains=domains, days=days)
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

    setup_database()  # a fresh install
    loaded = load_burst()
    started = time.perf_counter()
    run = detect(NOW)
    burst_s = time.perf_counter() - started
    from reputation.models import Spike

    spikes = list(Spike.objects.all())
    involved = sum(len(s.series) for s in spikes)
    print(
        f"{'50,000-DSN burst on a fresh install':<45} {burst_s:8.2f} s   target < {TARGET_BURST} s"
        f"  {verdict(burst_s < TARGET_BURST)}  ({loaded:,} rows, {run.series:,} series, "
        f"{run.elevated:,} elevated; {len(spikes)} incident(s), {involved:,} series in them: "
        + ", ".join(f"{s.dimension}={s.value or '*'} ({s.cause})" for s in spikes[:3])
        + ")"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--only", choices=("parse", "accuracy", "cost"))
    parser.add_argument("--seeds", type=int, default=2, help="synthetic worlds (accuracy)")
    parser.add_argument("--domains", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}, {os.cpu_count()} CPUs")
    if args.only in (None, "parse", "accuracy"):
        import django

        django.setup()
    if args.only in (None, "parse"):
        parsing()
    if args.only in (None, "accuracy"):
        accuracy(args.seeds)
    if args.only in (None, "cost"):
        cost(args.domains, args.days)


if __name__ == "__main__":
    main()
