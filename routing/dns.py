"""Does a sender domain have an address record (A/AAAA) or an MX record?

`DomainChecker.check(domain)` answers with a `DomainLookup`, cached per process (bounded
LRU) and, when a shared cache server is configured, across processes. Cache lifetimes follow
the DNS: the TTL of the answer that proved the record, or for negative answers the SOA
minimum (RFC 2308). A lookup that failed (timeout, SERVFAIL) proves nothing and is cached
only briefly.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from config.env import split_nameserver

logger = logging.getLogger(__name__)
SHARED_RETRY = 30  # seconds without the shared cache after it failed
FAILURE_TTL = 30  # seconds to remember a failed lookup, so a dead resolver isn't hammered
DEFAULT_NEGATIVE_TTL = 300  # when a negative answer carries no SOA
MAX_TTL = 86400


@dataclass(frozen=True)
class DomainLookup:
    domain: str
    has_mx: bool | None  # None: could not be established
    has_address: bool | None
    ttl: int
    error: str = ""  # "timeout", "servfail", ... when a lookup failed

    @property
    def missing_a_and_mx(self) -> bool:
        """Proven: no usable MX (a null MX counts as none) and no A/AAAA record."""
        return self.has_mx is False and self.has_address is False

    @property
    def unknown(self) -> bool:
        return not self.missing_a_and_mx and not self.has_mx and not self.has_address


class _Answer:
    """One query's outcome: records found?, TTL, error."""

    def __init__(self, found: bool | None, ttl: int, error: str = "", nxdomain: bool = False):
        self.found, self.ttl, self.error, self.nxdomain = found, ttl, error, nxdomain


@functools.lru_cache(maxsize=4096)  # the same sender domains come again and again
def idna_name(text: str) -> str:
    """`text` as a lowercase IDNA domain name without the root dot; ValueError saying why
    when it is not a valid name of at least two labels."""
    try:
        parsed = dns.name.from_text(text.strip().rstrip(".").lower(), origin=None)
    except Exception as exc:  # dnspython raises several types for bad names
        raise ValueError(str(exc)) from None
    if len(parsed.labels) < 2 or not all(parsed.labels):
        raise ValueError("needs at least two labels")
    return parsed.to_text(omit_final_dot=True).lower()


def make_resolver(nameservers: list[str], timeout: float) -> dns.resolver.Resolver:
    """A resolver for `host` / `host:port` nameservers ([] = the system's)."""
    resolver = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = [_nameserver(entry) for entry in nameservers]
    resolver.timeout = min(timeout, 2.0)
    resolver.lifetime = timeout
    resolver.cache = None  # we cache whole verdicts, with negative TTLs, ourselves
    return resolver


def server_addresses(nameservers: list[str]) -> list[tuple[str, int]]:
    """(host, port) of `host` / `host:port` nameservers ([] = the system's), for the raw
    UDP sweeper (reputation/blocklists/sweeper.py)."""
    if nameservers:
        return [split_nameserver(entry) for entry in nameservers]
    return [(host, 53) for host in dns.resolver.Resolver().nameservers]


def _nameserver(entry: str) -> dns.nameserver.Do53Nameserver:
    return dns.nameserver.Do53Nameserver(*split_nameserver(entry))


def _negative_ttl(response: dns.message.Message | None) -> int:
    if response is not None:
        for rrset in response.authority:
            if rrset.rdtype == dns.rdatatype.SOA:
                return min(rrset.ttl, rrset[0].minimum)
    return DEFAULT_NEGATIVE_TTL


