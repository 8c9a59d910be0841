"""The policy service one step at a time (parse, decide, answer) and over a real socket."""

from __future__ import annotations

import io
import socket

import pytest
from django.core.management import CommandError, call_command

from routing.mta.policyd import (
    PolicyServer,
    ProtocolError,
    answer,
    envelope,
    parse_request,
    read_request,
)
from routing.mta.postfix import parse_listen
from routing.policy import PolicySnapshot, PoolSnapshot
from tests.routing.mta.test_milter import offline_engine

REQUEST = b"request=smtpd_access_policy\nprotocol_state=DATA\nsender=%s\nrecipient=r@x.test\n\n"


def test_a_request_is_its_name_value_lines():
    lines = [b"request=smtpd_access_policy\n", b"sender=a@b.test\r\n", b"junk\n", b"x=a=b\n"]
    assert parse_request(lines) == {
        "request": "smtpd_access_policy",
        "sender": "a@b.test",
        "x": "a=b",
    }


def test_an_empty_sender_is_the_null_sender():
    env = envelope({"sender": "", "recipient": "r@x.test", "client_address": "192.0.2.9"})
    assert env == {
        "mail_from": "",
        "rcpt_to": ["r@x.test"],
        "source": "192.0.2.9",
        "sasl_login": "",
        "recipient_count": 0,
    }


def test_requests_are_read_one_at_a_time_from_a_stream():
    stream = io.BytesIO(REQUEST % b"" + REQUEST % b"a@b.test")
    assert parse_request(read_request(stream))["sender"] == ""
    assert parse_request(read_request(stream))["sender"] == "a@b.test"
    assert read_request(stream) is None


def test_an_endless_request_is_refused():
    with pytest.raises(ProtocolError):
        read_request(io.BytesIO(b"a=b\n" * 1000))


@pytest.mark.parametrize(
    ("sender", "action"),
    [
        ("", b"action=FILTER pw-198-51-100-1:[relay.test]\n\n"),
        ("a@neither.test", b"action=FILTER pw-198-51-100-1:[relay.test]\n\n"),
    ],
)
def test_dsns_and_domains_without_a_or_mx_are_filtered_to_high_risk(sender, action):
    request = {"request": "smtpd_access_policy", "sender": sender}
    assert answer(request, offline_engine(), "[relay.test]") == action


def test_normal_mail_gets_its_stable_normal_transport():
    request = {"request": "smtpd_access_policy", "sender": "a@both.test"}
    first, again = (answer(request, offline_engine()) for _ in range(2))
    assert first == again
    assert first in (b"action=FILTER pw-192-0-2-1:\n\n", b"action=FILTER pw-192-0-2-2:\n\n")


def test_a_pool_without_addresses_defers():
    empty = PolicySnapshot(pools={"normal": PoolSnapshot("normal", "normal", ())})
    request = {"request": "smtpd_access_policy", "sender": "a@both.test"}
    assert answer(request, offline_engine(empty)).startswith(b"action=451 4.3.0 ")


def test_other_requests_get_dunno():
    assert answer({"request": "junk"}, offline_engine()) == b"action=DUNNO\n\n"


def test_many_requests_on_one_persistent_unix_connection(tmp_path):
    path = str(tmp_path / "policyd.sock")
    server = PolicyServer(parse_listen(f"unix:{path}"), offline_engine()).start()
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(path)
            replies = client.makefile("rb")
            for sender in (b"", b"a@neither.test", b"a@both.test"):
                client.sendall(REQUEST % sender)
                assert replies.readline().startswith(b"action=FILTER pw-")
                assert replies.readline() == b"\n"
    finally:
        server.stop()


def test_policyd_command_refuses_a_bad_listen_value_with_status_2():
    with pytest.raises(CommandError) as error:
        call_command("policyd", "--listen", "unix:relative.sock")
    assert error.value.returncode == 2
