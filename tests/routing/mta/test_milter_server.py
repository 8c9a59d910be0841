"""The asyncio milter server over real sockets, driven by a small test MTA speaking packets:
negotiation, macros, body skipping, resets, broken packets, timeouts, concurrency."""

from __future__ import annotations

import os
import socket
import stat
import struct
import threading
import time

import pytest

from routing.mta import milter_protocol as mp
from routing.mta.milter import ACTIONS, STEPS
from routing.mta.milter_server import MilterServer
from routing.mta.postfix import Listen
from tests.milter_client import MTA, POSTFIX_ACTIONS, V2_STEPS, V6_STEPS, BackgroundServer


class Recorder:
    """A filter that keeps what it is shown and answers with a header naming the sender."""

    wait: threading.Event | None = None  # end of message waits for it when set

    def __init__(self, log: list[tuple]) -> None:
        self.log, self.headers, self.chunks = log, [], 0

    def header(self, name: str, value: bytes) -> None:
        self.headers.append((name, value))

    def body(self, chunk: bytes) -> bool:
        self.chunks += 1
        return self.chunks < 2

    def end_of_message_now(self, macros: mp.Macros) -> list[bytes] | None:
        if macros.get("{mail_addr}") == "now@test":
            self.log.append(("now", self.headers))
            self.headers, self.chunks = [], 0
            return [mp.packet(mp.ACCEPT)]
        return None  # decided in a worker thread

    def end_of_message(self, macros: mp.Macros) -> list[bytes]:
        if self.wait is not None:
            self.wait.wait(10)
        seen = {n: macros.get(n) for n in ("{mail_addr}", "{rcpt_addr}", "j", "{client_addr}")}
        self.log.append(("eom", self.headers, seen))
        if macros.get("{mail_addr}") == "boom@test":
            raise RuntimeError("boom")
        self.headers, self.chunks = [], 0
        return [mp.add_header("X-From", seen["{mail_addr}"] or ""), mp.packet(mp.CONTINUE)]

    def abort(self) -> None:
        self.log.append(("abort", self.headers))
        self.headers, self.chunks = [], 0


@pytest.fixture
def log() -> list[tuple]:
    return []


LOOPBACK = Listen(host="127.0.0.1", port=0)


def start(log, listen: Listen = LOOPBACK, **options) -> BackgroundServer:
    server = MilterServer(lambda: Recorder(log), actions=ACTIONS, steps=STEPS, **options)
    return BackgroundServer(server, listen)


@pytest.fixture
def server(log):
    background = start(log)
    yield background
    background.stop()


@pytest.fixture
def mta(server):
    client = MTA(server.address)
    yield client
    client.close()


def test_version_6_gets_only_the_steps_used_and_the_two_header_actions(mta):
    version, actions, steps = mta.negotiate(6, POSTFIX_ACTIONS, V6_STEPS)
    assert (version, actions) == (6, mp.ADDHDRS | mp.CHGHDRS)
    skipped = mp.NOCONNECT | mp.NOHELO | mp.NOMAIL | mp.NORCPT | mp.NODATA | mp.NOUNKNOWN
    assert steps == skipped | mp.NOEOH | mp.NR_HDR | mp.P_SKIP
    assert not steps & (mp.NOHDRS | mp.NOBODY)


def test_version_2_gets_what_it_offers_and_replies_to_every_header_and_chunk(mta):
    version, _, steps = mta.negotiate(2, 0x3F, V2_STEPS)
    assert version == 2 and steps == STEPS & V2_STEPS
    assert mta.header("Subject", b"hi", reply=True) == (mp.CONTINUE, b"")
    assert mta.body(b"one") == (mp.CONTINUE, b"")
    assert mta.body(b"two") == (mp.CONTINUE, b"")  # no more wanted, but SKIP is not allowed


def test_a_newer_mta_is_answered_in_version_6(mta):
    assert mta.negotiate(7)[0] == 6


def test_an_mta_that_forbids_header_changes_is_refused(mta):
    mta.send(mp.OPTNEG, struct.pack(">III", 6, mp.ADDHDRS, V6_STEPS))
    assert mta.closed()


def test_the_body_is_skipped_once_the_filter_has_enough(mta, log):
    mta.negotiate()
    assert mta.header("Subject", b"hi") is None  # no reply to headers
    assert mta.body(b"one") == (mp.CONTINUE, b"")
    assert mta.body(b"two") == (mp.SKIP, b"")
    mta.macros(mp.MAIL, mail_addr="a@test")
    assert mta.end_of_message() == [(mp.ADDHEADER, b"X-From\0a@test\0"), (mp.CONTINUE, b"")]
    assert log[0][1] == [("Subject", b"hi")]


