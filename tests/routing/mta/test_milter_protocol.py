"""The milter protocol's pure parts: framing, negotiation, strings, replies and macros."""

from __future__ import annotations

import struct

import pytest

from routing.mta import milter_protocol as mp


def test_a_packet_is_its_length_then_command_and_data():
    assert mp.packet(mp.CONTINUE) == b"\0\0\0\1c"
    packets = mp.Packets()
    stream = mp.packet(mp.HEADER, b"A\0b\0") + mp.packet(mp.BODY, b"chunk")
    packets.feed(stream[:3])
    assert packets.next() is None
    packets.feed(stream[3:-1])
    assert packets.next() == (mp.HEADER, b"A\0b\0")
    assert packets.next() is None  # the body chunk is one byte short
    packets.feed(stream[-1:])
    assert packets.next() == (mp.BODY, b"chunk")
    assert packets.next() is None and not packets.buffer


def test_a_length_out_of_bounds_is_refused_before_its_bytes_come():
    packets = mp.Packets()
    packets.feed(struct.pack(">I", mp.MAX_PACKET + 1))
    with pytest.raises(mp.ProtocolError):
        packets.next()


def test_negotiation_takes_the_lower_version_and_masks_steps_by_the_offer():
    offer = struct.pack(">III", 2, 0x3F, 0x7F)
    assert mp.negotiate(offer, actions=0x11, steps=0x7C7) == (2, 0x11, 0x47)


def test_negotiation_refuses_missing_actions_and_old_versions():
    with pytest.raises(mp.ProtocolError, match="actions"):
        mp.negotiate(struct.pack(">III", 6, 0x01, 0), actions=0x11, steps=0)
    with pytest.raises(mp.ProtocolError, match="version"):
        mp.negotiate(struct.pack(">III", 1, 0x1FF, 0), actions=0x11, steps=0)


def test_replies_are_nul_terminated_and_a_percent_sign_is_doubled():
    assert mp.reply_code("451", "4.3.0", "50% full\r\nx") == mp.packet(
        mp.REPLYCODE, b"451 4.3.0 50%% full x\0"
    )
    assert mp.change_header("X-A", 2, "") == mp.packet(mp.CHGHEADER, b"\0\0\0\2X-A\0\0")
    assert mp.add_header("X-A", "v") == mp.packet(mp.ADDHEADER, b"X-A\0v\0")


def test_the_latest_command_s_macro_wins_and_either_spelling_finds_it():
    macros = mp.Macros()
    macros.define(b"Cj\0mx.test\0{daemon_name}\0smtpd\0")
    macros.define(b"M{mail_addr}\0a@test\0")
    macros.define(b"E{mail_addr}\0b@test\0")
    assert macros.get("{mail_addr}") == "b@test" and macros.get("mail_addr") == "b@test"
    assert macros.get("{j}") == "mx.test" and macros.get("daemon_name") == "smtpd"
    macros.end_message()
    assert macros.get("{mail_addr}") is None and macros.get("j") == "mx.test"
    macros.clear()
    assert macros.get("j") is None


def test_every_recipient_of_a_message_is_kept_for_the_sender_limits():
    macros = mp.Macros()
    macros.define(b"R{rcpt_addr}\0a@x.test\0")
    macros.define(b"R{rcpt_addr}\0b@y.test\0")
    assert macros.recipients == ["a@x.test", "b@y.test"]
    assert macros.get("rcpt_addr") == "b@y.test"
    macros.end_message()
    assert macros.recipients == []
