"""The routing policy, pools and API tokens as the engine sees them: an immutable snapshot
that a background thread reloads from the database every few seconds. A decision only reads
the snapshot in memory, so it never waits on the database; while the database is down or
hangs, the last snapshot stays in force and says so in every decision's problems."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import close_old_connections, connection, connections

from routing.limits.rules import LimitPolicy, LimitRule, ordered

logger = logging.getLogger(__name__)

NORMAL, HIGH_RISK = "normal", "high-risk"
PICK_CACHE_SIZE = 50_000
STATEMENT_TIMEOUT = 5  # seconds a snapshot query may take on PostgreSQL
# A reload takes milliseconds; one still waiting after this many seconds is waiting on a
# database that does not answer (a hung link is only given up on after tcp_user_timeout).
RELOAD_STALLED = 3.0


@dataclass(frozen=True)
class PoolSnapshot:
    name: str
    kind: str
    addresses: tuple[str, ...]  # in rotation only
    _picks: dict = field(default_factory=dict, compare=False, repr=False)

    def pick(self, key: str) -> str | None:
        """The address for `key` (a sender domain) by rendezvous hashing: stable while the
        pool is unchanged, and when an address leaves only its own keys move."""
        if not self.addresses:
            return None
        chosen = self._picks.get(key)
        if chosen is None:
            prefix = key.encode("utf-8", "surrogateescape") + b"|"
            chosen = max(
                self.addresses,
                key=lambda ip: hashlib.blake2b(prefix + ip.encode(), digest_size=8).digest(),
            )
            if len(self._picks) >= PICK_CACHE_SIZE:
                self._picks.clear()
            self._picks[key] = chosen
        return chosen


@dataclass(frozen=True)
class SpamdSettings:
    """Where the milter asks SpamAssassin's spamd for a score (off by default)."""

    enabled: bool = False
    address: str = "127.0.0.1:783"  # host:port or unix:/path
    timeout: float = 5.0
    max_bytes: int = 512 * 1024


@dataclass(frozen=True)
class PolicySnapshot:
    spam_threshold: float = 5.0
    trusted_headers: tuple[str, ...] = ("X-Spam-Score", "X-Spam-Status")
    on_dns_failure: str = "ignore"
    fallback: str = HIGH_RISK
    pools: dict[str, PoolSnapshot] = field(default_factory=dict)  # by kind
    spamd: SpamdSettings = SpamdSettings()
    problems: tuple[str, ...] = ()
    tokens: frozenset[str] = frozenset()  # SHA-256 digests of the unrevoked API tokens
    limits: LimitPolicy = field(default_factory=LimitPolicy)

    def pool(self, kind: str) -> PoolSnapshot | None:
        return self.pools.get(kind)


def load_snapshot() -> PolicySnapshot:
    """Read the policy and, per kind, the first pool by name with its addresses in rotation."""

    from routing.models import ApiToken, Pool, PoolAddress, RoutingPolicy, SenderLimit

    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # The refresher's own connection: give up on a statement after a few seconds (sweeps
        # and migrations, on other connections, may take longer).
        with connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}s'")

    policy = RoutingPolicy.load()
    pools = {}
    for pool in Pool.objects.order_by("name"):
        if pool.kind in pools:
            continue
        active = PoolAddress.objects.filter(PoolAddress.in_rotation_q(), pool=pool).order_by("id")
        addresses = tuple(active.values_list("address", flat=True))
        pools[pool.kind] = PoolSnapshot(pool.name, pool.kind, addresses)
    return PolicySnapshot(
        spam_threshold=policy.spam_threshold,
        trusted_headers=tuple(policy.trusted_score_headers),
        on_dns_failure=policy.on_dns_failure,
        fallback=policy.fallback,
        pools=pools,
        spamd=SpamdSettings(
            enabled=policy.spamd_enabled,
            address=policy.spamd_address,
            timeout=policy.spamd_timeout,
            max_bytes=policy.spamd_max_bytes,
        ),
        tokens=frozenset(ApiToken.objects.filter(revoked=False).values_list("digest", flat=True)),
        limits=LimitPolicy(
            rules=ordered([limit_rule(row) for row in SenderLimit.objects.all()]),
            internal_domains=tuple(d.lower().rstrip(".") for d in policy.internal_domains),
            identity=policy.sender_identity,
            on_store_failure=policy.on_limit_store_failure,
        ),
    )


def limit_rule(row) -> LimitRule:
    return LimitRule(
        match=row.match,
        external_per_hour=row.external_per_hour,
        internal_per_hour=row.internal_per_hour,
        per_day=row.per_day,
        high_risk_per_hour=row.high_risk_per_hour,
        action=row.action,
    )


class PolicyUnavailable(RuntimeError):
    """No snapshot was ever loaded in this process (the database was unreachable since it
    started): nothing can be routed, the message must wait (4xx / 503)."""


