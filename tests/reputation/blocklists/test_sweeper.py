"""The raw UDP sweeper (reputation/blocklists/sweeper.py) against a real rbldnsd and lossy
proxies."""

from __future__ import annotations

import ipaddress

import pytest

from config.env import split_nameserver as parse_server
from reputation.blocklists import dnsbl
from reputation.blocklists.sweeper import TXT, Lookup, UDPSweeper, parse_reply, question
from tests.rbldnsd_server import HOST, proxy

pytestmark = pytest.mark.integration


def sweeper(port: int, **options) -> UDPSweeper:
    return UDPSweeper([(HOST, port)], **{"timeout": 0.2, "attempts": 3, **options})


def test_listed_address_comes_back_with_its_codes_and_ttl(rbldnsd):
    (reply,) = sweeper(rbldnsd.port).resolve([Lookup("5.2.0.192.zen.test")])
    assert reply == dnsbl.Reply(0, ("127.0.0.2",), (), 60)


def test_address_in_two_sets_gets_two_a_records_and_two_txt(rbldnsd):
    a, txt = sweeper(rbldnsd.port).resolve(
        [Lookup("7.2.0.192.zen.test"), Lookup("7.2.0.192.zen.test", TXT)]
    )
    assert sorted(a.addresses) == ["127.0.0.2", "127.0.0.4"]
    assert sorted(txt.texts) == [
        "SBL listed, see http://zen.test/sbl?ip=192.0.2.7",
        "XBL exploited host 192.0.2.7",
    ]


def test_unlisted_address_is_nxdomain_with_the_soa_negative_ttl(rbldnsd):
    (reply,) = sweeper(rbldnsd.port).resolve([Lookup("1.0.0.127.zen.test")])
    assert reply.rcode == dnsbl.NXDOMAIN and reply.addresses == ()


def test_refused_and_silent_zones_give_refused_and_timeouts(rbldnsd):
    probe = sweeper(rbldnsd.port, timeout=0.1, attempts=2)
    refused, silent = probe.resolve(
        [Lookup("2.0.0.127.refused.test"), Lookup("2.0.0.127.silent.test")]
    )
    assert refused.rcode == dnsbl.RCODE_REFUSED
    assert silent.rcode is None
    assert probe.sent == 1 + 2  # the silent one was retried once


def test_lost_replies_are_retried_until_every_answer_is_right(rbldnsd):
    network = ipaddress.ip_network("192.0.2.0/24")
    lookups = [Lookup(dnsbl.query_name(dnsbl.ListSpec("zen.test"), str(ip))) for ip in network]
    expected = sweeper(rbldnsd.port).resolve(lookups)
    with proxy(rbldnsd.port, loss=0.2) as lossy:
        probe = sweeper(lossy.port, timeout=0.1, attempts=10)
        got = probe.resolve(lookups)
    assert lossy.dropped > 20
    assert got == expected
    assert sum(1 for r in got if r.addresses) == 3  # .5, .7 and .9 (an error code)
    assert probe.sent > len(lookups)


def test_window_bounds_queries_in_flight_and_a_whole_slash_22_resolves(rbldnsd):
    network = ipaddress.ip_network("192.0.0.0/22")
    lookups = [Lookup(f"{dnsbl.reversed_name(str(ip))}.zen.test") for ip in network]
    probe = sweeper(rbldnsd.port, window=50)
    replies = probe.resolve(lookups)
    assert all(r.rcode is not None for r in replies) and probe.lost == 0


def test_reply_to_another_question_is_ignored():
    asked = question("5.2.0.192.zen.test", 1)
    other = question("6.2.0.192.zen.test", 1)
    data = bytes([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]) + other
    assert parse_reply(data, asked) is None
    assert parse_reply(data[:12] + asked, asked) == dnsbl.Reply(0, (), (), 0)


def test_nameserver_entries_parse_like_poolwarden_nameservers():
    assert parse_server("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("[::1]:5353") == ("::1", 5353)
