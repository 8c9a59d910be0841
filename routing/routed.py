"""The Message-IDs routed here lately, shared by every process and host and kept across
restarts: a DSN about a message this service never sent is backscatter evidence.

Only 64-bit hashes are kept (`routing.counters.id_hash`, stored signed), for
POOLWARDEN_ROUTED_MEMORY_HOURS (72): a message routed in hour H is known until H + hours + 1 h.
Where they are kept:

- Redis, when the default cache is Redis (config.shared_redis): one set per hour,
  `pw:routed:<YYYYmmddHH>` under the cache's key prefix, expiring an hour after the memory;
  about 70 bytes per message (measured: a set of 200,000 signed 64-bit members).
- Otherwise the database: `routing.RoutedMessage` rows (digest, hour), about 80-100 bytes per
  message with their two indexes on PostgreSQL; reputation's DSN roll-up task deletes the old
  ones. A message routed again keeps its first hour.

Routing never waits on either: `routing.counters` collects the hashes in memory and writes them
when it flushes, and asks at flush time about the DSN samples it keeps. When the store cannot
be reached, a small in-process memory of this process's own recent messages answers instead,
so the evidence degrades (messages routed by other processes count as not routed here) rather
than stops.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Collection, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from django.conf import settings
from django.db import Error

from config.shared_redis import SharedRedis, Unavailable, shared_redis, unavailable_on

logger = logging.getLogger(__name__)

TIMEOUT = 1.0  # each Redis call: connect and command
BATCH = 5000  # hashes per INSERT or SADD
RECENT_IDS = 50_000  # this process's own recent messages, the fallback (~5 MB)
NEVER = datetime.min.replace(tzinfo=UTC)


class Store(Protocol):
    def add(self, digests: Collection[int], hour: datetime) -> None:
        """Remember `digests` (signed) as routed in `hour`."""

    def known(self, digests: Collection[int], since: datetime, until: datetime) -> set[int]:
        """Those of `digests` (signed) remembered as routed in the hours from `since` to
        `until`."""


def hour_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def signed(digest: int) -> int:
    """An unsigned 64-bit hash as the signed 64-bit integer databases and Redis store."""
    return digest - (1 << 64) if digest >= 1 << 63 else digest


def batches(items: Iterable[int], size: int = BATCH) -> Iterator[list[int]]:
    batch: list[int] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class RedisStore:
    """One Redis set per hour of routed messages' hashes."""

    def __init__(self, shared: SharedRedis, *, hours: int | None = None, timeout: float = TIMEOUT):
        self.shared, self.hours = shared, hours  # hours: the expiry; None: the setting
        self.client = shared.client(timeout)

    def key(self, hour: datetime) -> str:
        return self.shared.key(f"pw:routed:{hour:%Y%m%d%H}")

    def add(self, digests: Collection[int], hour: datetime) -> None:
        key, ttl = self.key(hour), (memory_hours(self.hours) + 1) * 3600
        with unavailable_on(redis.RedisError, OSError):
            pipe = self.client.pipeline(transaction=False)
            for batch in batches(sorted(digests)):
                pipe.sadd(key, *batch)
            pipe.expire(key, ttl)
            pipe.execute()

    def known(self, digests: Collection[int], since: datetime, until: datetime) -> set[int]:
        wanted = list(digests)
        if not wanted:
            return set()
        hour, buckets = hour_of(since), []
        while hour <= until:
            buckets.append(self.key(hour))
            hour += timedelta(hours=1)
        with unavailable_on(redis.RedisError, OSError):
            pipe = self.client.pipeline(transaction=False)
            for key in buckets:
                pipe.smismember(key, wanted)
            answers = pipe.execute()
        return {d for i, d in enumerate(wanted) if any(answer[i] for answer in answers)}

    def close(self) -> None:
        self.client.close()


class DatabaseStore:
    """`routing.RoutedMessage` rows; a message routed again keeps its first hour."""

    def add(self, digests: Collection[int], hour: datetime) -> None:
        from routing.models import RoutedMessage

        rows = (RoutedMessage(digest=d, hour=hour) for d in sorted(digests))
        with unavailable_on(Error):
            # Sorted: concurrent flushers insert in the same order and cannot deadlock.
            RoutedMessage.objects.bulk_create(rows, batch_size=BATCH, ignore_conflicts=True)

    def known(self, digests: Collection[int], since: datetime, until: datetime) -> set[int]:
        from routing.models import RoutedMessage

        if not digests:
            return set()
        found = RoutedMessage.objects.filter(
            digest__in=list(digests), hour__gte=hour_of(since), hour__lte=until
        )
        with unavailable_on(Error):
            return set(found.values_list("digest", flat=True))

    def close(self) -> None:
        pass


def default_store() -> RedisStore | DatabaseStore:
    """Redis when the default cache is Redis (CACHE_URL=redis://…), else the database."""
    shared = shared_redis()
    return RedisStore(shared) if shared is not None else DatabaseStore()


def memory_hours(hours: int | None = None) -> int:
    return hours if hours is not None else settings.POOLWARDEN_ROUTED_MEMORY_HOURS


def forget_expired(now: datetime, hours: int | None = None) -> int:
    """Delete the database's rows past the memory (Redis sets expire by themselves); returns
    how many."""
    from routing.models import RoutedMessage

    cutoff = hour_of(now) - timedelta(hours=memory_hours(hours))
    return RoutedMessage.objects.filter(hour__lt=cutoff).delete()[0]


class RoutedMemory:
    """The shared store, and this process's own recent messages for when it cannot be reached.
    Hashes given and returned are `id_hash`'s (unsigned)."""

    def __init__(self, store: Store | None = None, *, hours: int | None = None):
        self.store = store if store is not None else default_store()
        self.hours = hours
        self.recent: dict[int, datetime] = {}  # insertion order is age order
        self.failing = False  # the store failed since it last answered (warned)

    def remember(self, digests: Collection[int], now: datetime) -> None:
        """Write `digests` as routed now; raises Unavailable (this process remembers them
        anyway, for its own lookups)."""
        hour = hour_of(now)
        for digest in digests:
            self.recent.pop(digest, None)
            self.recent[digest] = hour
        if len(self.recent) > RECENT_IDS:  # keep the newest, in one pass
            newest = itertools.islice(self.recent.items(), len(self.recent) - RECENT_IDS, None)
            self.recent = dict(newest)
        self.store.add({signed(d) for d in digests}, hour)

    def known(self, digests: Collection[int], now: datetime) -> set[int]:
        """Those of `digests` routed here within the memory: by any process when the store
        answers, else by this one."""
        until = hour_of(now)
        since = until - timedelta(hours=memory_hours(self.hours))
        mine = {d for d in digests if since <= self.recent.get(d, NEVER) <= until}
        try:
            shared = self.store.known({signed(d) for d in digests}, since, until)
        except Unavailable as exc:
            self.warn(exc)
            return mine
        self.failing = False
        return mine | {d for d in digests if signed(d) in shared}

    def warn(self, problem: Exception) -> None:
        if not self.failing:
            self.failing = True
            logger.warning(
                "routed messages: the shared memory is unavailable, DSNs are judged by this "
                "process's own messages only: %s",
                problem,
            )