def test_macros_are_kept_per_command_and_message_ones_end_with_the_message(mta, log):
    mta.negotiate()
    mta.macros(mp.CONNECT, j="mx.test", client_addr="192.0.2.9")
    mta.macros(mp.MAIL, mail_addr="a@test")
    mta.macros(mp.RCPT, rcpt_addr="b@test")
    mta.macros(mp.RCPT, rcpt_addr="c@test")  # each recipient replaces the one before
    mta.end_of_message()
    mta.end_of_message()  # a second message whose envelope macros did not come
    first, second = log[0][2], log[1][2]
    assert first == {
        "{mail_addr}": "a@test",
        "{rcpt_addr}": "c@test",
        "j": "mx.test",
        "{client_addr}": "192.0.2.9",
    }
    assert second == {**first, "{mail_addr}": None, "{rcpt_addr}": None}


def test_abort_resets_the_message_and_keeps_the_connection_macros(mta, log):
    mta.negotiate()
    mta.macros(mp.CONNECT, j="mx.test")
    mta.macros(mp.MAIL, mail_addr="a@test")
    mta.header("Subject", b"first")
    mta.send(mp.ABORT)
    mta.header("Subject", b"second")
    mta.end_of_message()
    assert log[0] == ("abort", [("Subject", b"first")])
    assert log[1][1] == [("Subject", b"second")]
    assert log[1][2]["j"] == "mx.test" and log[1][2]["{mail_addr}"] is None


def test_quit_nc_starts_a_new_connection_on_the_same_socket(mta, log):
    mta.negotiate()
    mta.macros(mp.CONNECT, j="mx.test")
    mta.header("Subject", b"left over")
    mta.send(mp.QUIT_NC)
    mta.macros(mp.MAIL, mail_addr="b@test")
    mta.end_of_message()
    assert log[0][1] == [] and log[0][2]["j"] is None and log[0][2]["{mail_addr}"] == "b@test"


def test_events_not_asked_for_are_answered_with_continue(mta):
    mta.negotiate(2, 0x3F, V2_STEPS)
    for command, data in ((mp.CONNECT, b"host\0U"), (mp.DATA, b""), (mp.UNKNOWN, b"X\0")):
        mta.send(command, data)
        assert mta.read() == (mp.CONTINUE, b"")


def test_a_failing_filter_tempfails_the_message_and_the_connection_goes_on(mta):
    mta.negotiate()
    mta.macros(mp.MAIL, mail_addr="boom@test")
    assert mta.end_of_message() == [(mp.TEMPFAIL, b"")]
    mta.macros(mp.MAIL, mail_addr="ok@test")
    assert mta.end_of_message()[-1] == (mp.CONTINUE, b"")


@pytest.mark.parametrize(
    "broken",
    [
        struct.pack(">I", mp.MAX_PACKET + 1) + b"B",  # oversized: not even read
        struct.pack(">I", 0),  # empty
        mp.packet(mp.HEADER, b"Subject\0"),  # a header without its value
        mp.packet(mp.HEADER, b"Subject\0hi"),  # not NUL-terminated
        mp.packet(mp.MACRO, b"M{mail_addr}\0"),  # a name without its value
        mp.packet(mp.OPTNEG, b"\0\0\0\6"),  # short
        mp.packet(b"Z"),  # no such command
    ],
)
def test_a_broken_packet_closes_its_connection_only(server, broken):
    mta, other = MTA(server.address), MTA(server.address)
    mta.negotiate()
    other.negotiate()
    mta.sock.sendall(broken)
    assert mta.closed()
    assert other.end_of_message()[-1] == (mp.CONTINUE, b"")
    fresh = MTA(server.address)
    assert fresh.negotiate()[0] == 6
    for client in (mta, other, fresh):
        client.close()


def test_commands_before_negotiation_close_the_connection(mta):
    mta.send(mp.HEADER, b"Subject\0hi\0")
    assert mta.closed()


def test_a_connection_cut_mid_packet_is_forgotten(server):
    mta = MTA(server.address)
    mta.negotiate()
    mta.sock.sendall(struct.pack(">I", 100) + b"L")
    mta.close()
    fresh = MTA(server.address)
    assert fresh.negotiate()[0] == 6
    deadline = time.monotonic() + 5
    while len(server.server.sessions) > 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(server.server.sessions) == 1  # the fresh one, still open
    fresh.close()


def test_a_silent_connection_is_closed_after_the_timeout(log):
    background = start(log, timeout=0.3)
    try:
        mta = MTA(background.address)
        mta.negotiate()
        started = time.monotonic()
        assert mta.closed()
        assert 0.2 < time.monotonic() - started < 5
    finally:
        background.stop()


