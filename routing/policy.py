"""The routing policy and pools as the engine sees them: an immutable snapshot, reloaded
from the database every few seconds, never per message. While the database is down the
last snapshot stays in force."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

NORMAL, HIGH_RISK = "normal", "high-risk"
PICK_CACHE_SIZE = 50_000


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

    def pool(self, kind: str) -> PoolSnapshot | None:
        return self.pools.get(kind)


def load_snapshot() -> PolicySnapshot:
    """Read the policy and, per kind, the first pool by name with its addresses in rotation."""

    from routing.models import Pool, PoolAddress, RoutingPolicy

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
    )


class SnapshotCache:
    """Hands out the current snapshot; reloads it when older than `refresh` seconds."""

    def __init__(self, loader=load_snapshot, refresh: float = 10.0, clock=time.monotonic):
        self.loader, self.refresh, self.clock = loader, refresh, clock
        self.current: PolicySnapshot | None = None
        self.loaded_at = float("-inf")
        self.lock = threading.Lock()

    def get(self) -> PolicySnapshot:
        if self.clock() - self.loaded_at < self.refresh and self.current is not None:
            return self.current
        with self.lock:
            if self.clock() - self.loaded_at >= self.refresh or self.current is None:
                self.reload()
        return self.current

    def fresh(self) -> PolicySnapshot | None:
        """The current snapshot when it is not due for reload (no I/O), else None."""
        if self.clock() - self.loaded_at < self.refresh:
            return self.current
        return None

    def reload(self) -> None:
        try:
            self.current = self.loader()
        except Exception as exc:  # the database may be briefly down: keep routing
            logger.warning("routing policy not reloaded, keeping the last one: %s", exc)
            if self.current is None:
                self.current = PolicySnapshot(problems=(f"policy unavailable: {exc}",))
        self.loaded_at = self.clock()

    def invalidate(self) -> None:
        self.loaded_at = float("-inf")
