"""The raw UDP sweeper (reputation/blocklists/sweeper.py) against a real rbldnsd and lossy
or slow proxies; its round-trip estimate and congestion window one step at a time."""

from __future__ import annotations

import ipaddress
import socket
import struct
import threading
import time

import pytest

from config.env import split_nameserver as parse_server
from reputation.blocklists import dnsbl
from reputation.blocklists import sweeper as sweeper_module
from reputation.blocklists.sweeper import (
    MAX_WINDOW,
    MIN_RTO,
    MIN_WINDOW,
    PTR,
    TXT,
    Lookup,
    ServerState,
    UDPSweeper,
    parse_reply,
    question,
)
from tests.rbldnsd_server import HOST, proxy

pytestmark = pytest.mark.integration


def sweeper(port: int, **options) -> UDPSweeper:
    return UDPSweeper([(HOST, port)], **{"timeout": 0.2, "attempts": 3, **options})


def slash(network: str, *zones: str) -> list[Lookup]:
    """One lookup per address of `network` on each zone."""
    addresses = [dnsbl.reversed_name(str(ip)) for ip in ipaddress.ip_network(network)]
    return [Lookup(f"{name}.{zone}", zone=zone) for zone in zones for name in addresses]


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
    assert probe.lost == 1


def test_a_silent_zone_costs_attempts_queries_per_lookup_though_the_server_answers_fast(
    rbldnsd,
):
    """Other zones bring the RTO down towards its floor, but a zone that never answered is
    retried every `timeout` only, and reported lost after `timeout * attempts`."""
    probe = sweeper(rbldnsd.port, timeout=0.5, attempts=3)
    lookups = slash("192.0.2.0/26", "zen.test") + slash("192.0.2.0/29", "silent.test")
    started = time.monotonic()
    replies = probe.resolve(lookups)
    assert time.monotonic() - started >= 1.5  # never lost before its lifetime is spent
    assert probe.server_state[(HOST, rbldnsd.port)].rto <= 0.1  # 50 ms unless loaded
    assert [r.rcode for r in replies[64:]] == [None] * 8 and probe.lost == 8
    assert probe.sent_by_zone == {"zen.test": 64, "silent.test": 8 * 3}
    assert probe.server_state[(HOST, rbldnsd.port)].shrinks == 0  # silence is not loss


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


def test_every_lookup_is_answered_right_at_30_percent_loss(rbldnsd):
    lookups = slash("192.0.2.0/23", "zen.test", "bitmask.test", "minor.test")
    expected = sweeper(rbldnsd.port).resolve(lookups)
    with proxy(rbldnsd.port, loss=0.3) as lossy:
        probe = sweeper(lossy.port, timeout=1.0, attempts=3)
        got = probe.resolve(lookups)
    assert lossy.dropped > len(lookups) // 5
    assert got == expected and probe.lost == 0
    assert sum(1 for r in got if r.addresses) == 6
    assert probe.server_state[(HOST, lossy.port)].shrinks > 0
    assert probe.sent_by_zone == asked_by_zone(lossy)  # every datagram, retries included


def asked_by_zone(link) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name, count in link.asked.items():
        zone = ".".join(name.split(".")[-2:])
        counts[zone] = counts.get(zone, 0) + count
    return counts


def test_window_shrinks_on_loss_and_grows_back_once_replies_come_through(rbldnsd, monkeypatch):
    """Every reply about one name is lost: each of its timeouts halves the window (the other
    lookups were answered long before). Then answers grow it back to the setting, one step
    per round trip (a few hundred round trips; a loaded machine makes them fewer per run)."""
    with proxy(rbldnsd.port, lose="1.2.0.192.minor.test") as link:
        probe = sweeper(link.port, timeout=0.5, attempts=2, window=40)
        replies = probe.resolve(slash("192.0.2.0/27", "minor.test"))
        state = probe.server_state[(HOST, link.port)]
        shrinks = state.shrinks
        assert replies[1].rcode is None and probe.lost == 1
        assert shrinks >= 1 and state.size <= 20
        # No spurious timeout on a loaded machine: the RTO floor goes up to 1 s.
        monkeypatch.setattr(sweeper_module, "MIN_RTO", 1.0)
        state.sample(state.srtt)
        lookups = slash("192.0.0.0/22", "zen.test", "bitmask.test", "refused.test")
        for _ in range(5):
            probe.resolve(lookups)
            if state.size == 40:
                break
    assert probe.lost == 1  # none of the others
    assert state.shrinks == shrinks and state.size == 40


