"""The spamd client: protocol, limits, and failures that never raise."""

from __future__ import annotations

import socket
import threading

import pytest

from routing.mta.spamd import SpamdResult, check, check_request, parse_reply
from routing.policy import SpamdSettings


def test_request_is_a_check_with_the_content_length():
    assert check_request(b"abc") == b"CHECK SPAMC/1.5\r\nContent-length: 3\r\n\r\nabc"


def test_reply_gives_score_threshold_and_verdict():
    reply = b"SPAMD/1.1 0 EX_OK\r\nContent-length: 0\r\nSpam: True ; 1000.0 / 5.0\r\n\r\n"
    assert parse_reply(reply) == SpamdResult(1000.0, 5.0, True)


def test_negative_scores_are_scores():
    assert parse_reply(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; -1.9 / 5.0\r\n\r\n").score == -1.9


@pytest.mark.parametrize(
    ("reply", "problem"),
    [
        (b"SPAMD/1.0 76 Bad header line\r\n\r\n", "error 76"),
        (b"HTTP/1.0 200 OK\r\n\r\n", "unexpected reply"),
        (b"SPAMD/1.1 0 EX_OK\r\n\r\n", "no Spam header"),
    ],
)
def test_bad_replies_are_problems_not_scores(reply, problem):
    result = parse_reply(reply)
    assert result.score is None and problem in result.problem


def test_large_messages_are_not_sent():
    result = check(b"x" * 11, SpamdSettings(True, "127.0.0.1:1", 1.0, max_bytes=10))
    assert result.score is None and "not scanned" in result.problem


def test_a_refused_connection_is_a_problem():
    result = check(b"x", SpamdSettings(True, "127.0.0.1:1", 1.0))
    assert result.score is None and "127.0.0.1:1" in result.problem


def test_a_silent_spamd_times_out_within_the_limit():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        held = []
        threading.Thread(target=lambda: held.append(server.accept()), daemon=True).start()
        address = f"127.0.0.1:{server.getsockname()[1]}"
        result = check(b"x", SpamdSettings(True, address, timeout=0.3))
    assert result.score is None and "no answer within 0.3 s" in result.problem


def test_a_spamd_on_a_unix_socket_is_asked(tmp_path):
    path = str(tmp_path / "spamd.sock")
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(path)
        server.listen()

        def answer():
            conn, _ = server.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(b"SPAMD/1.1 0 EX_OK\r\nSpam: False ; 1.5 / 5.0\r\n\r\n")

        threading.Thread(target=answer, daemon=True).start()
        result = check(b"Subject: hi\r\n\r\nhi\r\n", SpamdSettings(True, f"unix:{path}", 2.0))
    assert result == SpamdResult(1.5, 5.0, False)
