"""Per-minute aggregates of routing decisions and DSNs, counted in memory and flushed to the
database in batches with upserts that add to what other processes wrote.

Each flush adds the same counts to the hourly tables too (RoutingHourly, reputation's
DSNHourly, and DSNTotal per pool only) and RoutingDaily: they hold every hour (and day) from
the first, so charts over weeks and years read hours or days only, and the per-minute rows can
simply expire (reputation.tasks.roll_up_dsn_counts). Spam scores are counted per day.

Nothing is written per message. A failed flush keeps the counts for the next one.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import Counter
from datetime import UTC, datetime

from django.db import connection, transaction

from routing.facts import Decision, MessageFacts
from routing.models import (
    AddressCount,
    DSNCount,
    DSNSample,
    DSNTotal,
    RoutingCount,
    RoutingDaily,
    ScoreCount,
    score_bin,
)

logger = logging.getLogger(__name__)

# The upsert keys are the models' unique constraints.
ROUTING_KEY = tuple(RoutingCount._meta.constraints[0].fields)
DSN_KEY = tuple(DSNCount._meta.constraints[0].fields)
ADDRESS_KEY = tuple(AddressCount._meta.constraints[0].fields)
SCORE_KEY = tuple(ScoreCount._meta.constraints[0].fields)
ROUTING_HOURLY_KEY = ("hour", *ROUTING_KEY[1:])
DSN_HOURLY_KEY = ("hour", *DSN_KEY[1:])
DSN_HOURLY_TABLE = "reputation_dsnhourly"  # reputation.DSNHourly, the same dimensions by hour
DSN_TOTAL_KEY = tuple(DSNTotal._meta.constraints[0].fields)
ROUTING_DAILY_KEY = tuple(RoutingDaily._meta.constraints[0].fields)


def minute_of(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(second=0, microsecond=0)


SAMPLES_PER_FLUSH = 200  # DSN recipients kept as evidence per flush interval and process
ROUTED_IDS_PER_GENERATION = 100_000  # Message-IDs remembered (two generations, ~10 MB)


class Counters:
    """In-memory counts of one process, plus a bounded sample of DSNs kept as evidence for
    spike causes, and the recent Message-IDs routed here (to tell backscatter: DSNs about
    mail this service never sent)."""

    def __init__(self, clock=lambda: datetime.now(UTC), seed: int | None = None):
        self.clock = clock
        self.lock = threading.Lock()
        self.routing: Counter[tuple] = Counter()
        self.dsn: Counter[tuple] = Counter()
        self.addresses: Counter[tuple] = Counter()  # (hour, source address)
        self.scores: Counter[tuple] = Counter()  # (day, pool, score bin)
        self.samples: list[dict] = []
        self.dsn_seen = 0  # DSN recipients since the last flush, for reservoir sampling
        self.random = random.Random(seed)
        self.routed_ids: tuple[set[int], set[int]] = (set(), set())

    def record(self, facts: MessageFacts, decision: Decision) -> None:
        minute = minute_of(self.clock())
        source = facts.source[:255]
        with self.lock:
            reasons = "+".join(sorted(decision.reasons)) or "none"
            self.routing[(minute, decision.pool, reasons, source)] += 1
            hour = minute.replace(minute=0)
            if decision.source_ip:
                self.addresses[(hour, decision.source_ip)] += 1
            if decision.spam_score is not None:
                day = hour.replace(hour=0)
                self.scores[(day, decision.pool, score_bin(decision.spam_score))] += 1
            if not facts.is_dsn:
                self.remember_routed(facts.message_id)
                return
            for key in dsn_keys(facts, decision, minute, source):
                self.dsn[key] += 1
            for sample in dsn_samples(facts, decision, minute, source):
                self.keep_sample(sample)

    def remember_routed(self, message_id: str) -> None:
        if not message_id:
            return
        current, previous = self.routed_ids
        if len(current) >= ROUTED_IDS_PER_GENERATION:
            current, previous = set(), current
            self.routed_ids = (current, previous)
        current.add(id_hash(message_id))

    def routed_here(self, message_id: str) -> bool | None:
        """Whether a message with this Message-ID was routed by this process (None: no ID)."""
        if not message_id:
            return None
        digest = id_hash(message_id)
        return any(digest in generation for generation in self.routed_ids)

    def keep_sample(self, sample: dict) -> None:
        # Reservoir sampling: every DSN recipient of the interval is equally likely to be kept.
        self.dsn_seen += 1
        sample["routed_by_us"] = self.routed_here(sample.pop("original_message_id"))
        if len(self.samples) < SAMPLES_PER_FLUSH:
            self.samples.append(sample)
        else:
            slot = self.random.randrange(self.dsn_seen)
            if slot < SAMPLES_PER_FLUSH:
                self.samples[slot] = sample

    def drain(self) -> tuple[Counter, Counter, Counter, Counter, list[dict]]:
        with self.lock:
            drained = self.routing, self.dsn, self.addresses, self.scores, self.samples
            self.routing, self.dsn = Counter(), Counter()
            self.addresses, self.scores = Counter(), Counter()
            self.samples, self.dsn_seen = [], 0
        return drained

    def restore(
        self, routing: Counter, dsn: Counter, addresses: Counter, scores: Counter, samples: list
    ) -> None:
        with self.lock:
            self.routing.update(routing)
            self.dsn.update(dsn)
            self.addresses.update(addresses)
            self.scores.update(scores)
            self.samples = (samples + self.samples)[:SAMPLES_PER_FLUSH]

    def pending(self) -> int:
        with self.lock:
            return sum(self.routing.values()) + sum(self.dsn.values())

    def flush(self) -> int:
        """Write the counts and samples; returns how many rows were written. On a database
        error everything is kept for the next flush and the error is raised."""
        drained = self.drain()
        routing, dsn, addresses, scores, samples = drained
        if not routing and not dsn and not samples:
            return 0
        try:
            with transaction.atomic():
                upsert("routing_routingcount", ROUTING_KEY, routing)
                upsert("routing_routinghourly", ROUTING_HOURLY_KEY, by_hour(routing))
                upsert("routing_routingdaily", ROUTING_DAILY_KEY, by_day(routing, keep=2))
                upsert("routing_dsncount", DSN_KEY, dsn)
                upsert(DSN_HOURLY_TABLE, DSN_HOURLY_KEY, by_hour(dsn))
                upsert("routing_dsntotal", DSN_TOTAL_KEY, by_hour(dsn, keep=1))
                upsert("routing_addresscount", ADDRESS_KEY, addresses)
                upsert("routing_scorecount", SCORE_KEY, scores)
                DSNSample.objects.bulk_create(DSNSample(**sample) for sample in samples)
        except Exception:
            self.restore(*drained)
            raise
        return sum(map(len, drained))


def by_hour(counts: Counter, keep: int | None = None) -> Counter:
    """Per-minute counts (the minute first in each key) summed per hour, keeping the first
    `keep` other parts of the key (all by default)."""
    hours: Counter = Counter()
    for key, n in counts.items():
        hours[(key[0].replace(minute=0), *key[1:][:keep])] += n
    return hours


def by_day(counts: Counter, keep: int) -> Counter:
    """Per-minute counts summed per UTC day, keeping the first `keep` other parts of the key."""
    days: Counter = Counter()
    for key, n in counts.items():
        days[(key[0].replace(hour=0, minute=0), *key[1 : 1 + keep])] += n
    return days


def id_hash(message_id: str) -> int:
    normalized = message_id.strip().strip("<>").lower().encode("utf-8", "surrogateescape")
    return int.from_bytes(hashlib.blake2b(normalized, digest_size=8).digest(), "big")


def dsn_samples(facts: MessageFacts, decision: Decision, minute, source: str) -> list[dict]:
    report = facts.dsn
    base = {
        "minute": minute,
        "pool": decision.pool,
        "source": source,
        "recipient": (facts.rcpt_to[0] if facts.rcpt_to else "")[:255],
        "reporting_mta": (report.reporting_mta if report else "")[:255],
        "original_message_id": report.original_message_id if report else "",
    }
    if not report or not report.recipients:
        return [base | {"original_recipient": "", "status": "", "diagnostic": ""}]
    return [
        base
        | {
            "original_recipient": r.final_recipient[:255],
            "status": r.status[:16],
            "diagnostic": r.diagnostic[:500],
        }
        for r in report.recipients[:20]
    ]


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