def query(resolver: dns.resolver.Resolver, name: str, rdtype: str) -> _Answer:
    try:
        answer = resolver.resolve(name, rdtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN as exc:
        responses = list(exc.responses().values())
        return _Answer(False, _negative_ttl(responses[0] if responses else None), nxdomain=True)
    except dns.resolver.LifetimeTimeout:
        return _Answer(None, FAILURE_TTL, "timeout")
    except dns.resolver.NoNameservers:
        return _Answer(None, FAILURE_TTL, "servfail")
    except dns.exception.DNSException as exc:
        return _Answer(None, FAILURE_TTL, type(exc).__name__.lower())
    if answer.rrset is None:
        return _Answer(False, _negative_ttl(answer.response))
    if rdtype == "MX":
        # RFC 7505 null MX: a single "MX 0 ." says the domain takes no mail.
        usable = [mx for mx in answer.rrset if str(mx.exchange) != "."]
        return _Answer(bool(usable), answer.rrset.ttl)
    return _Answer(True, answer.rrset.ttl)


def lookup(resolver: dns.resolver.Resolver, domain: str) -> DomainLookup:
    """Ask MX, then A, then AAAA, stopping at the first proof of a record."""
    mx = query(resolver, domain, "MX")
    if mx.found:
        return DomainLookup(domain, True, None, mx.ttl)
    if mx.nxdomain:
        return DomainLookup(domain, False, False, mx.ttl)
    answers = [mx]
    for rdtype in ("A", "AAAA"):
        address = query(resolver, domain, rdtype)
        if address.found:
            return DomainLookup(domain, mx.found, True, address.ttl)
        answers.append(address)
    errors = [a.error for a in answers if a.error]
    ttl = min(a.ttl for a in answers)
    has_address = None if any(a.error for a in answers[1:]) else False
    return DomainLookup(domain, mx.found, has_address, ttl, ",".join(dict.fromkeys(errors)))


class LRUCache:
    """A bounded, thread-safe map whose entries expire (monotonic clock)."""

    def __init__(self, size: int, clock: Callable[[], float] = time.monotonic):
        self.size, self.clock = size, clock
        self.data: OrderedDict[str, tuple[float, object]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str):
        with self.lock:
            item = self.data.get(key)
            if item is None:
                return None
            if item[0] <= self.clock():
                del self.data[key]
                return None
            self.data.move_to_end(key)
            return item[1]

    def set(self, key: str, value: object, ttl: float) -> None:
        with self.lock:
            self.data[key] = (self.clock() + ttl, value)
            self.data.move_to_end(key)
            while len(self.data) > self.size:
                self.data.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.data.clear()


class DomainChecker:
    """Cached sender-domain checks. `shared` is a Django cache shared between processes, or
    None; lookups are made with `resolver`."""

    def __init__(self, resolver, *, size: int = 100_000, shared=None, clock=time.monotonic):
        self.resolver = resolver
        self.local = LRUCache(size, clock)
        self.shared = shared
        self.lookups = 0  # DNS lookups made (cache misses), for tests and metrics
        self.shared_down_until = 0.0  # monotonic time until which `shared` is not asked

    def cached(self, domain: str) -> DomainLookup | None:
        """The answer held in this process, without I/O; None when it would take a lookup."""
        return self.local.get(domain)

    def check(self, domain: str) -> DomainLookup:
        cached = self.local.get(domain)
        if cached is not None:
            return cached
        key = f"pw:dom:{domain}"
        shared = self.shared_get(key)
        if shared is not None:
            expires, result = shared  # wall-clock expiry: the entry may come from another host
            self.local.set(domain, result, expires - time.time())
            return result
        self.lookups += 1
        result = lookup(self.resolver, domain)
        ttl = min(max(result.ttl, 0), MAX_TTL)
        if ttl > 0:
            self.shared_set(key, (time.time() + ttl, result), ttl)
        self.local.set(domain, result, ttl)
        return result

    def shared_usable(self) -> bool:
        return self.shared is not None and time.monotonic() >= self.shared_down_until

    def shared_get(self, key: str):
        if not self.shared_usable():
            return None
        try:
            return self.shared.get(key)
        except Exception as exc:  # Redis down or hanging: do without it for a while
            self.shared_failed(exc)
            return None

    def shared_set(self, key: str, value, ttl: float) -> None:
        if not self.shared_usable():
            return
        try:
            self.shared.set(key, value, timeout=ttl)
        except Exception as exc:
            self.shared_failed(exc)

    def shared_failed(self, exc: Exception) -> None:
        logger.warning(  # at most once per SHARED_RETRY seconds
            "shared DNS cache unavailable, using this process's cache for %s s: %s",
            SHARED_RETRY,
            exc,
        )
        self.shared_down_until = time.monotonic() + SHARED_RETRY