def test_a_slow_message_does_not_hold_up_other_connections(server, log):
    slow, fast = MTA(server.address), MTA(server.address)
    slow.negotiate()
    fast.negotiate()
    Recorder.wait = threading.Event()
    try:
        slow.macros(mp.MAIL, mail_addr="slow@test")
        slow.send(mp.BODYEOB)
        time.sleep(0.1)
        Recorder.wait, release = None, Recorder.wait
        fast.macros(mp.MAIL, mail_addr="fast@test")
        assert fast.end_of_message()[0] == (mp.ADDHEADER, b"X-From\0fast@test\0")
        release.set()
        assert slow.read() == (mp.ADDHEADER, b"X-From\0slow@test\0")
    finally:
        Recorder.wait = None
    assert [entry[2]["{mail_addr}"] for entry in log] == ["fast@test", "slow@test"]


def test_many_connections_at_once(server):
    clients = [MTA(server.address) for _ in range(20)]
    for index, client in enumerate(clients):
        client.negotiate()
        client.macros(mp.MAIL, mail_addr=f"{index}@test")
        client.send(mp.BODYEOB)
    for index, client in enumerate(clients):
        assert client.read() == (mp.ADDHEADER, f"X-From\0{index}@test\0".encode())
        client.close()


def test_accepted_tcp_connections_do_not_wait_for_nagle(server, mta):
    mta.negotiate()
    (session,) = server.server.sessions
    sock = session.sock
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_a_command_written_apart_from_its_macros_is_answered_without_a_delayed_ack(mta):
    """Postfix writes macros and command as two segments with Nagle on: unless the milter
    acknowledges the first at once, the second waits for Linux's 40 ms delayed ACK."""
    mta.negotiate()
    times = []
    for _ in range(10):
        started = time.monotonic()
        mta.macros(mp.MAIL, mail_addr="a@test")
        mta.end_of_message()
        times.append(time.monotonic() - started)
    assert sorted(times)[5] < 0.02, times


def test_the_unix_socket_replaces_a_stale_one_lets_postfix_in_and_goes_at_stop(log, tmp_path):
    path = tmp_path / "milter.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    background = start(log, Listen(path=str(path)))
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o666 == 0o666
        mta = MTA(str(path), socket.AF_UNIX)
        assert mta.negotiate()[0] == 6
        mta.macros(mp.MAIL, mail_addr="a@test")
        assert mta.end_of_message()[-1] == (mp.CONTINUE, b"")
        mta.close()
    finally:
        background.stop()
    assert not path.exists()


def test_stop_closes_open_connections(log):
    background = start(log)
    mta = MTA(background.address)
    mta.negotiate()
    background.stop()
    assert mta.closed()


def test_a_message_decided_in_the_loop_is_not_held_up_by_one_in_a_thread(server, log):
    slow, fast = MTA(server.address), MTA(server.address)
    slow.negotiate()
    fast.negotiate()
    Recorder.wait = threading.Event()
    try:
        slow.macros(mp.MAIL, mail_addr="slow@test")
        slow.send(mp.BODYEOB)
        time.sleep(0.1)
        Recorder.wait, release = None, Recorder.wait
        fast.macros(mp.MAIL, mail_addr="now@test")
        fast.header("Subject", b"hi")
        assert fast.end_of_message() == [(mp.ACCEPT, b"")]
        assert log == [("now", [("Subject", b"hi")])]
        release.set()
        assert slow.read() == (mp.ADDHEADER, b"X-From\0slow@test\0")
    finally:
        Recorder.wait = None


def test_commands_sent_behind_an_end_of_message_wait_for_its_thread(mta, log):
    """Packets that arrive while a message is routed in a thread are read after it, in order."""
    mta.negotiate()
    Recorder.wait = threading.Event()
    try:
        pipelined = [
            mp.packet(mp.MACRO, mp.MAIL + b"{mail_addr}\0first@test\0"),
            mp.packet(mp.BODYEOB),
            mp.packet(mp.MACRO, mp.MAIL + b"{mail_addr}\0second@test\0"),
            mp.packet(mp.BODYEOB),
        ]
        mta.sock.sendall(b"".join(pipelined))
        time.sleep(0.1)
        assert log == []  # the first is still being routed; the second not yet read
        Recorder.wait, release = None, Recorder.wait
        release.set()
    finally:
        Recorder.wait = None
    assert mta.read() == (mp.ADDHEADER, b"X-From\0first@test\0")
    assert mta.read() == (mp.CONTINUE, b"")
    assert mta.read() == (mp.ADDHEADER, b"X-From\0second@test\0")
    assert [entry[2]["{mail_addr}"] for entry in log] == ["first@test", "second@test"]
