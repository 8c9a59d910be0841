"""A client for SpamAssassin's spamd (the SPAMC/SPAMD protocol, CHECK command).

The score comes from the operator's own filter, so a sender cannot forge it. Every call is
bounded: messages over `max_bytes` are not sent (as `spamc -s`), and the whole exchange has
one time limit. Failures return a result with `problem` set and no score; never raises.
"""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

from routing.policy import SpamdSettings

PROTOCOL = b"SPAMC/1.5"
STATUS = re.compile(rb"^SPAMD/\d+\.\d+\s+(\d+)\s+(\S*)")
SPAM_HEADER = re.compile(rb"^Spam:\s*(\w+)\s*;\s*([-\d.]+)\s*/\s*([-\d.]+)", re.MULTILINE)
MAX_REPLY = 64 * 1024


@dataclass(frozen=True)
class SpamdResult:
    score: float | None = None
    threshold: float | None = None
    is_spam: bool = False
    problem: str = ""  # why there is no score ("" when there is one)


def check_request(message: bytes) -> bytes:
    """The CHECK request for one message."""
    head = b"CHECK " + PROTOCOL + b"\r\nContent-length: %d\r\n\r\n" % len(message)
    return head + message


def parse_reply(reply: bytes) -> SpamdResult:
    """The score in a spamd reply: `SPAMD/1.1 0 EX_OK` then `Spam: True ; 1000.0 / 5.0`."""
    status = STATUS.match(reply)
    if status is None:
        return SpamdResult(problem=f"spamd: unexpected reply {reply[:60]!r}")
    if status.group(1) != b"0":
        code = status.group(2).decode("ascii", "replace")
        return SpamdResult(problem=f"spamd: error {status.group(1).decode()} {code}")
    spam = SPAM_HEADER.search(reply)
    if spam is None:
        return SpamdResult(problem="spamd: no Spam header in the reply")
    try:
        score, threshold = float(spam.group(2)), float(spam.group(3))
    except ValueError:
        return SpamdResult(problem=f"spamd: bad score in {spam.group(0)[:60]!r}")
    return SpamdResult(score, threshold, spam.group(1).lower() in (b"true", b"yes"))


def connect(address: str, timeout: float) -> socket.socket:
    """A connected socket to `host:port` or `unix:/path`."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(address[5:])
        except OSError:
            sock.close()
            raise
        return sock
    host, _, port = address.rpartition(":")
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def exchange(request: bytes, settings: SpamdSettings) -> bytes:
    """Send `request`, read the reply until spamd closes; all within `settings.timeout`."""
    deadline = time.monotonic() + settings.timeout
    with connect(settings.address, settings.timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks, size = [], 0
        while size < MAX_REPLY:
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            chunk = sock.recv(8192)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks)


def check(message: bytes, settings: SpamdSettings) -> SpamdResult:
    """Ask spamd for the score of `message` (the whole RFC 5322 text)."""
    if len(message) > settings.max_bytes:
        return SpamdResult(problem=f"spamd: message of {len(message)} bytes not scanned")
    try:
        return parse_reply(exchange(check_request(message), settings))
    except TimeoutError:
        return SpamdResult(problem=f"spamd: no answer within {settings.timeout:g} s")
    except (OSError, ValueError) as exc:
        return SpamdResult(problem=f"spamd at {settings.address}: {exc}")