class SnapshotCache:
    """Hands out the current snapshot without waiting. `start()` runs a thread that reloads
    it every `refresh` seconds (and at once after `invalidate()`); without that thread (tests,
    one-shot commands) `get()` reloads a snapshot that is due itself. Only the very first load
    is waited for; when it fails, `get()` raises `PolicyUnavailable` until one succeeds."""

    def __init__(self, loader=load_snapshot, refresh: float = 10.0, clock=time.monotonic):
        self.loader, self.refresh, self.clock = loader, refresh, clock
        self.current: PolicySnapshot | None = None
        self.good: PolicySnapshot | None = None  # the last snapshot loaded, without problems
        self.loaded_at = float("-inf")  # clock() of the last reload attempt
        self.good_at: float | None = None  # clock() of the last successful load
        self.good_time: datetime | None = None
        self.failure = ""  # why the last reload failed ("" when it did not)
        self.reloading_since: float | None = None  # clock() when the reload under way began
        self.stalled_copy: tuple[float, PolicySnapshot] | None = None
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.after_reload: list = []  # callables run in the refresher after each reload

    def get(self) -> PolicySnapshot:
        snapshot = self.fresh()
        if snapshot is not None:
            return snapshot
        with self.lock:
            if self.current is None or (self.thread is None and self.due()):
                self.reload()
        if self.current is None:
            raise PolicyUnavailable(f"routing policy unavailable: {self.failure}")
        return self.current

    def due(self) -> bool:
        return self.clock() - self.loaded_at >= self.refresh

    def fresh(self) -> PolicySnapshot | None:
        """The current snapshot when using it needs no I/O, else None."""
        if self.thread is None and self.due():
            return None
        current = self.current
        return None if current is None else self.unless_stalled(current)

    def stalled(self) -> float | None:
        """Seconds the reload under way has waited, when that is past RELOAD_STALLED."""
        since = self.reloading_since
        waited = None if since is None else self.clock() - since
        return waited if waited is not None and waited > RELOAD_STALLED else None

    def unless_stalled(self, current: PolicySnapshot) -> PolicySnapshot:
        """`current`, with a problem while a reload has been waiting on the database for
        longer than RELOAD_STALLED (made once per stall)."""
        since = self.reloading_since
        if since is None or self.stalled() is None or current is not self.good:
            return current  # no stall, or a failed reload already says so
        copy = self.stalled_copy
        if copy is None or copy[0] != since:
            copy = self.stalled_copy = (since, self.last_good("not answering (reload waiting)"))
        return copy[1]

    def last_good(self, why: str) -> PolicySnapshot:
        """The last snapshot loaded, with a problem saying why routing goes on from it."""
        problem = (
            f"routing on the policy loaded at {self.good_time:%Y-%m-%d %H:%M:%SZ}: database {why}"
        )
        return dataclasses.replace(self.good, problems=(*self.good.problems, problem))

    def age(self) -> float | None:
        """Seconds since the last successful load; None when there was none."""
        return None if self.good_at is None else self.clock() - self.good_at

    def reload(self) -> None:
        self.reloading_since = self.clock()
        try:
            snapshot = self.loader()
        except Exception as exc:  # the database may be down: keep routing on the last one
            self.failed(exc)
        else:
            if self.failure:
                logger.warning("routing policy reloaded: the database answers again")
            self.failure = ""
            self.current = self.good = snapshot
            self.good_at, self.good_time = self.clock(), datetime.now(UTC)
        finally:
            self.reloading_since = None
        self.loaded_at = self.clock()

    def failed(self, exc: Exception) -> None:
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        if not self.failure:  # once per outage, not once per attempt
            if self.good is None:
                logger.warning("routing policy not loaded, nothing to route by yet: %s", reason)
            else:
                logger.warning("routing policy not reloaded, routing on the last one: %s", reason)
        self.failure = reason
        if self.good is not None:
            self.current = self.last_good(f"unreachable ({reason})")

    def invalidate(self) -> None:
        self.loaded_at = float("-inf")
        self.wake.set()

    def start(self) -> SnapshotCache:
        """Reload in a daemon thread from now on (the first load is done here if needed)."""
        if self.thread is None:
            if self.current is None:
                self.reload()
            self.thread = threading.Thread(target=self.run, name="policy-refresh", daemon=True)
            self.thread.start()
        return self

    def run(self) -> None:
        while not self.stopping.is_set():
            self.wake.wait(self.refresh if self.current is not None else min(self.refresh, 2.0))
            self.wake.clear()
            if self.stopping.is_set():
                return
            close_old_connections()  # a connection broken by an outage is replaced
            self.reload()
            if self.failure:
                connections.close_all()  # this thread's, so the next attempt connects afresh
            for hook in self.after_reload:
                try:
                    hook()
                except Exception as exc:  # the database may be down: try again next time
                    logger.debug("after policy reload: %s", exc)

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None:
            self.thread.join(timeout=5)
            self.thread = None
        self.stopping.clear()
