"""Each blocklist's limits (queries in flight, queries per second) divided among the sweepers
working on it at the moment, in every process and on every host.

A sweep runs in chunks on any number of workers, and each chunk's sweeper keeps to the limits
it is given; `ZoneShares` gives it this process's share instead of the whole limit, so that
all of them together stay inside the catalogue's numbers.

- **Holders.** A `ZoneShares` is one *holder*. It joins the zones it is about to ask (with the
  limits it knows), writes a heartbeat every `period` seconds while its sweeper calls
  `current()`, and leaves a zone when `done(zone)` or `close()` says so. The backend gives
  every join a number; join order decides who gets the odd queries.
- **Shares.** Each of the `n` live holders of a zone gets `limit // n` queries in flight, plus
  one for the first `limit % n` in join order, so the shares add up to exactly the limit (a
  share of 0 waits its turn); and `limit / n` queries per second. When holders know different
  limits (the catalogue changed mid-sweep), the smallest applies. A limit of 0 is no limit; a
  zone with no limit at all is not shared, nothing is written for it.
- **Death.** A holder is dead when its heartbeat counter has not changed for `ttl` seconds, as
  each reader sees it on its own monotonic clock (no two hosts' clocks are compared); the
  reader then removes it, unless it has beaten meanwhile (a reader counts every holder it
  finds as alive until it has watched it that long). Its share goes to the others at their
  next refresh, as does the share of a holder that leaves.
- **Newcomers wait.** A holder that joins sends nothing to the zone until every live holder it
  found there has beaten again (each refresh writes the heartbeat, then reads the zone, so a
  beat after our join proves that holder has counted us and cut its share), then `drain`
  seconds more for the queries sent under the old shares to be answered. A holder alone in a
  zone starts at once. A holder that finds itself removed (it could not beat for `ttl`) joins
  again, at the end, and waits like any newcomer.
- **Backends** (reputation/blocklists/holders.py). Redis when the cache is Redis
  (`CACHE_URL=redis://…`), else the database (`reputation.ZoneHolder` rows, through a
  connection of its own, outside any transaction of the caller that could hide heartbeats).
- **Failing safe.** When the backend cannot be reached, every shared zone falls back to the
  share of one holder among `max(2, n)` (`n` as last seen), at least one query in flight so
  that the sweep goes on, never to no limit; a warning is logged once, and the backend is
  tried again every `retry` seconds.

What this guarantees: the holders that are sending never hold more than a zone's limit
between them, and never send faster than its rate (each sweeper paces itself), as long as the
backend answers and every sweeper calls `current()` more often than every `ttl` seconds.
Past that: a query slower than `drain` may overlap a newcomer's; a process paused for more
than `ttl` may send on its old grant until its next `current()`; and a holder cut off from a
backend the others still reach sends on top of them at its fallback share.
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from reputation.blocklists.holders import Backend, Limits, Row, Unavailable, default_backend
from reputation.blocklists.sweeper import Grant

logger = logging.getLogger(__name__)

PERIOD = 0.5  # seconds between heartbeats
TTL = 5.0  # a holder whose heartbeat has not changed for this long is dead
DRAIN = 0.5  # a newcomer's wait, once every holder has seen it, for the old shares' queries
RETRY = 2.0  # seconds between attempts while the backend is unavailable


WAIT = Grant(0, 0.0)


def in_flight_share(limit: int, holders: int, index: int) -> float:
    """The share of the holder at `index` (join order) of `limit` queries in flight."""
    if not limit:
        return math.inf
    return limit // holders + (index < limit % holders)


def qps_share(limit: float, holders: int) -> float:
    return limit / holders if limit else math.inf


def smallest_limit(limits: Iterable[float]) -> float:
    """The smallest limit that is one (0 when none is: no limit)."""
    return min((limit for limit in limits if limit), default=0)


def zone_limits(live: list[Row]) -> Limits:
    """The limits that hold for a zone: the smallest any of its live holders knows."""
    return int(smallest_limit(r.in_flight for r in live)), smallest_limit(r.qps for r in live)


def grant_of(live: list[Row], holder: str) -> Grant:
    """`holder`'s grant among the `live` holders of a zone (`holder` among them)."""
    ordered = sorted(live, key=lambda row: row.seq)
    index = next(i for i, row in enumerate(ordered) if row.holder == holder)
    in_flight, qps = zone_limits(live)
    return Grant(in_flight_share(in_flight, len(live), index), qps_share(qps, len(live)))


