"""The fast path of a sweep: many DNS lookups over raw non-blocking UDP.

`UDPSweeper.resolve(lookups)` sends hand-built queries (a 12-byte header and the question),
keeps at most `window` in flight overall and each zone inside its own limits (queries in
flight, queries per second), retransmits what is not answered within `timeout`, and parses
only what a blocklist answer needs: the rcode, A addresses, TXT strings and the TTL.
Building and parsing full dnspython messages would cost 100-180 µs per query; this costs a
few. A reply is accepted only from a configured server, with a pending query's ID and the
very same question, so a late reply to a retransmitted query is harmless.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reputation.blocklists.dnsbl import Reply

A, TXT = 1, 16
SOA = 6
RD = 0x0100
HEADER = struct.Struct("!HHHHHH")
HEADER_REST = struct.pack("!HHHHH", RD, 1, 0, 0, 0)  # after the ID: flags and counts
RR = struct.Struct("!HHIH")
TIMEOUT_REPLY = Reply(None)
MAX_TTL = 86400


@dataclass(frozen=True)
class Lookup:
    name: str  # the query name, without the trailing dot
    qtype: int = A
    zone: str = ""  # whose limits apply (the list's public zone name)


@dataclass(frozen=True)
class ZoneLimits:
    in_flight: int = 0  # 0: only the overall window applies
    qps: float = 0.0  # 0: no rate limit


def question(name: str, qtype: int) -> bytes:
    """The wire form of a question: labels, root, type, class IN."""
    wire = bytearray()
    for label in name.strip(".").encode("ascii").split(b"."):
        if not 0 < len(label) < 64:
            raise ValueError(f"bad DNS name {name!r}")
        wire.append(len(label))
        wire += label
    wire += b"\0"
    wire += struct.pack("!HH", qtype, 1)
    return bytes(wire)


def parse_reply(data: bytes, asked: bytes) -> Reply | None:
    """The Reply in `data` if it answers the question `asked`, else None (wrong or broken)."""
    end = 12 + len(asked)
    if len(data) < end or not data[2] & 0x80:
        return None
    got = data[12:end]
    if got != asked and got.lower() != asked.lower():
        return None
    try:
        return _records(data, end)
    except (IndexError, struct.error):
        return None


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length >= 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += length + 1


def _records(data: bytes, pos: int) -> Reply:
    _, flags, _, ancount, nscount, _ = HEADER.unpack_from(data)
    addresses, texts, ttl = [], [], MAX_TTL
    for _ in range(ancount):
        pos = _skip_name(data, pos)
        rtype, _, rttl, rdlength = RR.unpack_from(data, pos)
        pos += 10
        if rtype == A and rdlength == 4:
            addresses.append(socket.inet_ntoa(data[pos : pos + 4]))
            ttl = min(ttl, rttl)
        elif rtype == TXT:
            texts.append(_txt(data[pos : pos + rdlength]))
            ttl = min(ttl, rttl)
        pos += rdlength
    if not ancount:
        for _ in range(nscount):  # negative TTL from the SOA (RFC 2308)
            pos = _skip_name(data, pos)
            rtype, _, rttl, rdlength = RR.unpack_from(data, pos)
            pos += 10
            if rtype == SOA and rdlength >= 4:
                ttl = min(ttl, rttl, struct.unpack_from("!I", data, pos + rdlength - 4)[0])
            pos += rdlength
    if ttl == MAX_TTL and not addresses and not texts and not nscount:
        ttl = 0
    return Reply(flags & 0x0F, tuple(addresses), tuple(texts), ttl)


def _txt(rdata: bytes) -> str:
    parts, pos = [], 0
    while pos < len(rdata):
        length = rdata[pos]
        parts.append(rdata[pos + 1 : pos + 1 + length].decode("utf-8", "replace"))
        pos += 1 + length
    return "".join(parts)


class _Zone:
    __slots__ = ("in_flight", "limit", "next_send", "pending", "sent", "spacing")

    def __init__(self, limits: ZoneLimits):
        self.pending: deque[int] = deque()
        self.in_flight = self.sent = 0
        self.limit = limits.in_flight or 1 << 30
        self.spacing = 1.0 / limits.qps if limits.qps > 0 else 0.0
        self.next_send = 0.0


class UDPSweeper:
    """Resolve many lookups through `servers` over UDP; see the module docstring."""

    def __init__(
        self,
        servers: Sequence[tuple[str, int]],
        *,
        timeout: float = 1.0,
        attempts: int = 3,
        window: int = 100,
        limits: dict[str, ZoneLimits] | None = None,
        progress: Callable[[int, int], None] | None = None,
    ):
        if not servers:
            raise ValueError("no DNS server to ask")
        self.servers = [(host, port) for host, port in servers]
        self.timeout, self.attempts, self.window = timeout, attempts, window
        self.limits = limits or {}
        self.progress = progress
        self.sent = 0  # datagrams sent, retransmissions included
        self.sent_by_zone: dict[str, int] = {}  # the same, per zone (for daily caps)
        self.lost = 0  # lookups that timed out after every attempt

    def resolve(self, lookups: Sequence[Lookup]) -> list[Reply]:
        """One Reply per lookup, in order; a lookup never answered gets Reply(rcode=None)."""
        questions = [question(lookup.name, lookup.qtype) for lookup in lookups]
        return self.resolve_wire(questions, [lookup.zone for lookup in lookups])

    def resolve_wire(self, questions: Sequence[bytes], zones: Sequence[str]) -> list[Reply]:
        """As resolve(), for questions already in wire form (see question()), each with the
        zone whose limits apply: the hot path builds them from pre-encoded parts."""
        if not questions:
            return []
        run = _Run(self, questions, zones)
        try:
            run.loop()
        finally:
            run.close()
            for name, zone in run.zones.items():
                self.sent_by_zone[name] = self.sent_by_zone.get(name, 0) + zone.sent
        return run.replies


class _Run:
    """The state of one resolve() call: sockets, queues, queries in flight."""

    def __init__(self, sweeper: UDPSweeper, questions: Sequence[bytes], zones: Sequence[str]):
        self.s = sweeper
        self.questions = questions
        self.replies: list[Reply | None] = [None] * len(questions)
        self.tries = [0] * len(questions)
        self.zones: dict[str, _Zone] = {}
        self.zone_of: list[_Zone] = []
        for name in zones:
            zone = self.zones.get(name)
            if zone is None:
                zone = self.zones[name] = _Zone(sweeper.limits.get(name, ZoneLimits()))
            zone.pending.append(len(self.zone_of))
            self.zone_of.append(zone)
        self.in_flight: dict[int, tuple[int, int]] = {}  # qid -> (lookup index, try)
        # One deque per attempt: each is in deadline order, since an attempt's timeout is fixed.
        self.deadlines = [deque() for _ in range(sweeper.attempts)]
        self.step = max(1, len(questions) // 200)  # progress reports
        self.left = len(questions)
        self.qid = random.getrandbits(16)
        self.sockets = [self._open(host, port) for host, port in sweeper.servers]
        self.unsent = 0

    @staticmethod
    def _open(host: str, port: int) -> socket.socket:
        # Connected: the kernel drops datagrams from anyone but this server.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.connect((host, port))
        return sock

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()

    def loop(self) -> None:
        readers = self.sockets
        while self.left:
            now = time.monotonic()
            self._expire(now)
            wake = self._fill(now)
            if not self.left:
                break
            fronts = [queue[0][0] for queue in self.deadlines if queue]
            wait = min(fronts) - now if fronts else 0.05
            if wake is not None:
                wait = min(wait, wake - now)
            ready, _, _ = select.select(readers, [], [], max(wait, 0.0))
            for sock in ready:
                self._drain(sock)

    def _fill(self, now: float) -> float | None:
        """Send what the window and the zones' limits allow; return when a rate-limited zone
        may send next (None if none waits)."""
        wake = None
        room = self.s.window - len(self.in_flight)
        while room > 0:
            sent_any = False
            for zone in self.zones.values():
                if not zone.pending or zone.in_flight >= zone.limit:
                    continue
                if zone.spacing:
                    if now < zone.next_send:
                        wake = zone.next_send if wake is None else min(wake, zone.next_send)
                        continue
                    zone.next_send = max(zone.next_send, now - 0.05) + zone.spacing
                self._send(zone.pending.popleft(), zone, now)
                sent_any = True
                room -= 1
                if room <= 0:
                    break
            if not sent_any:
                break
        return wake

    def _send(self, index: int, zone: _Zone, now: float) -> None:
        qid = self.qid
        while qid in self.in_flight:
            qid = (qid + 1) & 0xFFFF
        self.qid = (qid + 1) & 0xFFFF
        attempt = self.tries[index]
        self.tries[index] = attempt + 1
        sock = self.sockets[attempt % len(self.sockets)]
        try:
            sock.send(qid.to_bytes(2, "big") + HEADER_REST + self.questions[index])
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            self.unsent += 1  # buffer full, or an ICMP error: the timeout retransmits it
        self.s.sent += 1
        zone.sent += 1
        zone.in_flight += 1
        self.in_flight[qid] = (index, attempt)
        self.deadlines[attempt].append((now + self.s.timeout * (1 + attempt), qid, index, attempt))

    def _drain(self, sock: socket.socket) -> None:
        in_flight, questions = self.in_flight, self.questions
        while True:
            try:
                data = sock.recv(4096)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # e.g. ICMP port unreachable reported on the socket
                continue
            if len(data) < 12:
                continue
            qid = (data[0] << 8) | data[1]
            pending = in_flight.get(qid)
            if pending is None:
                continue
            reply = parse_reply(data, questions[pending[0]])
            if reply is not None:
                self._done(qid, pending[0], reply)

    def _done(self, qid: int, index: int, reply: Reply) -> None:
        del self.in_flight[qid]
        self.zone_of[index].in_flight -= 1
        self.replies[index] = reply
        self.left -= 1
        if self.s.progress is not None and (self.left % self.step == 0):
            self.s.progress(len(self.replies) - self.left, len(self.replies))

    def _expire(self, now: float) -> None:
        for deadlines in self.deadlines:
            while deadlines and deadlines[0][0] <= now:
                self._timed_out(*deadlines.popleft()[1:])

    def _timed_out(self, qid: int, index: int, attempt: int) -> None:
        if self.in_flight.get(qid) != (index, attempt):
            return  # answered (or its ID reused since)
        if attempt + 1 < self.s.attempts:
            del self.in_flight[qid]
            zone = self.zone_of[index]
            zone.in_flight -= 1
            zone.pending.appendleft(index)
        else:
            self.s.lost += 1
            self._done(qid, index, TIMEOUT_REPLY)
