"""The Sendmail milter protocol, filter side: the subset a header-editing filter needs.

Every packet is a 4-byte big-endian length (of what follows), a command byte and its data.
The MTA opens with OPTNEG (its version, the actions it allows, the protocol steps it can leave
out); the filter answers with the version both speak and the subset of each mask it wants.
Then come macros (`D`, tagged with the command they belong to), the message's events, and after
each event that expects one, the filter's reply. Values from Sendmail's libmilter (mfdef.h) and
Postfix's MTA side (src/milter/milter8.c), which speaks versions 2, 3, 4 and 6.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

# MTA to filter
OPTNEG, MACRO, CONNECT, HELO, MAIL, RCPT = b"O", b"D", b"C", b"H", b"M", b"R"
DATA, HEADER, EOH, BODY, BODYEOB = b"T", b"L", b"N", b"B", b"E"
ABORT, QUIT, QUIT_NC, UNKNOWN = b"A", b"Q", b"K", b"U"
# Events answered with a bare "continue" when they come although we asked not to get them
# (a version 2 MTA cannot leave out DATA or unknown commands).
IGNORED = frozenset((CONNECT, HELO, MAIL, RCPT, DATA, EOH, UNKNOWN))

# filter to MTA
CONTINUE, ACCEPT, REJECT, TEMPFAIL, DISCARD = b"c", b"a", b"r", b"t", b"d"
REPLYCODE, SKIP, ADDHEADER, CHGHEADER, INSHEADER = b"y", b"s", b"h", b"m", b"i"

# actions (SMFIF_*)
ADDHDRS, CHGHDRS = 0x01, 0x10
# protocol steps (SMFIP_*)
NOCONNECT, NOHELO, NOMAIL, NORCPT, NOBODY, NOHDRS, NOEOH = 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x40
NR_HDR, NOUNKNOWN, NODATA, P_SKIP = 0x80, 0x100, 0x200, 0x400

VERSION = 6
# Body chunks are at most 65,535 bytes (MILTER_CHUNK_SIZE), but one header may be as long as
# Postfix's header_size_limit (102,400 bytes by default): allow both, refuse anything bigger.
MAX_PACKET = 256 * 1024
LENGTH = struct.Struct(">I")
OPTIONS = struct.Struct(">III")


class ProtocolError(ValueError):
    """The MTA broke the protocol; the connection cannot go on."""


def packet(command: bytes, data: bytes = b"") -> bytes:
    return LENGTH.pack(len(data) + 1) + command + data


class Packets:
    """Splits the bytes read from the MTA into packets."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.start = 0  # where the next packet begins (consumed bytes are dropped in bulk)

    def feed(self, data: bytes) -> None:
        self.buffer += data

    def next(self) -> tuple[bytes, bytes] | None:
        """The next complete (command, data), or None until more bytes come. Raises
        `ProtocolError` on a length out of bounds, before its bytes are read."""
        start, buffer = self.start, self.buffer
        if len(buffer) - start < LENGTH.size:
            return None
        (length,) = LENGTH.unpack_from(buffer, start)
        if not 0 < length <= MAX_PACKET:
            raise ProtocolError(f"packet length {length} out of bounds (1..{MAX_PACKET})")
        end = start + LENGTH.size + length
        if len(buffer) < end:
            if start:  # keep only the incomplete packet
                del buffer[:start]
                self.start = 0
            return None
        command, data = bytes(buffer[start + 4 : start + 5]), bytes(buffer[start + 5 : end])
        if end == len(buffer):
            self.buffer, self.start = bytearray(), 0
        else:
            self.start = end
        return command, data


def strings(data: bytes, count: int | None = None) -> list[bytes]:
    """The NUL-terminated strings in `data` (exactly `count` of them when given)."""
    if data and not data.endswith(b"\0"):
        raise ProtocolError("string not NUL-terminated")
    parts = data[:-1].split(b"\0") if data else []
    if count is not None and len(parts) != count:
        raise ProtocolError(f"expected {count} strings, got {len(parts)}")
    return parts


def negotiate(data: bytes, *, actions: int, steps: int) -> tuple[int, int, int]:
    """(version, actions, steps) to answer the MTA's OPTNEG with: our version or its lower
    one, the `actions` we need (all of them, or ProtocolError: a filter that cannot edit
    what it must would let mail through unrouted), and of `steps` what the MTA offers."""
    if len(data) < OPTIONS.size:
        raise ProtocolError(f"OPTNEG of {len(data)} bytes")
    version, offered_actions, offered_steps = OPTIONS.unpack_from(data)
    if version < 2:
        raise ProtocolError(f"MTA protocol version {version} is below 2")
    if actions & offered_actions != actions:
        raise ProtocolError(f"MTA allows actions {offered_actions:#x}, we need {actions:#x}")
    return min(version, VERSION), actions, steps & offered_steps


def options(version: int, actions: int, steps: int) -> bytes:
    return packet(OPTNEG, OPTIONS.pack(version, actions, steps))


def add_header(name: str, value: str) -> bytes:
    return packet(ADDHEADER, _strings((name, value)))


def change_header(name: str, index: int, value: str) -> bytes:
    """Replace the `index`-th (1-based) header called `name`; an empty value deletes it."""
    return packet(CHGHEADER, LENGTH.pack(index) + _strings((name, value)))


def reply_code(code: str, xcode: str, text: str) -> bytes:
    """A final SMTP reply. The MTA takes `%` as a format character (Postfix drops a single
    one), so it is doubled; line breaks would forge extra reply lines."""
    text = " ".join(text.replace("%", "%%").splitlines())
    return packet(REPLYCODE, _strings((f"{code} {xcode} {text}",)))


def _strings(values: Iterable[str]) -> bytes:
    return b"".join(value.encode() + b"\0" for value in values)


class Macros:
    """The MTA's macros, kept per command like libmilter: a later command's value wins, the
    connection's (CONNECT, HELO) last until the MTA starts a new connection, the message's
    are dropped when it ends or is aborted."""

    CONNECTION = (CONNECT, HELO)
    ORDER = (EOH, BODYEOB, DATA, RCPT, MAIL, HELO, CONNECT)  # the latest command first

    def __init__(self) -> None:
        self.by_command: dict[bytes, dict[bytes, bytes]] = {}
        self.recipients: list[str] = []  # every RCPT's {rcpt_addr} of the message, in order

    def define(self, data: bytes) -> None:
        """A MACRO packet: the command it belongs to, then name/value pairs. Names are kept
        without braces, so `{i}` and `i` are one."""
        pairs = strings(data[1:]) if data else [b""]
        if len(pairs) % 2:
            raise ProtocolError("MACRO without a command or with a name missing its value")
        names = [name.strip(b"{}") for name in pairs[::2]]
        values = dict(zip(names, pairs[1::2], strict=True))
        self.by_command[data[:1]] = values
        if data[:1] == RCPT and values.get(b"rcpt_addr"):
            # Each recipient's macros replace the last's: the sender limits need them all.
            self.recipients.append(values[b"rcpt_addr"].decode("utf-8", "replace"))

    def get(self, name: str) -> str | None:
        """The value of `{name}` (or of a one-letter `i`, either spelling), or None."""
        key = name.strip("{}").encode()
        for command in self.ORDER:
            values = self.by_command.get(command)
            if values is not None and key in values:
                return values[key].decode("utf-8", "replace")
        return None

    def end_message(self) -> None:
        self.by_command = {c: v for c, v in self.by_command.items() if c in self.CONNECTION}
        self.recipients = []

    def clear(self) -> None:
        self.by_command = {}
        self.recipients = []
