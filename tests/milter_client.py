"""A small MTA side of the milter protocol, speaking packets over a real socket as Postfix's
milter8.c does, and a `MilterServer` running in its own event-loop thread as the command
runs it."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading

from routing.mta import milter_protocol as mp
from routing.mta.milter_server import MilterServer
from routing.mta.postfix import Listen

# What Postfix offers (milter8.c): every action, and per protocol version the steps it can
# leave out and the replies it can do without.
POSTFIX_ACTIONS = 0x1FF
V2_STEPS = 0x7F  # NOCONNECT .. NOEOH
V6_STEPS = 0x7F | 0x100 | 0x200 | 0x400 | 0x800 | 0xFF080 | 0x100000
FINAL = {mp.CONTINUE, mp.ACCEPT, mp.REJECT, mp.TEMPFAIL, mp.DISCARD, mp.REPLYCODE}


class BackgroundServer:
    """`server` listening on `listen` in a thread of its own; `stop()` as SIGTERM would."""

    def __init__(self, server: MilterServer, listen: Listen) -> None:
        self.server = server
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(server.start(listen))

    def call(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    @property
    def address(self):
        return self.server.sockets[0].getsockname()

    def stop(self) -> None:
        self.call(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


class MTA:
    """One MTA connection to a milter."""

    def __init__(self, address, family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(address)

    def close(self) -> None:
        self.sock.close()

    def send(self, command: bytes, data: bytes = b"") -> None:
        self.sock.sendall(mp.packet(command, data))

    def read(self) -> tuple[bytes, bytes]:
        """The next reply; (b"", b"") when the milter closed the connection."""
        head = self.recv_exactly(4)
        if not head:
            return b"", b""
        payload = self.recv_exactly(struct.unpack(">I", head)[0])
        return payload[:1], payload[1:]

    def recv_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                return data
            data += chunk
        return data

    def closed(self) -> bool:
        return self.read() == (b"", b"")

    def negotiate(self, version: int = 6, actions: int = POSTFIX_ACTIONS, steps: int = V6_STEPS):
        """(version, actions, steps) the milter answered."""
        self.send(mp.OPTNEG, struct.pack(">III", version, actions, steps))
        command, data = self.read()
        assert command == mp.OPTNEG, (command, data)
        return struct.unpack(">III", data)

    def macros(self, command: bytes, **values: str) -> None:
        pairs = b"".join(f"{{{k}}}\0{v}\0".encode() for k, v in values.items())
        self.send(mp.MACRO, command + pairs)

    def header(self, name: str, value: bytes, *, reply: bool = False):
        self.send(mp.HEADER, name.encode() + b"\0" + value + b"\0")
        return self.read() if reply else None

    def body(self, chunk: bytes) -> tuple[bytes, bytes]:
        self.send(mp.BODY, chunk)
        return self.read()

    def end_of_message(self) -> list[tuple[bytes, bytes]]:
        """The milter's replies, edits first, up to its decision."""
        self.send(mp.BODYEOB)
        replies = [self.read()]
        while replies[-1][0] not in FINAL:
            assert replies[-1][0], "connection closed before a decision"
            replies.append(self.read())
        return replies

    def message(self, raw: bytes, sender: str, rcpt: str, *, chunk: int = 65535, **mail: str):
        """Send one message as Postfix does (envelope in macros, headers without a reply,
        body in chunks until the milter says skip); (body replies, end-of-message replies)."""
        self.macros(mp.MAIL, mail_addr=sender, **mail)
        self.macros(mp.RCPT, rcpt_addr=rcpt)
        head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
        for line in unfold(head):
            name, _, value = line.partition(b":")
            self.header(name.decode(), value.lstrip())
        body_replies = []
        for start in range(0, len(body), chunk):
            body_replies.append(self.body(body[start : start + chunk]))
            if body_replies[-1][0] == mp.SKIP:
                break
        return body_replies, self.end_of_message()


def unfold(head: bytes) -> list[bytes]:
    lines: list[bytes] = []
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and lines:
            lines[-1] += b"\r\n" + line
        else:
            lines.append(line)
    return lines


def edits(replies: list[tuple[bytes, bytes]]) -> list[tuple]:
    """The end-of-message replies decoded: ("add", name, value), ("change", name, index,
    value), then the decision's command."""
    decoded: list[tuple] = []
    for command, data in replies:
        if command == mp.ADDHEADER:
            decoded.append(("add", *(s.decode() for s in mp.strings(data, 2))))
        elif command == mp.CHGHEADER:
            (index,) = struct.unpack(">I", data[:4])
            name, value = (s.decode() for s in mp.strings(data[4:], 2))
            decoded.append(("change", name, index, value))
        else:
            decoded.append((command, data))
    return decoded
