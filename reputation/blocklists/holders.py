"""Where the holders of each blocklist zone are kept (reputation.blocklists.shares): Redis when
the cache is Redis, else the database.

A backend stores, per zone, one entry per holder: its join number (join order), its heartbeat
counter and the limits it knows. It only stores: who is alive and what share each gets is
decided by the holders (shares.ZoneShares), which is why the two backends are this small.
Every call is bounded by short timeouts and fails with `Unavailable`, never hangs a sweep.
"""

from __future__ import annotations

import copy
import datetime as dt
import math
from collections.abc import Iterable, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Protocol

import redis
from django.db import Error, connections
from django.db.utils import load_backend
from django.utils import timezone

from config.shared_redis import SharedRedis, Unavailable, shared_redis, unavailable_on

TIMEOUT = 1.0  # each call: connect, socket and statement timeouts
# Holders nobody has heard of for this long are forgotten. Redis: a zone's hash when none of
# its holders beats (they all died). Database: any row, at the next join to its zone (a
# minute of the writer's wall clock: hosts' clocks may differ by less).
FORGET_REDIS = 10.0
FORGET_DATABASE = 60.0

Limits = tuple[int, float]  # (max_in_flight, max_qps) as the catalogue says; 0 is no limit


@dataclass(frozen=True)
class Row:
    """One holder of one zone, as the backend stores it."""

    holder: str
    seq: int  # join order
    beat: int
    in_flight: int
    qps: float


class Backend(Protocol):
    def join(self, holder: str, limits: Mapping[str, Limits], beat: int) -> None:
        """Add `holder` to each zone after every holder already there (where it is not yet)."""

    def refresh(self, holder: str, zones: list[str], beat: int) -> dict[str, list[Row]]:
        """Write `beat` into the holder's rows of `zones` (never adding one), then read every
        row of those zones."""

    def reap(self, zone: str, holder: str, beat: int) -> None:
        """Remove `holder` from `zone` if its beat is still `beat`."""

    def leave(self, holder: str, zones: list[str]) -> None:
        """Remove `holder` from `zones`."""

    def close(self) -> None: ...


def default_backend() -> Backend:
    """Redis when the default cache is Redis (CACHE_URL=redis://…), else the database."""
    shared = shared_redis()
    if shared is not None:
        return RedisBackend(shared.url, prefix=shared.prefix)
    return DatabaseBackend()


# KEYS: the join counter, then one hash per zone; ARGV: holder, beat, expiry (ms), then
# "in_flight qps" per zone. Entries are "seq beat in_flight qps".
JOIN_LUA = """
for i = 2, #KEYS do
  if redis.call('HEXISTS', KEYS[i], ARGV[1]) == 0 then
    local seq = redis.call('INCR', KEYS[1])
    redis.call('HSET', KEYS[i], ARGV[1], seq .. ' ' .. ARGV[2] .. ' ' .. ARGV[i + 2])
  end
  redis.call('PEXPIRE', KEYS[i], ARGV[3])
end
"""
# KEYS: one hash per zone; ARGV: holder, beat, expiry (ms). Beat, then read every zone.
REFRESH_LUA = """
local rosters = {}
for i = 1, #KEYS do
  local mine = redis.call('HGET', KEYS[i], ARGV[1])
  if mine then
    local seq, limits = string.match(mine, '^(%d+) %d+ (.*)$')
    redis.call('HSET', KEYS[i], ARGV[1], seq .. ' ' .. ARGV[2] .. ' ' .. limits)
    redis.call('PEXPIRE', KEYS[i], ARGV[3])
  end
  rosters[i] = redis.call('HGETALL', KEYS[i])
end
return rosters
"""
# KEYS: the zone's hash; ARGV: holder, beat.
REAP_LUA = """
local entry = redis.call('HGET', KEYS[1], ARGV[1])
if entry and string.match(entry, '^%d+ (%d+) ') == ARGV[2] then
  redis.call('HDEL', KEYS[1], ARGV[1])
end
"""


class RedisBackend:
    """Holders in one Redis hash per zone (field: holder; value: "seq beat in_flight qps"),
    changed by Lua scripts, each atomic. A hash nobody has beaten for `forget` seconds (every
    holder dead) expires. The keys share one hash tag, so the scripts run on a cluster too."""

    def __init__(
        self, url: str, *, prefix: str = "", timeout: float = TIMEOUT, forget: float = FORGET_REDIS
    ):
        shared = SharedRedis(url, prefix)
        self.errors = (redis.RedisError, OSError)
        self.client = shared.client(timeout)
        self.prefix = shared.key("pw:{shares}")
        self.forget_ms = int(forget * 1000)
        self._join = self.client.register_script(JOIN_LUA)
        self._refresh = self.client.register_script(REFRESH_LUA)
        self._reap = self.client.register_script(REAP_LUA)

    def key(self, zone: str) -> str:
        return f"{self.prefix}:zone:{zone}"

    def join(self, holder: str, limits: Mapping[str, Limits], beat: int) -> None:
        keys = [f"{self.prefix}:joins", *map(self.key, limits)]
        args = [holder, beat, self.forget_ms, *(f"{i} {q!r}" for i, q in limits.values())]
        with unavailable_on(*self.errors):
            self._join(keys=keys, args=args)

    def refresh(self, holder: str, zones: list[str], beat: int) -> dict[str, list[Row]]:
        with unavailable_on(*self.errors):
            rosters = self._refresh(
                keys=[self.key(z) for z in zones], args=[holder, beat, self.forget_ms]
            )
        return {zone: self.rows(flat) for zone, flat in zip(zones, rosters, strict=True)}

    @staticmethod
    def rows(flat: list[bytes]) -> list[Row]:
        rows = []
        for holder, entry in zip(flat[::2], flat[1::2], strict=True):
            seq, beat, in_flight, qps = entry.split()
            rows.append(Row(holder.decode(), int(seq), int(beat), int(in_flight), float(qps)))
        return rows

    def reap(self, zone: str, holder: str, beat: int) -> None:
        with unavailable_on(*self.errors):
            self._reap(keys=[self.key(zone)], args=[holder, beat])

    def leave(self, holder: str, zones: list[str]) -> None:
        with unavailable_on(*self.errors):
            pipe = self.client.pipeline(transaction=False)
            for zone in zones:
                pipe.hdel(self.key(zone), holder)
            pipe.execute()

    def close(self) -> None:
        self.client.close()


