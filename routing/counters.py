"""Per-minute aggregates of routing decisions and DSNs, counted in memory and flushed to the
database in batches with upserts that add to what other processes wrote.

Each flush adds the same counts to the hourly tables too (RoutingHourly, reputation's
DSNHourly, and DSNTotal per pool only) and RoutingDaily: they hold every hour (and day) from
the first, so charts over weeks and years read hours or days only, and the per-minute rows can
simply expire (reputation.tasks.roll_up_dsn_counts). Spam scores are counted per day.

Non-DSN messages' Message-ID hashes are collected too and written to the shared memory of
routed messages (routing.routed) with each flush, which also decides then whether each kept
DSN sample is about a message routed here (by any process, within the memory's hours).

Nothing is written per message. A failed flush keeps the counts for the next one, within a
bound: past MAX_PENDING_KEYS keys (a long database outage) the oldest minutes are merged into
hours, which still add up exactly in the hourly and daily tables but are missing from the
per-minute ones; past HARD_MAX_PENDING_KEYS new decisions are not counted, and how many is
logged. Each table's keys are written in sorted order, so that concurrent flushers lock rows
in the same order and cannot deadlock.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import connection, transaction

from routing import routed
from routing.facts import DELIVER, Decision, MessageFacts
from routing.limits import restrictions
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
# Message-ID hashes waiting for the shared memory (~70 bytes each, ~14 MB): past this, while
# it is unreachable for long, new ones are not remembered, and how many is logged.
MAX_PENDING_ROUTED = 200_000
# Pending keys before a failed flush merges the oldest minutes into hours, and before decisions
# are dropped: a key takes 250-500 bytes, so at most ~150 MB. Ten seconds of ordinary traffic
# make a few thousand keys; a day of 5,000 sources sending every minute, ~120,000 hour keys.
MAX_PENDING_KEYS = 200_000
HARD_MAX_PENDING_KEYS = 300_000


@dataclass
class Pending:
    """Counts not written yet. Minute keys start with the minute; hour keys are minute keys
    merged per hour (hour first), written to the hourly and daily tables only."""

    routing: Counter[tuple] = field(default_factory=Counter)  # (minute, pool, reasons, source)
    dsn: Counter[tuple] = field(default_factory=Counter)  # (minute, *DSNDimensions.KEY)
    routing_hours: Counter[tuple] = field(default_factory=Counter)
    dsn_hours: Counter[tuple] = field(default_factory=Counter)
    addresses: Counter[tuple] = field(default_factory=Counter)  # (hour, source address)
    scores: Counter[tuple] = field(default_factory=Counter)  # (day, pool, score bin)
    samples: list[dict] = field(default_factory=list)
    routed: set[int] = field(default_factory=set)  # Message-ID hashes of mail routed here
    limits: restrictions.Notes = field(default_factory=restrictions.Notes)  # limited senders

    def keys(self) -> int:
        return (
            self.limits.keys()
            + len(self.routing)
            + len(self.dsn)
            + len(self.routing_hours)
            + len(self.dsn_hours)
            + len(self.addresses)
            + len(self.scores)
        )

    def add(self, other: Pending) -> None:
        """Add `other`'s counts, and its samples after these, within the bound."""
        for name in ("routing", "dsn", "routing_hours", "dsn_hours", "addresses", "scores"):
            getattr(self, name).update(getattr(other, name))
        self.samples = (self.samples + other.samples)[:SAMPLES_PER_FLUSH]
        self.routed |= other.routed
        self.limits.add(other.limits)

    def merge_oldest_minutes(self, down_to: int) -> int:
        """Merge minute keys into hour keys, oldest first, until at most `down_to` keys are
        pending or none is left per minute; returns how many minute keys were merged."""
        pairs = ((self.routing, self.routing_hours), (self.dsn, self.dsn_hours))
        oldest = sorted(
            ((key, minutes, hours) for minutes, hours in pairs for key in minutes),
            key=lambda item: item[0][0],
        )
        keys, merged = self.keys(), 0
        for key, minutes, hours in oldest:
            if keys <= down_to:
                break
            hour_key = (key[0].replace(minute=0), *key[1:])
            keys -= hour_key in hours
            hours[hour_key] += minutes.pop(key)
            merged += 1
        return merged


