"""The Redis that every process and host shares, when there is one: the default cache's
server (CACHE_URL=redis://…). State that several processes keep together, which is not a
cache entry (the holders of each blocklist zone, the Message-IDs routed here), lives there
beside the cache, under the cache's key prefix (tests give each run and worker their own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import redis
from django.conf import settings

REDIS_SCHEMES = ("redis://", "rediss://")


@dataclass(frozen=True)
class SharedRedis:
    url: str
    prefix: str = ""  # the cache's KEY_PREFIX; "" for none

    def key(self, name: str) -> str:
        """`name` under the cache's key prefix."""
        return f"{self.prefix}:{name}" if self.prefix else name

    def client(self, timeout: float) -> redis.Redis:
        """A client whose every wait (connect, each command) is bounded by `timeout` seconds."""
        return redis.Redis.from_url(
            self.url, socket_connect_timeout=timeout, socket_timeout=timeout
        )


def shared_redis() -> SharedRedis | None:
    """The default cache's Redis when the cache is Redis, else None (use the database)."""
    cache = settings.CACHES.get("default", {})
    location = cache.get("LOCATION")
    if isinstance(location, str) and location.startswith(REDIS_SCHEMES):
        return SharedRedis(location, cache.get("KEY_PREFIX") or "")
    return None


class Unavailable(Exception):
    """The shared store (Redis, or the database standing in for it) could not be reached or
    failed: callers fall back (see reputation/blocklists/shares.py, routing/routed.py)."""


@contextmanager
def unavailable_on(*errors: type[Exception]) -> Iterator[None]:
    """Turn `errors` raised inside into `Unavailable`."""
    try:
        yield
    except errors as exc:
        raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
