"""Reading Postfix's log into delivery counts: from where the last run stopped, in batches,
each batch one transaction of additive upserts (like the routing counters), its position saved
with it, so a crash re-reads at most one batch and never counts a line twice."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import BinaryIO

from django.conf import settings
from django.db import transaction

from reputation.deliveries import classify, logline
from reputation.models import LogPosition
from reputation.models.deliveries import KEY
from routing.counters import upsert
from routing.models import PoolAddress

BATCH_LINES = 20_000
MINUTE_TABLE, HOUR_TABLE = "reputation_deliverycount", "reputation_deliveryhourly"


@dataclass
class Totals:
    lines: int = 0
    attempts: int = 0
    unattributed: int = 0
    outcomes: Counter = field(default_factory=Counter)


class Classifier:
    """One log line to its count key (minute, *KEY), with the pools and providers cached."""

    def __init__(self, zone: tzinfo = UTC, now: datetime | None = None):
        self.zone, self.now = zone, now
        self.pools = dict(PoolAddress.objects.values_list("address", "pool__name"))
        self.extra = classify.parse_extra(getattr(settings, "POOLWARDEN_PROVIDERS", ""))
        self.providers: dict[tuple[str, str], str] = {}

    def key(self, line: str, now: datetime | None = None) -> tuple | None:
        attempt = logline.parse(line, now=now or self.now, zone=self.zone)
        if attempt is None:
            return None
        reply_class, zone = classify.reply_class(attempt.status, attempt.dsn, attempt.text)
        where = (attempt.relay_host, attempt.recipient_domain)
        provider = self.providers.get(where)
        if provider is None:
            provider = classify.provider(*where, self.extra)[:255]
            if len(self.providers) < 100_000:
                self.providers[where] = provider
        minute = attempt.at.replace(second=0, microsecond=0)
        pool = self.pools.get(attempt.address, "")
        outcome = classify.outcome(attempt.status)[:16]
        return (minute, attempt.address, pool, provider, outcome, reply_class, zone[:255])


def count(lines: Iterable[bytes], classifier: Classifier, totals: Totals) -> Counter:
    counts: Counter = Counter()
    now = classifier.now or datetime.now(UTC)
    for raw in lines:
        totals.lines += 1
        if b"status=" not in raw:  # most lines are no delivery attempt
            continue
        key = classifier.key(raw.decode("utf-8", "replace"), now)
        if key is None:
            continue
        totals.attempts += 1
        totals.unattributed += not key[1]
        totals.outcomes[key[4]] += 1
        counts[key] += 1
    return counts


def store(counts: Counter) -> None:
    upsert(MINUTE_TABLE, ("minute", *KEY), counts)
    hours: Counter = Counter()
    for key, n in counts.items():
        hours[(key[0].replace(minute=0), *key[1:])] += n
    upsert(HOUR_TABLE, ("hour", *KEY), hours)


def batches(stream: BinaryIO, size: int = BATCH_LINES) -> Iterator[tuple[list[bytes], int]]:
    """Complete lines in batches, with the offset after each batch; a last line without its
    newline (still being written) is left for the next read."""
    batch: list[bytes] = []
    offset = stream.tell()
    for raw in iter(stream.readline, b""):
        if not raw.endswith(b"\n"):
            break
        batch.append(raw)
        offset += len(raw)
        if len(batch) >= size:
            yield batch, offset
            batch = []
    if batch:
        yield batch, offset


def read_file(path: str, classifier: Classifier, totals: Totals) -> int:
    """Read `path` from its saved position (the start if the file was rotated or truncated);
    returns the new offset."""
    position, _ = LogPosition.objects.get_or_create(path=path)
    with open(path, "rb") as stream:
        stat = os.fstat(stream.fileno())
        if position.inode != stat.st_ino or position.offset > stat.st_size:
            position.inode, position.offset = stat.st_ino, 0  # a new file, or truncated
        stream.seek(position.offset)
        for batch, offset in batches(stream):
            counts = count(batch, classifier, totals)
            with transaction.atomic():
                store(counts)
                position.offset = offset
                position.save(update_fields=["inode", "offset", "updated"])
        return position.offset


def read_stream(stream: BinaryIO, classifier: Classifier, totals: Totals) -> None:
    """Read a stream (standard input) to its end; no position is kept."""
    for batch, _ in batches(stream):
        counts = count(batch, classifier, totals)
        with transaction.atomic():
            store(counts)