class Counters:
    """In-memory counts of one process, plus a bounded sample of DSNs kept as evidence for
    spike causes, and the Message-IDs routed here, for the shared memory that tells
    backscatter (DSNs about mail this service never sent)."""

    def __init__(
        self,
        clock=lambda: datetime.now(UTC),
        seed: int | None = None,
        *,
        max_keys: int = MAX_PENDING_KEYS,
        hard_max_keys: int = HARD_MAX_PENDING_KEYS,
        memory: routed.RoutedMemory | None = None,
    ):
        self.clock = clock
        self.max_keys, self.hard_max_keys = max_keys, hard_max_keys
        self.lock = threading.Lock()
        self.counts = Pending()
        self.dsn_seen = 0  # DSN recipients since the last flush, for reservoir sampling
        self.random = random.Random(seed)
        self.memory = memory if memory is not None else routed.RoutedMemory()
        self.merging = False  # past max_keys since the last successful flush (warned)
        self.dropped = 0  # decisions not counted past hard_max_keys, not logged yet
        self.routed_dropped = 0  # Message-IDs not remembered past MAX_PENDING_ROUTED

    def record(self, facts: MessageFacts, decision: Decision) -> None:
        minute = minute_of(self.clock())
        source = facts.source[:255]
        routed_here = facts.message_id and not facts.is_dsn and decision.action == DELIVER
        digest = id_hash(facts.message_id) if routed_here else None
        with self.lock:
            if digest is not None:
                self.remember_routed(digest)
            if self.counts.keys() >= self.hard_max_keys:
                self.dropped += 1
                return
            self.count(facts, decision, minute, source)

    def count(self, facts: MessageFacts, decision: Decision, minute, source: str) -> None:
        counts = self.counts
        counts.limits.record(facts, decision, minute)
        if decision.action != DELIVER:  # rejected or deferred: not routed
            return
        reasons = "+".join(sorted(decision.reasons)) or "none"
        counts.routing[(minute, decision.pool, reasons, source)] += 1
        hour = minute.replace(minute=0)
        if decision.source_ip:
            counts.addresses[(hour, decision.source_ip)] += 1
        if decision.spam_score is not None:
            day = hour.replace(hour=0)
            counts.scores[(day, decision.pool, score_bin(decision.spam_score))] += 1
        if not facts.is_dsn:
            return
        for key in dsn_keys(facts, decision, minute, source):
            counts.dsn[key] += 1
        for sample in dsn_samples(facts, decision, minute, source):
            self.keep_sample(sample)

    def remember_routed(self, digest: int) -> None:
        pending = self.counts.routed
        if len(pending) < MAX_PENDING_ROUTED or digest in pending:
            pending.add(digest)
        else:
            self.routed_dropped += 1

    def keep_sample(self, sample: dict) -> None:
        # Reservoir sampling: every DSN recipient of the interval is equally likely to be kept.
        self.dsn_seen += 1
        # Whether it is about a message routed here is asked at flush time (judge_samples).
        message_id = sample.pop("original_message_id")
        sample["original_digest"] = id_hash(message_id) if message_id else None
        samples = self.counts.samples
        if len(samples) < SAMPLES_PER_FLUSH:
            samples.append(sample)
        else:
            slot = self.random.randrange(self.dsn_seen)
            if slot < SAMPLES_PER_FLUSH:
                samples[slot] = sample

    def drain(self) -> tuple[Pending, int, int]:
        """What is pending, and how many decisions and Message-IDs were dropped since the last
        drain."""
        with self.lock:
            drained, dropped, routed_dropped = self.counts, self.dropped, self.routed_dropped
            self.counts, self.dsn_seen, self.dropped, self.routed_dropped = Pending(), 0, 0, 0
        return drained, dropped, routed_dropped

    def restore(self, pending: Pending) -> None:
        """Take back counts a flush could not write. Merging, when they are too many, takes
        a while (about a second per 100,000 keys): it is done here, in the flushing thread, without
        holding the lock that routing waits for."""
        if pending.keys() > self.max_keys:
            self.merge(pending)
        with self.lock:
            pending.add(self.counts)  # counted since the drain: usually far fewer
            self.counts = pending

    def merge(self, pending: Pending) -> None:
        """Merge the oldest minutes into hours, down to three quarters of max_keys (so that
        this is rare); warns once until a flush succeeds."""
        if not self.merging:
            self.merging = True
            logger.warning(
                "counters: more than %d keys wait for the database; merging the oldest minutes "
                "into hours (the per-minute tables will miss them, hours and days stay exact)",
                self.max_keys,
            )
        pending.merge_oldest_minutes(down_to=self.max_keys * 3 // 4)

    def pending(self) -> int:
        """Decisions and DSN recipients counted and not written yet."""
        with self.lock:
            counts = self.counts
            return sum(
                sum(c.values())
                for c in (counts.routing, counts.dsn, counts.routing_hours, counts.dsn_hours)
            )

    def flush(self) -> int:
        """Write the counts and samples, then the Message-IDs routed here; returns how many
        rows (and Message-IDs) were written. On a database error everything is kept for the
        next flush and the error is raised; Message-IDs the shared memory did not take are
        kept for the next flush, with a warning."""
        pending, dropped, routed_dropped = self.drain()
        self.warn_dropped(dropped, routed_dropped)
        if not pending.keys() and not pending.samples and not pending.routed:
            return 0
        now = self.clock()
        self.judge_samples(pending, now)
        try:
            with transaction.atomic():
                write(pending)
        except Exception:
            self.restore(pending)
            raise
        with self.lock:
            self.merging = False
        return pending.keys() + len(pending.samples) + self.save_routed(pending.routed, now)

    def judge_samples(self, pending: Pending, now: datetime) -> None:
        """Decide each new sample's routed_by_us: is its original Message-ID in the shared
        memory, or among this process's messages not written there yet?"""
        new = [s for s in pending.samples if "original_digest" in s]
        digests = {s["original_digest"] for s in new} - {None}
        known = self.memory.known(digests, now) | (digests & pending.routed) if digests else set()
        for sample in new:
            digest = sample.pop("original_digest")
            sample["routed_by_us"] = None if digest is None else digest in known

    def save_routed(self, digests: set[int], now: datetime) -> int:
        """Write `digests` to the shared memory; returns how many, 0 when it failed (they are
        then kept for the next flush)."""
        if not digests:
            return 0
        try:
            self.memory.remember(digests, now)
        except routed.Unavailable as exc:
            logger.warning("counters: routed Message-IDs kept for the next flush: %s", exc)
            self.restore(Pending(routed=digests))
            return 0
        return len(digests)

    def warn_dropped(self, dropped: int, routed_dropped: int) -> None:
        if dropped:
            logger.warning(
                "counters: %d decisions were not counted (more than %d keys waited for the "
                "database)",
                dropped,
                self.hard_max_keys,
            )
        if routed_dropped:
            logger.warning(
                "counters: %d Message-IDs were not remembered (more than %d waited for the "
                "shared memory of routed messages)",
                routed_dropped,
                MAX_PENDING_ROUTED,
            )


def write(pending: Pending) -> None:
    """Add `pending` to every table it feeds; merged hours go to the hourly and daily ones."""
    upsert("routing_routingcount", ROUTING_KEY, pending.routing)
    routing_hours = by_hour(pending.routing) + pending.routing_hours
    upsert("routing_routinghourly", ROUTING_HOURLY_KEY, routing_hours)
    upsert("routing_routingdaily", ROUTING_DAILY_KEY, by_day(routing_hours, keep=2))
    upsert("routing_dsncount", DSN_KEY, pending.dsn)
    dsn_hours = by_hour(pending.dsn) + pending.dsn_hours
    upsert(DSN_HOURLY_TABLE, DSN_HOURLY_KEY, dsn_hours)
    upsert("routing_dsntotal", DSN_TOTAL_KEY, by_hour(dsn_hours, keep=1))
    upsert("routing_addresscount", ADDRESS_KEY, pending.addresses)
    upsert("routing_scorecount", SCORE_KEY, pending.scores)
    DSNSample.objects.bulk_create(DSNSample(**sample) for sample in pending.samples)
    restrictions.write(pending.limits)


def by_hour(counts: Counter, keep: int | None = None) -> Counter:
    """Per-minute (or per-hour) counts, the time first in each key, summed per hour, keeping
    the first `keep` other parts of the key (all by default)."""
    hours: Counter = Counter()
    for key, n in counts.items():
        hours[(key[0].replace(minute=0), *key[1:][:keep])] += n
    return hours


def by_day(counts: Counter, keep: int) -> Counter:
    """Per-minute (or per-hour) counts summed per UTC day, keeping the first `keep` other
    parts of the key."""
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
        return [
            base | {"original_recipient": "", "status": "", "diagnostic": "", "refined_class": ""}
        ]
    return [
        base
        | {
            "original_recipient": r.final_recipient[:255],
            "status": r.status[:16],
            "diagnostic": r.diagnostic[:500],
            "refined_class": r.refined_class[:16],
        }
        for r in report.recipients[:20]
    ]


def dsn_keys(facts: MessageFacts, decision: Decision, minute, source: str) -> list[tuple]:
    report = facts.dsn
    recipient_domain = facts.dsn_recipient_domain[:255]
    mta = (report.reporting_mta if report else "")[:255]
    base = (minute, decision.pool, source, recipient_domain)
    if not report or not report.recipients:
        return [(*base, "", "", mta, "")]
    return [
        (
            *base,
            r.final_recipient.rpartition("@")[2][:255],
            r.status[:16],
            mta,
            r.refined_class[:16],
        )
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
    # Sorted, so that every flusher locks this table's rows in the same order: two processes
    # flushing the same keys wait for each other instead of deadlocking.
    rows = [(adapt(k[0]), *k[1:], n) for k, n in sorted(counts.items())]
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


def flush_within(counters: Counters, timeout: float) -> str | None:
    """Flush in a daemon thread, waiting at most `timeout` seconds: None when the counts were
    written, else why not, in one line. For a process about to exit: a flush that still waits
    on a hung database is left to die with it."""
    outcome: list[str | None] = []

    def run() -> None:
        try:
            counters.flush()
            outcome.append(None)
        except Exception as exc:
            outcome.append(" ".join(str(exc).split()) or type(exc).__name__)
        finally:
            connection.close()

    thread = threading.Thread(target=run, name="pw-counter-final-flush", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"the database did not answer within {timeout:g} s"
