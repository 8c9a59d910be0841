"""The sliding windows and holds of sender limits, shared by every process and host.

- Redis, when the default cache is Redis (config.shared_redis): per sender and limit a sorted
  set of the messages in the window (member `<id>:<recipients>`, score the time in ms) and a
  running total; the sender's hold is one key expiring when the hold ends. One Lua script
  reads the hold, drops what left the windows, compares and adds: atomic, so the windows are
  exact across processes and hosts and never overshoot.
- Otherwise the database: `SenderUsage` rows in the windows and `SenderRestriction` rows as
  holds, checked and added in one transaction serialized per sender (an advisory lock on
  PostgreSQL, an IMMEDIATE transaction on SQLite).

Every call is bounded (Redis socket timeouts, PostgreSQL lock and statement timeouts, SQLite's
busy timeout); a store that fails or does not answer raises `Unavailable`, and the checker
decides what the message gets then.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

import redis
from django.db import Error, connection, transaction

from config.shared_redis import SharedRedis, shared_redis
from routing.limits.rules import BLOCK, REJECTING, WINDOWS

TIMEOUT = 0.5  # seconds: each Redis call, and a PostgreSQL lock or statement
MAX_SENDER = 255


class Unavailable(Exception):
    """The store could not be reached, failed, or did not answer in time."""


@dataclass(frozen=True)
class Hold:
    """A sender held after reaching a limit: its action applies until `until` (None: until an
    operator releases it)."""

    sender: str
    limit: str
    action: str
    count: int  # the sender's count in the window when the limit was reached
    maximum: int
    window: int  # seconds
    since: datetime
    until: datetime | None

    @property
    def rejects(self) -> bool:
        return self.action in REJECTING

    def as_json(self) -> str:
        data = {
            "limit": self.limit,
            "action": self.action,
            "count": self.count,
            "maximum": self.maximum,
            "window": self.window,
            "since": self.since.timestamp(),
            "until": self.until.timestamp() if self.until else None,
        }
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, sender: str, text: str | bytes) -> Hold:
        data = json.loads(text)
        until = data.get("until")
        return cls(
            sender=sender,
            limit=data["limit"],
            action=data["action"],
            count=int(data["count"]),
            maximum=int(data["maximum"]),
            window=int(data["window"]),
            since=datetime.fromtimestamp(data["since"], UTC),
            until=datetime.fromtimestamp(until, UTC) if until else None,
        )


@dataclass(frozen=True)
class Outcome:
    """What the store says about one message: the hold in force (one found, or one this
    message started: `new`), and the sender's counts before this message."""

    hold: Hold | None
    new: bool
    counts: dict[str, int]


def hold_for(sender, name, action, count, maximum, now: datetime) -> Hold:
    window = WINDOWS[name]
    until = None if action == BLOCK else now + timedelta(seconds=window)
    return Hold(sender, name, action, count, maximum, window, now, until)


class Store(Protocol):
    def check(
        self, sender: str, limits: dict[str, int], adds: dict[str, int], action: str, now: datetime
    ) -> Outcome:
        """The hold in force for `sender`; unless it rejects, compare each window of `limits`
        (name -> maximum) with what the message `adds`, start a hold with `action` on the
        first one it would pass, and add the message (unless that hold rejects it)."""

    def release(self, sender: str) -> None:
        """End `sender`'s hold and empty its windows."""

    def counts(self, now: datetime) -> dict[str, dict[str, int]]:
        """Every sender with something in a window: sender -> limit name -> count."""


# --- Redis ------------------------------------------------------------------------------------

