"""The `dns_server` fixture serves what tests/zones/routing-unbound.conf promises, checked with
dnspython directly, so routing tests can rely on it. No database needed."""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import pytest

if TYPE_CHECKING:
    from tests.dns_server import DNSServer

pytestmark = pytest.mark.integration

NEGATIVE_TTL = 30


def ask(server: DNSServer, name: str, rdtype: str) -> dns.message.Message:
    """One raw UDP query, to see rcode and authority section as a client receives them."""
    query = dns.message.make_query(name, rdtype)
    return dns.query.udp(query, server.host, port=server.port, timeout=2)


def unique(parent: str) -> str:
    return f"t{uuid.uuid4().hex[:12]}.{parent}"


@pytest.mark.parametrize(
    ("name", "rdtype", "expected"),
    [
        ("a-only.test.", "A", {"192.0.2.10"}),
        ("aaaa-only.test.", "AAAA", {"2001:db8::10"}),
        ("mx-only.test.", "MX", {"10 mx.mx-only.test."}),
        ("mx.mx-only.test.", "A", {"192.0.2.11"}),
        ("both.test.", "A", {"192.0.2.12"}),
        ("both.test.", "MX", {"10 mail.both.test."}),
        ("mail.both.test.", "A", {"192.0.2.13"}),
        ("neither.test.", "TXT", {'"v=spf1 -all"'}),
        ("nullmx.test.", "MX", {"0 ."}),
        ("nullmx-with-a.test.", "MX", {"0 ."}),
        ("nullmx-with-a.test.", "A", {"192.0.2.14"}),
        ("xn--bcher-kva.test.", "A", {"192.0.2.15"}),
    ],
)
def test_positive_answers(dns_server: DNSServer, name: str, rdtype: str, expected: set) -> None:
    answer = dns_server.resolver().resolve(name, rdtype)
    assert {rdata.to_text() for rdata in answer} == expected
    assert answer.rrset.ttl == 300


def test_idn_name_resolves_through_punycode(dns_server: DNSServer) -> None:
    name = dns.name.from_unicode("bücher.test.")
    assert name.to_text() == "xn--bcher-kva.test."
    answer = dns_server.resolver().resolve(name, "A")
    assert [rdata.to_text() for rdata in answer] == ["192.0.2.15"]


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("a-only.test.", "AAAA"),
        ("a-only.test.", "MX"),
        ("aaaa-only.test.", "A"),
        ("aaaa-only.test.", "MX"),
        ("mx-only.test.", "A"),
        ("mx-only.test.", "AAAA"),
        ("both.test.", "AAAA"),
        ("neither.test.", "A"),
        ("neither.test.", "AAAA"),
        ("neither.test.", "MX"),
        ("nullmx.test.", "A"),
        ("nullmx.test.", "AAAA"),
    ],
)
def test_nodata_carries_the_zone_soa(dns_server: DNSServer, name: str, rdtype: str) -> None:
    with pytest.raises(dns.resolver.NoAnswer):
        dns_server.resolver().resolve(name, rdtype)
    response = ask(dns_server, name, rdtype)
    assert response.rcode() == dns.rcode.NOERROR
    assert response.answer == []
    assert_negative_soa(response, zone=name)


@pytest.mark.parametrize(
    ("name", "zone"),
    [
        ("missing.test.", "test."),
        ("nx.test.", "test."),
        ("deep.under.nx.test.", "test."),
        ("foo.a-only.test.", "a-only.test."),
    ],
)
def test_nxdomain_carries_an_soa(dns_server: DNSServer, name: str, zone: str) -> None:
    for rdtype in ("A", "MX"):
        with pytest.raises(dns.resolver.NXDOMAIN):
            dns_server.resolver().resolve(name, rdtype)
        response = ask(dns_server, name, rdtype)
        assert response.rcode() == dns.rcode.NXDOMAIN
        assert_negative_soa(response, zone=zone)


def assert_negative_soa(response: dns.message.Message, zone: str) -> None:
    (soa,) = response.authority
    assert soa.rdtype == dns.rdatatype.SOA
    assert soa.name.to_text() == zone
    assert soa.ttl == NEGATIVE_TTL
    assert soa[0].minimum == NEGATIVE_TTL
    # What a resolver may cache the negative answer for (RFC 2308: min of TTL and minimum).
    assert response.resolve_chaining().minimum_ttl == NEGATIVE_TTL


def test_client_caches_nodata_for_the_soa_minimum(dns_server: DNSServer) -> None:
    answer = dns_server.resolver().resolve("neither.test.", "MX", raise_on_no_answer=False)
    assert answer.rrset is None
    assert answer.expiration - time.time() == pytest.approx(NEGATIVE_TTL, abs=2)


def test_names_outside_test_tld_are_refused_locally(dns_server: DNSServer) -> None:
    # Unbound answers REFUSED itself; nothing goes to the internet.
    assert ask(dns_server, "example.com.", "A").rcode() == dns.rcode.REFUSED


def test_silent_nameserver_times_out_for_the_client(dns_server: DNSServer) -> None:
    host, port = dns_server.silent_nameserver.split(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port, resolver.lifetime = [host], int(port), 1.5
    before = dns_server.silent_upstream.received
    started = time.monotonic()
    with pytest.raises(dns.resolver.LifetimeTimeout):
        resolver.resolve(unique("test."), "MX")
    assert 1.4 < time.monotonic() - started < 3
    assert dns_server.silent_upstream.received > before  # it was asked, and kept silent


def test_servfail_is_quick(dns_server: DNSServer) -> None:
    started = time.monotonic()
    with pytest.raises(dns.resolver.NoNameservers, match="SERVFAIL"):
        dns_server.resolver(lifetime=3).resolve("servfail.test.", "A")
    assert time.monotonic() - started < 3
    assert ask(dns_server, "mx.servfail.test.", "MX").rcode() == dns.rcode.SERVFAIL


def test_add_and_remove_change_answers_at_runtime(dns_server: DNSServer) -> None:
    name = unique("test.")
    dns_server.add(f"{name} 2 IN A 192.0.2.55")
    answer = dns_server.resolver().resolve(name, "A")
    assert [rdata.to_text() for rdata in answer] == ["192.0.2.55"]
    assert answer.rrset.ttl == 2

    dns_server.remove(name)
    with pytest.raises(dns.resolver.NXDOMAIN):
        dns_server.resolver().resolve(name, "A")


def test_flush_accepts_a_name(dns_server: DNSServer) -> None:
    dns_server.flush("slow.test.")


def test_queries_counts_what_unbound_received(dns_server: DNSServer) -> None:
    before = dns_server.queries()
    for name in ("a-only.test.", "missing.test.", "servfail.test."):
        ask(dns_server, name, "A")
    assert dns_server.queries() == before + 3


def test_queries_shows_a_client_cache_hit(dns_server: DNSServer) -> None:
    resolver = dns_server.resolver()
    resolver.cache = dns.resolver.Cache()
    before = dns_server.queries()
    for _ in range(3):
        resolver.resolve("both.test.", "MX")
    assert dns_server.queries() == before + 1


def test_nameserver_is_in_setting_format(dns_server: DNSServer) -> None:
    assert dns_server.nameserver == f"127.0.0.1:{dns_server.port}"
    assert dns_server.host == "127.0.0.1"
