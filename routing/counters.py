"""Per-minute aggregates of routing decisions and DSNs, counted in memory and flushed to the
database in batches with upserts that add to what other processes wrote.

Nothing is written per message. A failed flush keeps the counts for the next one.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from datetime import UTC, datetime

from django.db import connection, transaction

from routing.facts import Decision, MessageFacts

logger = logging.getLogger(__name__)

ROUTING_KEY = ("minute", "pool", "reasons", "source")
DSN_KEY = (
    "minute",
    "pool",
    "source",
    "recipient_domain",
    "original_domain",
    "status",
    "reporting_mta",
)


def minute_of(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0)


class Counters:
    def __init__(self, clock=lambda: datetime.now(UTC)):
        self.clock = clock
        self.lock = threading.Lock()
        self.routing: Counter[tuple] = Counter()
        self.dsn: Counter[tuple] = Counter()

    def record(self, facts: MessageFacts, decision: Decision) -> None:
        minute = minute_of(self.clock())
        source = facts.source[:255]
        with self.lock:
            reasons = "+".join(sorted(decision.reasons)) or "none"
            self.routing[(minute, decision.pool, reasons, source)] += 1
            if facts.is_dsn:
                for key in dsn_keys(facts, decision, minute, source):
                    self.dsn[key] += 1

    def drain(self) -> tuple[Counter, Counter]:
        with self.lock:
            routing, dsn = self.routing, self.dsn
            self.routing, self.dsn = Counter(), Counter()
        return routing, dsn

    def restore(self, routing: Counter, dsn: Counter) -> None:
        with self.lock:
            self.routing.update(routing)
            self.dsn.update(dsn)

    def pending(self) -> int:
        with self.lock:
            return sum(self.routing.values()) + sum(self.dsn.values())

    def flush(self) -> int:
        """Write the counts; returns how many rows were upserted. On a database error the
        counts are kept for the next flush and the error is raised."""
        routing, dsn = self.drain()
        if not routing and not dsn:
            return 0
        try:
            with transaction.atomic():
                upsert("routing_routingcount", ROUTING_KEY, routing)
                upsert("routing_dsncount", DSN_KEY, dsn)
        except Exception:
            self.restore(routing, dsn)
            raise
        return len(routing) + len(dsn)


def dsn_keys(facts: MessageFacts, decision: Decision, minute, source: str) -> list[tuple]:
    report = facts.dsn
    recipient_domain = facts.dsn_recipient_domain[:255]
    mta = (report.reporting_mta if report else "")[:255]
    base = (minute, decision.pool, source, recipient_domain)
    if not report or not report.recipients:
        return [(*base, "", "", mta)]
    return [
        (*base, r.final_recipient.rpartition("@")[2][:255], r.status[:16], mta)
        for r in report.recipients
    ]


def upsert(table: str, key: tuple[str, ...], counts: Counter) -> None:
    if not counts:
        return
    columns = ", ".join((*key, "count"))
    marks = ", ".join(["%s"] * (len(key) + 1))
    sql = (
        f"INSERT INTO {table} ({columns}) VALUES ({marks}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET count = {table}.count + excluded.count"
    )
    adapt = connection.ops.adapt_datetimefield_value
    rows = [(adapt(k[0]), *k[1:], n) for k, n in counts.items()]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


class Flusher:
    """Flushes `counters` every `interval` seconds in a daemon thread, and once on stop()."""

    def __init__(self, counters: Counters, interval: float = 10.0):
        self.counters, self.interval = counters, interval
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="pw-counter-flush", daemon=True)

    def start(self) -> Flusher:
        self.thread.start()
        return self

    def run(self) -> None:
        while not self.stopping.wait(self.interval):
            self.flush_once()
        connection.close()

    def flush_once(self) -> None:
        try:
            self.counters.flush()
        except Exception as exc:
            logger.warning("counters not flushed, kept for the next try: %s", exc)
            connection.close()  # reconnect next time

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(timeout=self.interval + 5)
        self.flush_once()