def test_rto_adapts_to_a_slow_server(rbldnsd):
    lookups = slash("192.0.2.0/27", "zen.test")
    fast = sweeper(rbldnsd.port, timeout=1.0)
    expected = fast.resolve(lookups)
    assert fast.server_state[(HOST, rbldnsd.port)].rto < 0.3  # 50 ms unless loaded
    with proxy(rbldnsd.port, delay=0.3) as slow:
        probe = sweeper(slow.port, timeout=1.0, window=8)
        replies = probe.resolve(lookups)
    state = probe.server_state[(HOST, slow.port)]
    assert state.srtt >= 0.3 and 0.3 <= state.rto <= 1.0
    assert probe.lost == 0 and replies == expected
    assert probe.sent < 2 * len(lookups)  # a rare spurious retry, not one per lookup


def test_a_late_reply_to_an_earlier_try_answers_but_gives_no_rtt_sample(rbldnsd):
    """Every try times out (0.1 s) before its reply comes (0.3 s): the reply to the first
    try still answers the lookup, and Karn's rule keeps it out of the RTT estimate."""
    with proxy(rbldnsd.port, delay=0.3) as slow:
        probe = sweeper(slow.port, timeout=0.1, attempts=20)
        (reply,) = probe.resolve([Lookup("5.2.0.192.zen.test")])
    assert reply == dnsbl.Reply(0, ("127.0.0.2",), (), 60)
    assert probe.sent >= 2 and probe.lost == 0
    assert probe.server_state[(HOST, slow.port)].srtt is None


def test_window_setting_is_clamped_and_a_huge_one_loses_nothing(rbldnsd):
    """A window of 20,000 overflowed the server's socket buffer (8 % unchecked); it is
    clamped to MAX_WINDOW, which fits."""
    assert UDPSweeper([(HOST, 53)], window=20_000).window == MAX_WINDOW
    assert UDPSweeper([(HOST, 53)], window=10).window == 10
    lookups = slash("192.0.0.0/22", "zen.test", "minor.test")
    with proxy(rbldnsd.port) as link:
        probe = sweeper(link.port, timeout=1.0, window=20_000)
        replies = probe.resolve(lookups)
    assert probe.lost == 0 and all(r.rcode is not None for r in replies)
    assert link.peak <= MAX_WINDOW + (probe.sent - len(lookups))


def test_a_zone_with_its_own_server_is_asked_only_there(rbldnsd):
    lookups = slash("192.0.2.0/25", "zen.test", "minor.test", "bitmask.test")
    expected = sweeper(rbldnsd.port).resolve(lookups)
    with proxy(rbldnsd.port) as default, proxy(rbldnsd.port) as mirror:
        probe = sweeper(default.port, zone_servers={"minor.test": [(HOST, mirror.port)]})
        replies = probe.resolve(lookups)
    assert replies == expected and probe.lost == 0
    assert asked_by_zone(mirror) == {"minor.test": probe.sent_by_zone["minor.test"]}
    assert asked_by_zone(default) == {
        zone: probe.sent_by_zone[zone] for zone in ("zen.test", "bitmask.test")
    }
    assert set(probe.server_state) == {(HOST, default.port), (HOST, mirror.port)}


def test_a_zone_without_a_server_is_refused():
    with pytest.raises(ValueError, match=r"minor\.test"):
        UDPSweeper([(HOST, 53)], zone_servers={"minor.test": []})


def answer(query: bytes, address: str = "127.0.0.2") -> bytes:
    """A well-formed reply to `query`: its ID and question, one A record."""
    end = 12
    while query[end]:
        end += query[end] + 1
    header = query[:2] + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0)
    record = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(address)
    return header + query[12 : end + 5] + record


def test_a_reply_from_a_server_the_query_did_not_go_to_is_ignored():
    """own.test's server stays silent; the default server answers its own query and also
    sends the sweeper a well-formed answer to own.test's query (same ID and question)."""
    own, default = (socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2))
    with own, default:
        for server in (own, default):
            server.bind((HOST, 0))
            server.settimeout(10)
        probe = UDPSweeper(
            [default.getsockname()],
            zone_servers={"own.test": [own.getsockname()]},
            timeout=0.5,
            attempts=2,
        )
        lookups = [Lookup("2.0.0.127.own.test", zone="own.test"), Lookup("2.0.0.127.other.test")]
        result: list = []
        worker = threading.Thread(target=lambda: result.extend(probe.resolve(lookups)))
        worker.start()
        stolen, _ = own.recvfrom(512)
        query, client = default.recvfrom(512)
        default.sendto(answer(stolen), client)
        default.sendto(answer(query), client)
        worker.join(timeout=30)
    own_reply, other_reply = result
    assert other_reply.addresses == ("127.0.0.2",)  # answer() is good from the right server
    assert own_reply.rcode is None and probe.lost == 1