def fallback_grant(limits: Limits, holders: int) -> Grant:
    """The grant while the backend is unavailable: one holder's share among max(2, holders),
    at least one query in flight."""
    in_flight, qps = limits
    n = max(2, holders)
    return Grant(max(1, in_flight // n) if in_flight else math.inf, qps / n if qps else math.inf)


def new_holder_id() -> str:
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class _Zone:
    """One shared zone as this holder sees it."""

    configured: Limits  # this holder's, from the catalogue
    limits: Limits  # the zone's: the smallest any live holder knows, as last seen
    joined: bool = False
    settled: bool = False
    waiting: dict[str, int] | None = None  # holder -> beat: must beat again before we send
    drained_at: float | None = None  # then we send from this time on
    seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # holder -> beat, since
    holders: int = 1  # live holders at the last refresh
    grant: Grant = WAIT

    def rejoin(self) -> None:
        self.joined = self.settled = False
        self.waiting = self.drained_at = None
        self.grant = WAIT


class ZoneShares:
    """This process's shares of `limits` (zone -> (max_in_flight, max_qps)); see the module
    docstring. Not thread-safe: one sweeper uses it."""

    def __init__(
        self,
        limits: Mapping[str, Limits],
        backend: Backend | None = None,
        *,
        holder: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        period: float = PERIOD,
        ttl: float = TTL,
        drain: float = DRAIN,
        retry: float = RETRY,
    ):
        self.holder = holder or new_holder_id()
        own = {zone: (int(i), float(q)) for zone, (i, q) in limits.items()}
        self.zones = {zone: _Zone(pair, pair) for zone, pair in own.items() if any(pair)}
        self.free = {zone for zone in limits if zone not in self.zones}  # no limit: not shared
        self._backend, self.owns_backend = backend, backend is None
        self.clock, self.sleep = clock, sleep
        self.period, self.ttl, self.drain, self.retry = period, ttl, drain, retry
        self.beat = 0
        self.next_refresh = -math.inf
        self.failing = False

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = default_backend()
        return self._backend

    def __enter__(self) -> ZoneShares:
        self.join()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def join(self, *, wait: bool = True) -> None:
        """Join every shared zone; with `wait`, return once this process may send to all of
        them: at once when alone, else when the others have seen it (about `period + drain`),
        or at once with fallback shares when the backend is unavailable."""
        self.next_refresh = -math.inf
        self.current()
        while wait and not self.failing and not all(z.settled for z in self.zones.values()):
            self.sleep(max(0.0, self.next_refresh - self.clock()))
            self.current()

    def current(self) -> dict[str, Grant]:
        """This process's grant for each zone it has not finished; refreshed when due (a
        heartbeat every `period` seconds, more often while it waits to start)."""
        if self.zones:
            now = self.clock()
            if now >= self.next_refresh:
                self._refresh(now)
        grants = {zone: state.grant for zone, state in self.zones.items()}
        grants.update((zone, Grant()) for zone in self.free)
        return grants

    def done(self, zone: str) -> None:
        """This process has nothing left to ask of `zone`, nothing in flight either: its share
        goes to the others at their next refresh."""
        self.free.discard(zone)
        state = self.zones.pop(zone, None)
        if state is not None and state.joined and not self.failing:
            try:
                self.backend.leave(self.holder, [zone])
            except Unavailable as exc:  # the row is beaten no more: it expires
                self._unavailable(exc, self.clock())

    def close(self) -> None:
        """Leave every zone (and close the backend this object opened)."""
        for zone in list(self.zones):
            self.done(zone)
        self.free.clear()
        if self.owns_backend and self._backend is not None:
            self._backend.close()

    def _refresh(self, now: float) -> None:
        self.beat += 1
        try:
            joining = {z: state.configured for z, state in self.zones.items() if not state.joined}
            if joining:
                self.backend.join(self.holder, joining, self.beat)
                for zone in joining:
                    self.zones[zone].joined = True
            rosters = self.backend.refresh(self.holder, list(self.zones), self.beat)
            if self.failing:
                self._recovered()
            for zone, rows in rosters.items():
                self._update(zone, self.zones[zone], rows, now)
        except Unavailable as exc:
            self._unavailable(exc, now)
            return
        settling = not all(state.settled for state in self.zones.values())
        self.next_refresh = now + (self.period / 5 if settling else self.period)

    def _update(self, zone: str, state: _Zone, rows: list[Row], now: float) -> None:
        mine = next((row for row in rows if row.holder == self.holder), None)
        if mine is None:  # removed while it could not beat: join again, as a newcomer
            state.rejoin()
            return
        present = {row.holder for row in rows}
        state.seen = {h: seen for h, seen in state.seen.items() if h in present}
        others = [row for row in rows if row.holder != self.holder]
        live = [mine, *(row for row in others if self._alive(zone, state, row, now))]
        state.holders = len(live)
        state.limits = zone_limits(live)
        if not state.settled:
            self._settle(state, {row.holder: row.beat for row in live[1:]}, now)
        state.grant = grant_of(live, self.holder) if state.settled else WAIT

    def _alive(self, zone: str, state: _Zone, row: Row, now: float) -> bool:
        """False for a holder whose beat has not changed for `ttl` (it is removed)."""
        beat, since = state.seen.get(row.holder, (None, now))
        if beat != row.beat:
            state.seen[row.holder] = (row.beat, now)
            return True
        if now - since < self.ttl:
            return True
        self.backend.reap(zone, row.holder, row.beat)
        del state.seen[row.holder]
        return False

    def _settle(self, state: _Zone, others: dict[str, int], now: float) -> None:
        """Wait for every holder found at the first read after joining to beat again (or go),
        then `drain` seconds; alone, start at once."""
        if state.waiting is None:
            state.waiting = dict(others)
            state.drained_at = None if others else now
        state.waiting = {h: beat for h, beat in state.waiting.items() if others.get(h) == beat}
        if state.drained_at is None and not state.waiting:
            state.drained_at = now + self.drain
        state.settled = state.drained_at is not None and now >= state.drained_at

    def _unavailable(self, exc: Exception, now: float) -> None:
        if not self.failing:
            logger.warning(
                "blocklist limits cannot be shared with other workers (%s): this sweeper "
                "keeps to one share in max(2, holders) until the backend answers again",
                exc,
            )
        self.failing = True
        for state in self.zones.values():
            state.grant = fallback_grant(state.limits, state.holders)
        self.next_refresh = now + self.retry

    def _recovered(self) -> None:
        logger.info("blocklist limits are shared with other workers again")
        self.failing = False
        for state in self.zones.values():
            # Others could not beat either: judge them from now on, not from before.
            state.seen.clear()


def shares_for(limits: Mapping[str, Limits], **options) -> ZoneShares:
    """Shares of `limits` on the backend the settings choose (options: see ZoneShares)."""
    return ZoneShares(limits, **options)
