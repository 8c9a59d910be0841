"""Sender-domain checks against a real DNS server (unbound on loopback): the answers, the
caches and their lifetimes."""

from __future__ import annotations

import pytest
from django.core.cache import caches

from routing.dns import DomainChecker, make_resolver

pytestmark = pytest.mark.integration


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def resolver(dns_server):
    return make_resolver([dns_server.nameserver], timeout=1.5)


@pytest.mark.parametrize(
    ("domain", "has_mx", "has_address", "missing"),
    [
        ("both.test", True, None, False),
        ("mx-only.test", True, None, False),
        ("a-only.test", False, True, False),
        ("aaaa-only.test", False, True, False),
        ("neither.test", False, False, True),
        ("nullmx.test", False, False, True),
        ("nullmx-with-a.test", False, True, False),
        ("missing.test", False, False, True),
    ],
)
def test_lookup_answers(resolver, domain, has_mx, has_address, missing):
    result = DomainChecker(resolver).check(domain)
    assert (result.has_mx, result.has_address, result.missing_a_and_mx) == (
        has_mx,
        has_address,
        missing,
    )
    assert not result.unknown and result.error == ""


def test_negative_answer_lives_as_long_as_the_soa_minimum(resolver):
    assert DomainChecker(resolver).check("missing.test").ttl == 30


def test_positive_answer_lives_as_long_as_its_record(resolver):
    assert DomainChecker(resolver).check("a-only.test").ttl == 300


def test_timeout_is_unknown_not_missing(dns_server):
    resolver = make_resolver([dns_server.silent_nameserver], timeout=1.0)
    result = DomainChecker(resolver).check("both.test")  # no shared cache: it asks
    assert result.unknown and not result.missing_a_and_mx
    assert result.error == "timeout"


def test_servfail_is_unknown(resolver):
    result = DomainChecker(resolver).check("servfail.test")
    assert result.unknown and result.error == "servfail"


def test_second_check_is_answered_from_the_cache(resolver, dns_server):
    checker = DomainChecker(resolver)
    checker.check("both.test")
    before = dns_server.queries()
    for _ in range(50):
        assert checker.check("both.test").has_mx
    assert dns_server.queries() == before
    assert checker.lookups == 1


def test_cache_entry_expires_with_the_record_ttl(resolver, dns_server):
    clock = FakeClock()
    checker = DomainChecker(resolver, clock=clock)
    dns_server.add("fresh.test. 5 IN A 192.0.2.55")
    try:
        assert checker.check("fresh.test").has_address
        dns_server.remove("fresh.test.")
        clock.now += 4
        assert checker.check("fresh.test").has_address  # still within the TTL
        clock.now += 2
        assert checker.check("fresh.test").missing_a_and_mx  # looked up again
        assert checker.lookups == 2
    finally:
        dns_server.remove("fresh.test.")


def test_cache_is_bounded(resolver):
    checker = DomainChecker(resolver, size=2)
    for domain in ("a-only.test", "both.test", "mx-only.test", "a-only.test"):
        checker.check(domain)
    assert checker.lookups == 4  # a-only.test was evicted by the third domain
    assert len(checker.local.data) == 2


def test_processes_share_results_through_the_cache_server(resolver, dns_server):
    shared = caches["default"]
    shared.delete("pw:dom:mx-only.test")  # not clear(): that empties the Redis database
    first, second = DomainChecker(resolver, shared=shared), DomainChecker(resolver, shared=shared)
    first.check("mx-only.test")
    before = dns_server.queries()
    assert second.check("mx-only.test").has_mx
    assert second.lookups == 0 and dns_server.queries() == before


@pytest.mark.parametrize(
    ("entry", "host", "port"),
    [
        ("127.0.0.1", "127.0.0.1", 53),
        ("127.0.0.1:5353", "127.0.0.1", 5353),
        ("[::1]:53", "::1", 53),
    ],
)
def test_nameserver_entries(entry, host, port):
    resolver = make_resolver([entry], timeout=1)
    server = resolver.nameservers[0]
    assert (server.address, server.port) == (host, port)