def test_rto_follows_rfc_6298_between_its_floor_and_the_timeout():
    state = ServerState(ceiling=1.0, window=100)
    assert state.rto == 1.0  # nothing measured: the configured timeout
    state.sample(0.1)
    assert (state.srtt, state.rttvar) == (0.1, 0.05)
    assert state.rto == pytest.approx(0.1 + 4 * 0.05)
    state.sample(0.2)
    assert state.rttvar == pytest.approx(0.75 * 0.05 + 0.25 * 0.1)
    assert state.srtt == pytest.approx(0.875 * 0.1 + 0.125 * 0.2)
    for _ in range(50):
        state.sample(0.0001)
    assert state.rto == MIN_RTO
    for _ in range(5):
        state.sample(5.0)
    assert state.rto == 1.0


def test_each_retry_waits_twice_as_long_up_to_four_rtos_and_the_timeout():
    state = ServerState(ceiling=1.0, window=100)
    for _ in range(50):
        state.sample(0.0001)
    assert [state.wait(k) for k in range(5)] == [0.05, 0.1, 0.2, 0.2, 0.2]
    state.sample(0.4)
    assert state.wait(0) == state.rto and state.wait(3) == 1.0


def test_window_halves_once_per_loss_event_and_never_below_the_floor():
    state = ServerState(ceiling=1.0, window=100)
    state.timed_out(sent=1.0, now=2.0)
    assert state.size == 50 and state.shrinks == 1
    state.timed_out(sent=1.5, now=2.1)  # sent before the halving: the same loss event
    assert state.size == 50 and state.shrinks == 1
    for now in range(3, 20):
        state.timed_out(sent=now - 0.5, now=now)
    assert state.size == MIN_WINDOW


def test_window_grows_by_one_per_round_trip_with_answers_up_to_the_setting():
    state = ServerState(ceiling=1.0, window=10)
    state.sample(0.01)
    state.timed_out(sent=0.0, now=0.0)
    assert state.size == 5
    state.answered(now=1.0)
    state.answered(now=1.001)  # within the same round trip
    assert state.size == 6
    for step in range(1, 20):
        state.answered(now=1.0 + step * 0.01)
    assert state.size == 10


def test_reply_to_another_question_is_ignored():
    asked = question("5.2.0.192.zen.test", 1)
    other = question("6.2.0.192.zen.test", 1)
    data = bytes([0, 1, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0]) + other
    assert parse_reply(data, asked) is None
    assert parse_reply(data[:12] + asked, asked) == dnsbl.Reply(0, (), (), 0)


PTR_QUESTION = question("10.0.0.127.in-addr.arpa", PTR)


def ptr_reply(rdata: bytes, asked: bytes = PTR_QUESTION, rtype: int = PTR) -> bytes:
    """A reply with one answer record (owner: a pointer to the question) of `rdata`."""
    header = bytes([0, 1, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 0])
    record = b"\xc0\x0c" + struct.pack("!HHIH", rtype, 1, 300, len(rdata)) + rdata
    return header + asked + record


def test_ptr_names_are_read_through_compression_pointers():
    # "mta10" then a pointer to the question's "0.0.127.in-addr.arpa" (offset 12 + 3)
    reply = parse_reply(ptr_reply(b"\x05mta10\xc0\x0f"), PTR_QUESTION)
    assert reply == dnsbl.Reply(0, (), (), 300, ("mta10.0.0.127.in-addr.arpa",))


@pytest.mark.parametrize(
    "rdata",
    [
        b"\x05mta10\xc0\x3b",  # points at itself (offset 59), not before the name
        b"\x05mta10",  # no end
        b"\x3fmta10",  # a label longer than the data
        b"\x45mta10\x00",  # label type 01
        b"\x3f"
        + b"a" * 63
        + b"\x3f"
        + b"a" * 63
        + b"\x3f"
        + b"a" * 63
        + b"\x3f"
        + b"a" * 63
        + b"\0",
    ],
)
def test_a_broken_ptr_name_makes_the_reply_no_answer(rdata):
    assert parse_reply(ptr_reply(rdata), PTR_QUESTION) is None


def test_a_pointer_loop_makes_the_reply_no_answer():
    data = bytearray(ptr_reply(b"\x01a\xc0\x00"))
    loop = len(data) - 2  # the pointer: aim it at the label just before it
    data[loop:] = struct.pack("!H", 0xC000 | (loop - 2))
    assert parse_reply(bytes(data), PTR_QUESTION) is None


def test_aaaa_addresses_are_kept_only_for_an_aaaa_question():
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8::20")
    aaaa, a = question("mta20.example", 28), question("mta20.example", 1)
    assert parse_reply(ptr_reply(v6, aaaa, 28), aaaa).addresses == ("2001:db8::20",)
    assert parse_reply(ptr_reply(v6, a, 28), a).addresses == ()


def test_nameserver_entries_parse_like_poolwarden_nameservers():
    assert parse_server("127.0.0.1") == ("127.0.0.1", 53)
    assert parse_server("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_server("[::1]:5353") == ("::1", 5353)