CHECK = """
local now = tonumber(ARGV[1])
local member = ARGV[2] .. ':'
local hold = redis.call('GET', KEYS[1])
if hold then
  local h = cjson.decode(hold)
  if h['action'] == 'block' or h['action'] == 'block-today' then
    return {hold, 0}
  end
end
local n = (#KEYS - 1) / 2
local counts, reached = {}, 0
for i = 1, n do
  local z, t = KEYS[2 * i], KEYS[2 * i + 1]
  local base = 3 + (i - 1) * 3
  local window, max, add = tonumber(ARGV[base]), tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local cutoff = now - window
  local old = redis.call('ZRANGEBYSCORE', z, '-inf', cutoff)
  if #old > 0 then
    local gone = 0
    for _, m in ipairs(old) do gone = gone + tonumber(string.match(m, ':(%d+)$')) end
    redis.call('ZREMRANGEBYSCORE', z, '-inf', cutoff)
    if redis.call('DECRBY', t, gone) <= 0 then redis.call('DEL', t) end
  end
  counts[i] = tonumber(redis.call('GET', t) or '0')
  if reached == 0 and not hold and max >= 0 and add > 0 and counts[i] + add > max then
    reached = i
  end
end
local new = false
if reached > 0 then
  -- the count that reached the limit, kept in the hold for every later message to show
  local count = '"count":' .. counts[reached] .. ','
  hold = string.gsub(ARGV[2 + 3 * n + reached], '"count":0,', count, 1)
  local h = cjson.decode(hold)
  if h['until'] and h['until'] ~= cjson.null then
    -- relative to Redis's clock: the hosts' clocks may differ from it a little
    redis.call('SET', KEYS[1], hold, 'PX', math.floor((h['until'] - h['since']) * 1000))
  else
    redis.call('SET', KEYS[1], hold)
  end
  new = true
  if h['action'] == 'block' or h['action'] == 'block-today' then
    return {hold, reached, unpack(counts)}
  end
end
for i = 1, n do
  local z, t = KEYS[2 * i], KEYS[2 * i + 1]
  local base = 3 + (i - 1) * 3
  local window, add = tonumber(ARGV[base]), tonumber(ARGV[base + 2])
  if add > 0 then
    redis.call('ZADD', z, now, member .. add)
    redis.call('INCRBY', t, add)
    redis.call('PEXPIRE', z, window)
    redis.call('PEXPIRE', t, window)
  end
end
return {hold or false, reached, unpack(counts)}
"""


