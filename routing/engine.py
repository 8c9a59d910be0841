"""The routing engine: facts in, decision out, with the sender-domain check, the policy
snapshot and the counters wired together. One engine per process (`get_engine()`)."""

from __future__ import annotations

import threading

from django.conf import settings
from django.core.cache import caches

from routing import classify
from routing.counters import Counters, Flusher
from routing.dns import DomainChecker, make_resolver
from routing.facts import Decision, MessageFacts
from routing.limits.checker import LimitChecker
from routing.message import facts_from_envelope, facts_from_message
from routing.policy import SnapshotCache


class Engine:
    def __init__(
        self,
        *,
        checker: DomainChecker,
        snapshots: SnapshotCache,
        counters: Counters,
        limits: LimitChecker | None = None,
    ):
        self.checker, self.snapshots, self.counters = checker, snapshots, counters
        self.limits = limits if limits is not None else LimitChecker()

    def route(self, facts: MessageFacts) -> Decision:
        policy = self.snapshots.get()
        lookup = self.checker.check(facts.sender_domain) if facts.sender_domain else None
        return self.decide(facts, policy, lookup)

    def route_now(self, facts: MessageFacts) -> Decision | None:
        """The decision when it needs no I/O (a policy that is not due for reload, a sender
        domain in this process's cache), else None: for event loops that must not block."""
        policy = self.snapshots.fresh()
        if policy is None or policy.limits.active:  # sender limits ask their store
            return None
        lookup = None
        if facts.sender_domain:
            lookup = self.checker.cached(facts.sender_domain)
            if lookup is None:
                return None
        return self.decide(facts, policy, lookup)

    def decide(self, facts: MessageFacts, policy, lookup) -> Decision:
        """Classify, apply the sender limits and count: the one place both `route` and
        `route_now` end."""
        decision = self.limits.apply(facts, classify.decide(facts, policy, lookup), policy)
        self.counters.record(facts, decision)
        return decision

    def route_message(self, raw: bytes, **envelope) -> tuple[MessageFacts, Decision]:
        trusted = self.snapshots.get().trusted_headers
        facts = facts_from_message(raw, trusted_headers=trusted, **envelope)
        return facts, self.route(facts)

    def route_envelope(self, **envelope) -> tuple[MessageFacts, Decision]:
        facts = facts_from_envelope(**envelope)
        return facts, self.route(facts)


def shared_cache():
    """The Django cache when it is shared between processes (Redis), else None."""
    backend = settings.CACHES["default"]["BACKEND"]
    return None if backend.endswith(("LocMemCache", "DummyCache")) else caches["default"]


def build_engine() -> Engine:
    resolver = make_resolver(settings.POOLWARDEN_NAMESERVERS, settings.POOLWARDEN_DNS_TIMEOUT)
    return Engine(
        checker=DomainChecker(
            resolver, size=settings.POOLWARDEN_DNS_CACHE_SIZE, shared=shared_cache()
        ),
        snapshots=SnapshotCache(refresh=settings.POOLWARDEN_POLICY_REFRESH),
        counters=Counters(),
    )


_engine: Engine | None = None
_flusher: Flusher | None = None
_lock = threading.Lock()


def get_engine(*, flush_in_background: bool = True) -> Engine:
    """This process's engine; the first call starts the background counter flusher and the
    policy refresher (so decisions never wait on the database)."""
    global _engine, _flusher
    with _lock:
        if _engine is None:
            _engine = build_engine()
        if flush_in_background and _flusher is None:
            _flusher = Flusher(_engine.counters, settings.POOLWARDEN_FLUSH_INTERVAL).start()
            if settings.POOLWARDEN_REFRESH_IN_BACKGROUND:
                from routing import tokens

                _engine.snapshots.after_reload.append(tokens.save_last_used)
                _engine.snapshots.start()
    return _engine


def stop_engine() -> None:
    """Flush what is counted and stop the flusher and refresher (on shutdown)."""
    global _flusher
    with _lock:
        if _engine is not None:
            _engine.snapshots.stop()
        if _flusher is not None:
            _flusher.stop()
            _flusher = None
        elif _engine is not None:
            _engine.counters.flush()


def health(engine: Engine) -> tuple[str, str]:
    """("ok" | "degraded" | "unavailable", detail) of this process's routing snapshot:
    degraded while it routes on a snapshot it could not reload (or whose reload has waited on
    the database for more than RELOAD_STALLED seconds), unavailable when it never
    had one (messages wait)."""
    snapshots = engine.snapshots
    if snapshots.current is None:
        return "unavailable", f"no routing policy loaded yet ({snapshots.failure or 'not tried'})"
    age = snapshots.age() or 0.0
    if snapshots.failure:
        return "degraded", (
            f"routing on a policy {age:.0f} s old; database unreachable ({snapshots.failure})"
        )
    if (waited := snapshots.stalled()) is not None:
        return "degraded", (
            f"routing on a policy {age:.0f} s old; database not answering "
            f"(a reload has waited {waited:.0f} s)"
        )
    return "ok", ""


def invalidate_policy() -> None:
    if _engine is not None:
        _engine.snapshots.invalidate()


def reset_engine() -> None:
    """Forget the engine (tests, or after settings changed)."""
    global _engine
    stop_engine()
    _engine = None