class DatabaseBackend:
    """Holders as `reputation.ZoneHolder` rows (the id is the join order), written through a
    connection of this backend's own: short timeouts, and each statement committed at once
    whatever transaction the caller is in (a heartbeat inside it would be seen by nobody).

    `database` is a Django DATABASES entry; the default database's when None."""

    def __init__(
        self,
        database: dict | None = None,
        *,
        timeout: float = TIMEOUT,
        forget: float = FORGET_DATABASE,
    ):
        from reputation.models import ZoneHolder  # not at import: the app registry may not be ready

        self.database, self.timeout, self.forget = database, timeout, forget
        self.table = ZoneHolder._meta.db_table
        self.wrapper = None

    def join(self, holder: str, limits: Mapping[str, Limits], beat: int) -> None:
        now = timezone.now()
        stale = now - dt.timedelta(seconds=self.forget)
        rows = [(zone, holder, beat, i, q, self._when(now)) for zone, (i, q) in limits.items()]
        with self._cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {self.table} WHERE zone IN ({self._marks(limits)}) AND beat_at < %s",
                [*limits, self._when(stale)],
            )
            cursor.executemany(
                f"INSERT INTO {self.table} (zone, holder, beat, in_flight, qps, beat_at) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (zone, holder) DO NOTHING",
                rows,
            )

    def refresh(self, holder: str, zones: list[str], beat: int) -> dict[str, list[Row]]:
        marks = self._marks(zones)
        rosters: dict[str, list[Row]] = {zone: [] for zone in zones}
        with self._cursor() as cursor:
            cursor.execute(  # committed before the read below (autocommit)
                f"UPDATE {self.table} SET beat = %s, beat_at = %s "
                f"WHERE holder = %s AND zone IN ({marks})",
                [beat, self._when(timezone.now()), holder, *zones],
            )
            cursor.execute(
                f"SELECT zone, holder, id, beat, in_flight, qps FROM {self.table} "
                f"WHERE zone IN ({marks}) ORDER BY id",
                zones,
            )
            for zone, *row in cursor.fetchall():
                rosters[zone].append(Row(*row))
        return rosters

    def reap(self, zone: str, holder: str, beat: int) -> None:
        with self._cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {self.table} WHERE zone = %s AND holder = %s AND beat = %s",
                [zone, holder, beat],
            )

    def leave(self, holder: str, zones: list[str]) -> None:
        with self._cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {self.table} WHERE holder = %s AND zone IN ({self._marks(zones)})",
                [holder, *zones],
            )

    def close(self) -> None:
        if self.wrapper is not None:
            with suppress(Error):
                self.wrapper.close()
            self.wrapper = None

    @staticmethod
    def _marks(values: Iterable) -> str:
        return ", ".join("%s" for _ in values)

    def _when(self, moment):
        return self._connection().ops.adapt_datetimefield_value(moment)

    @contextmanager
    def _cursor(self):
        try:
            with self._connection().cursor() as cursor:
                yield cursor
        except Error as exc:
            self.close()  # a new connection next time
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    def _connection(self):
        if self.wrapper is None:
            database = copy.deepcopy(self.database or connections["default"].settings_dict)
            short_waits(database, self.timeout)
            self.wrapper = load_backend(database["ENGINE"]).DatabaseWrapper(database, "shares")
            self.wrapper.inc_thread_sharing()  # created lazily: close() may come from elsewhere
        return self.wrapper


def short_waits(database: dict, timeout: float) -> None:
    """Bound every wait of a connection with `database`'s settings to about `timeout`."""
    options = database.setdefault("OPTIONS", {})
    ms = int(timeout * 1000)
    if database["ENGINE"].endswith("sqlite3"):
        options["timeout"] = timeout  # for the write lock
    elif database["ENGINE"].endswith("postgresql"):
        options["connect_timeout"] = max(2, math.ceil(timeout))  # libpq's minimum is 2
        options["tcp_user_timeout"] = 2 * ms
        waits = f"-c statement_timeout={ms} -c lock_timeout={ms}"
        options["options"] = f"{options.get('options', '')} {waits}".strip()