class RedisStore:
    def __init__(self, shared: SharedRedis, *, timeout: float = TIMEOUT):
        self.shared = shared
        self.client = shared.client(timeout)
        self.script = self.client.register_script(CHECK)

    def key(self, sender: str, part: str) -> str:
        return self.shared.key(f"pw:limit:{sender}:{part}")

    def check(self, sender, limits, adds, action, now) -> Outcome:
        names = list(limits)
        keys = [self.key(sender, "hold")]
        args: list = [int(now.timestamp() * 1000), uuid.uuid4().hex]
        for name in names:
            keys += [self.key(sender, f"{name}:z"), self.key(sender, f"{name}:t")]
            args += [WINDOWS[name] * 1000, limits[name], adds.get(name, 0)]
        # The hold each window would start, made here: the script only stores the one reached.
        args += [hold_for(sender, n, action, 0, limits[n], now).as_json() for n in names]
        try:
            answer = self.script(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        return self.outcome(sender, names, answer)

    def outcome(self, sender: str, names: list[str], answer: list) -> Outcome:
        raw, reached, *values = answer
        counts = dict(zip(names, map(int, values), strict=False))
        hold = Hold.from_json(sender, raw) if raw else None
        return Outcome(hold=hold, new=bool(reached), counts=counts)

    def release(self, sender: str) -> None:
        keys = [self.key(sender, "hold")]
        keys += [self.key(sender, f"{n}:{p}") for n in WINDOWS for p in ("z", "t")]
        try:
            self.client.delete(*keys)
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    def counts(self, now: datetime) -> dict[str, dict[str, int]]:
        prefix = self.shared.key("pw:limit:")
        found: dict[str, dict[str, int]] = {}
        try:
            keys = [k.decode() for k in self.client.scan_iter(match=prefix + "*:t", count=1000)]
            values = self.client.mget(keys) if keys else []
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc
        for key, value in zip(keys, values, strict=True):
            sender, _, name = key[len(prefix) : -2].rpartition(":")
            if value is not None and name in WINDOWS:
                found.setdefault(sender, {})[name] = int(value)
        return found

    def close(self) -> None:
        self.client.close()


# --- database ---------------------------------------------------------------------------------


class DatabaseStore:
    def __init__(self, *, timeout: float = TIMEOUT):
        self.timeout = timeout

    def check(self, sender, limits, adds, action, now) -> Outcome:
        try:
            with transaction.atomic():
                self.serialize(sender)
                return self.check_locked(sender, limits, adds, action, now)
        except Error as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    def serialize(self, sender: str) -> None:
        """Make concurrent checks of `sender` wait for each other, a bounded time."""
        if connection.vendor != "postgresql":
            return  # SQLite: IMMEDIATE transactions already run one at a time
        ms = int(self.timeout * 1000)
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = {ms}")
            cursor.execute(f"SET LOCAL statement_timeout = {ms}")
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [sender])

    def check_locked(self, sender, limits, adds, action, now) -> Outcome:
        from routing.models import SenderRestriction

        held = SenderRestriction.objects.active(now).filter(sender=sender).first()
        hold = held.hold() if held else None
        if hold is not None and hold.rejects:
            return Outcome(hold=hold, new=False, counts={})
        counts = self.window_counts(sender, limits, now)
        reached = None
        if hold is None:
            reached = next(
                (n for n in limits if adds.get(n, 0) > 0 and counts[n] + adds[n] > limits[n]),
                None,
            )
        if reached is not None:
            hold = hold_for(sender, reached, action, counts[reached], limits[reached], now)
            SenderRestriction.start(hold)
            if hold.rejects:
                return Outcome(hold=hold, new=True, counts=counts)
        self.add(sender, limits, adds, now)
        return Outcome(hold=hold, new=reached is not None, counts=counts)

    def window_counts(self, sender: str, names, now: datetime) -> dict[str, int]:
        from django.db.models import Sum

        from routing.models import SenderUsage

        counts = {}
        for name in names:
            since = now - timedelta(seconds=WINDOWS[name])
            rows = SenderUsage.objects.filter(sender=sender, limit=name, at__gt=since)
            counts[name] = rows.aggregate(n=Sum("count"))["n"] or 0
        return counts

    def add(self, sender: str, limits, adds, now: datetime) -> None:
        from routing.models import SenderUsage

        rows = [
            SenderUsage(sender=sender, limit=n, at=now, count=adds[n])
            for n in limits
            if adds.get(n, 0) > 0
        ]
        SenderUsage.objects.bulk_create(rows)
        # The sender's rows past the longest window go as it sends: no sweep needed.
        longest = timedelta(seconds=max(WINDOWS.values()))
        SenderUsage.objects.filter(sender=sender, at__lte=now - longest).delete()

    def release(self, sender: str) -> None:
        from routing.models import SenderUsage

        try:
            SenderUsage.objects.filter(sender=sender).delete()
        except Error as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    def counts(self, now: datetime) -> dict[str, dict[str, int]]:
        from django.db.models import Sum

        from routing.models import SenderUsage

        found: dict[str, dict[str, int]] = {}
        for name, window in WINDOWS.items():
            rows = (
                SenderUsage.objects.filter(limit=name, at__gt=now - timedelta(seconds=window))
                .values("sender")
                .annotate(n=Sum("count"))
            )
            for row in rows:
                found.setdefault(row["sender"], {})[name] = row["n"]
        return found

    def close(self) -> None:
        pass


def forget_expired(now: datetime) -> int:
    """Delete the database's usage rows older than the longest window; returns how many."""
    from routing.models import SenderUsage

    cutoff = now - timedelta(seconds=max(WINDOWS.values()))
    return SenderUsage.objects.filter(at__lte=cutoff).delete()[0]


def default_store() -> RedisStore | DatabaseStore:
    """Redis when the default cache is Redis (CACHE_URL=redis://…), else the database."""
    shared = shared_redis()
    return RedisStore(shared) if shared is not None else DatabaseStore()
