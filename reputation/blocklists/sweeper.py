"""The fast path of a sweep: many DNS lookups over raw non-blocking UDP.

`UDPSweeper.resolve(lookups)` sends hand-built queries (a 12-byte header and the question)
and parses only what a blocklist answer needs: the rcode, A addresses, TXT strings and the
TTL; and for reverse DNS (rdns.py) PTR target names and, to an AAAA question, AAAA addresses.
Building and parsing full dnspython messages would cost 100-180 µs per query; this costs
a few.

**Answers.** The records of the answer section are kept whatever their owner name: a
recursive resolver answers with a CNAME chain (an RFC 2317 classless in-addr.arpa delegation,
a host name that is an alias) followed by the final records, so this gives what a full
resolver gives. PTR names are read with compression pointers (RFC 1035 4.1.4) followed
safely: each must point before the name it is part of, so there are no loops and no more
jumps than bytes, and a name stays within 255 bytes. A reply with broken data is no reply
(parse_reply() returns None, never raises): the lookup is retried and, if nothing better
comes, reported lost.

**Servers.** A zone listed in `zone_servers` (a local mirror of the list, a DQS endpoint) is
asked only of its own servers, every other zone of `servers`; the tries of a lookup take the
zone's servers in turn. Each server has a connected socket (the kernel drops datagrams from
anyone else), and a reply counts only if it comes from the server its query went to, with
that query's ID and the very same question.

**Retransmission** follows TCP (RFC 6298), per server. Answers to lookups sent once give
round-trip samples (Karn's rule: a retransmitted lookup gives none); RTO = SRTT + 4 * RTTVAR,
at least MIN_RTO and at most `timeout`, which is also the RTO before the first sample.
MIN_RTO is 50 ms, unbound's floor (infra-cache-min-rtt): loopback answers come in ~0.1 ms,
but a loaded two-core machine stalls a process for tens of milliseconds, and a needless
retransmission costs a query against the list's daily cap. A first try waits the server's
current RTO (first tries are timed in the order they were sent, as TCP times its oldest
segment, so a new estimate applies to all of them); try k waits RTO * 2**k, at most
MAX_BACKOFF * RTO and `timeout`.

A lookup lives `timeout * attempts` seconds from its first try and is sent again while it
lives, so a lossy link gets more tries when the RTO is small. With runs.py's defaults (1 s,
3 attempts) at 30 % loss, the last of 20,480 lookups needs about 13 tries (0.3**13 * 20,480
= 0.03): 3 s fit 7 tries backing off to the 1-s ceiling, 16 capped at 4 * RTO. A lookup is
reported lost (Reply(rcode=None)) only when its lifetime is spent, and a reply to any of its
tries answers it, so a late answer is not wasted. Until a zone has answered once in a run,
its tries wait the full `timeout`: a list that ignores us costs `attempts` queries per lookup
(as before), not one per RTO.

**Congestion window** (AIMD, per server). Each server's window starts at `window`, halves on
a timeout (once per loss event: the timeout of a query sent before the last halving does not
halve it again, so at most once per RTO), never below MIN_WINDOW, and grows back by one per
round trip (SRTT) that brings answers, never above `window`. TCP counts its round trip as
1/size per answer, but here a lost query holds its place for an RTO, 500 round trips on
loopback: counted that way, 30 % loss kept the window at its floor (5,120 lookups took 33 s;
20,480 take 9 s counted by time). A timeout in a zone that has not answered yet does not
count: silence is not congestion. At most `window` lookups are in flight in all, and the
zones take turns, so none waits behind another.

`window` is clamped to MAX_WINDOW = 128. rbldnsd, like unbound (so-rcvbuf: 0), reads from a
socket with the kernel's default receive buffer (net.core.rmem_default, 212,992 bytes on
Debian 12), which held the first 154-157 queries of a burst here: one try per lookup, 20,480
lookups, a window of 150 lost none, 160 lost 3, 200 lost 43, 1,000 lost 843, 20,000 lost
about 15,000 (the excess of the first burst).

**Limits.** Each zone stays within its own ZoneLimits (queries in flight, queries per second)
and, with `shares`, within this process's Grant of limits that several processes share (the
tighter of the two applies). The grants are read at the start of resolve() and every REFRESH
seconds; a zone granted 0 waits, and the loop sleeps until the next refresh. `shares.done`
is told of each zone once it has nothing pending or in flight.
"""

from __future__ import annotations

import heapq
import math
import random
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from reputation.blocklists.dnsbl import Reply

A, TXT = 1, 16
SOA, PTR, AAAA = 6, 12, 28
AAAA_TYPE = struct.pack("!H", AAAA)
MAX_NAME = 255  # bytes of a name in wire form (RFC 1035 3.1)
RD = 0x0100
HEADER = struct.Struct("!HHHHHH")
HEADER_REST = struct.pack("!HHHHH", RD, 1, 0, 0, 0)  # after the ID: flags and counts
RR = struct.Struct("!HHIH")
TIMEOUT_REPLY = Reply(None)
MAX_TTL = 86400
MAX_WINDOW = 128  # lookups in flight; see the module docstring
MIN_WINDOW = 4
MIN_RTO = 0.05  # seconds
MAX_BACKOFF = 4  # a retry waits at most this many RTOs
BURST = 0.05  # a rate-limited zone may catch up on this many seconds of its rate
REFRESH = 0.2  # seconds between reads of the shared grants
INF = math.inf
FIRST = -1.0  # the expiry of a first try: its server's current RTO after it was sent


@dataclass(frozen=True)
class Lookup:
    name: str  # the query name, without the trailing dot
    qtype: int = A
    zone: str = ""  # whose limits apply (the list's public zone name)


@dataclass(frozen=True)
class ZoneLimits:
    in_flight: int = 0  # 0: only the overall window applies
    qps: float = 0.0  # 0: no rate limit


@dataclass(frozen=True)
class Grant:
    """This process's share of one zone's limits right now: math.inf = no limit, 0 = wait."""

    in_flight: float = math.inf  # rounded down
    qps: float = math.inf


class Shares(Protocol):
    def current(self) -> dict[str, Grant]:
        """This process's grant for each zone it shares (zones not in the result keep
        their last grant); cheap to call, the implementation refreshes itself when due."""

    def done(self, zone: str) -> None:
        """This process has nothing left to ask of `zone` (its share may go to others)."""


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
    except (IndexError, ValueError, struct.error):
        return None


def _skip_name(data: bytes, pos: int) -> int:
    while True:
        length = data[pos]
        if length >= 0xC0:
            return pos + 2
        if length == 0:
            return pos + 1
        pos += length + 1


def _name(data: bytes, pos: int) -> str:
    """The name at `pos`, compression pointers followed (see the module docstring); raises
    ValueError or IndexError on bad data."""
    labels, size, start = [], 1, pos
    while True:
        length = data[pos]
        if length >= 0xC0:
            target = ((length & 0x3F) << 8) | data[pos + 1]
            if target >= start:  # forward or onto itself: a loop, or garbage
                raise ValueError("DNS name pointer does not point back")
            pos = start = target
            continue
        if length > 63:  # 0x40 and 0x80: label types no one uses
            raise ValueError("bad DNS label type")
        if not length:
            return b".".join(labels).decode("ascii", "replace")
        size += length + 1
        if size > MAX_NAME:
            raise ValueError("DNS name too long")
        labels.append(data[pos + 1 : pos + 1 + length])
        pos += length + 1


def _records(data: bytes, pos: int) -> Reply:
    """The Reply from the answer section at `pos`, just after the question. AAAA addresses
    are kept only for an AAAA question, so a blocklist's addresses stay IPv4."""
    _, flags, _, ancount, nscount, _ = HEADER.unpack_from(data)
    addresses, texts, ttl = [], [], MAX_TTL
    names: tuple[str, ...] = ()  # the A path builds no list it would not use
    end = pos  # of the question, whose last four bytes are its type and class
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
        elif rtype == PTR:
            names += (_name(data, pos),)
            ttl = min(ttl, rttl)
        elif rtype == AAAA and rdlength == 16 and data[end - 4 : end - 2] == AAAA_TYPE:
            addresses.append(socket.inet_ntop(socket.AF_INET6, data[pos : pos + 16]))
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
    if ttl == MAX_TTL and not nscount and not addresses and not texts and not names:
        ttl = 0
    return Reply(flags & 0x0F, tuple(addresses), tuple(texts), ttl, names)


def _txt(rdata: bytes) -> str:
    parts, pos = [], 0
    while pos < len(rdata):
        length = rdata[pos]
        parts.append(rdata[pos + 1 : pos + 1 + length].decode("utf-8", "replace"))
        pos += 1 + length
    return "".join(parts)


class ServerState:
    """What the sweeper knows of one server: its round-trip estimate (RFC 6298) and its
    congestion window. It outlives a resolve() call, so the next one starts informed."""

    def __init__(self, ceiling: float, window: int):
        self.srtt: float | None = None  # seconds; None until the first sample
        self.rttvar = 0.0
        self.ceiling = ceiling
        self.rto = ceiling  # nothing measured yet: the configured timeout (never above it)
        self.limit = window
        self.size = float(window)  # the congestion window
        self.floor = min(MIN_WINDOW, window)
        self.shrinks = 0  # loss events that halved the window
        self.recovered = -math.inf  # when it last halved
        self.grown = -math.inf  # when it last grew
        self.in_flight = 0

    def sample(self, rtt: float) -> None:
        """A round trip measured on a query sent once (Karn's rule)."""
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt
        rto = self.srtt + 4 * self.rttvar
        self.rto = self.ceiling if rto > self.ceiling else MIN_RTO if rto < MIN_RTO else rto

    def wait(self, attempt: int) -> float:
        """How long try `attempt` (0 for the first) waits for its reply: exponential back-off."""
        if not attempt:
            return self.rto
        return min(self.ceiling, self.rto * min(1 << attempt, MAX_BACKOFF))

    def answered(self, now: float) -> None:
        """An answer came: the window grows by one per round trip that brings answers."""
        if now - self.grown >= (self.srtt or 0.0):
            self.size = min(self.limit, self.size + 1)
            self.grown = now

    def timed_out(self, sent: float, now: float) -> None:
        """A query sent at `sent` timed out; a loss event halves the window once."""
        if sent >= self.recovered:
            self.size = max(self.floor, self.size / 2)
            self.recovered = now
            self.shrinks += 1


class _Zone:
    __slots__ = (
        "answered",
        "in_flight",
        "left",
        "limit",
        "limits",
        "name",
        "next_send",
        "pending",
        "sent",
        "servers",
        "spacing",
    )

    def __init__(self, name: str, limits: ZoneLimits, servers: list[ServerState]):
        self.name, self.limits = name, limits
        self.servers = servers  # whom its lookups are asked of, try after try
        self.pending: deque[int] = deque()
        self.in_flight = self.sent = self.left = 0
        self.limit, self.spacing = math.inf, 0.0  # 0: no rate limit, inf: none may go
        self.next_send = 0.0
        self.answered = False  # anything from this zone in this run: its silence is loss
        self.govern(Grant(), 0.0)

    def govern(self, grant: Grant, now: float) -> None:
        """Apply the tighter of the zone's own limits and this grant."""
        in_flight = min(self.limits.in_flight or math.inf, grant.in_flight)
        qps = min(self.limits.qps or math.inf, grant.qps)
        self.limit = math.floor(in_flight) if in_flight < math.inf else math.inf
        spacing = 0.0 if qps == math.inf else 1 / qps if qps > 0 else math.inf
        if spacing < self.spacing:  # a faster rate applies now, not after the slow gap
            self.next_send = min(self.next_send, now + spacing)
        self.spacing = spacing


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
        zone_servers: dict[str, Sequence[tuple[str, int]]] | None = None,
        shares: Shares | None = None,
    ):
        """`timeout` bounds one try, `timeout * attempts` one lookup; `window` is clamped to
        MAX_WINDOW. A zone in `zone_servers` is asked only of its own servers; `shares`
        grants this process its part of limits shared with others."""
        if not servers:
            raise ValueError("no DNS server to ask")
        self.servers = [(host, port) for host, port in servers]
        self.zone_servers = {z: [(h, p) for h, p in s] for z, s in (zone_servers or {}).items()}
        empty = [zone for zone, own in self.zone_servers.items() if not own]
        if empty:
            raise ValueError(f"no DNS server to ask for {empty[0]}")
        self.timeout, self.attempts = timeout, attempts
        self.window = max(1, min(window, MAX_WINDOW))
        self.limits = limits or {}
        self.progress = progress
        self.shares = shares
        everyone = [*self.servers, *(a for own in self.zone_servers.values() for a in own)]
        self.server_state = {address: self._state() for address in everyone}
        self.sent = 0  # datagrams sent, retransmissions included
        self.sent_by_zone: dict[str, int] = {}  # the same, per zone (for daily caps)
        self.lost = 0  # lookups never answered in their lifetime

    def _state(self) -> ServerState:
        return ServerState(self.timeout, self.window)

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
                if zone.left and self.shares is not None:  # given up: nothing more to ask
                    self.shares.done(name)
        return run.replies


class _Run:
    """The state of one resolve() call: sockets, queues, queries in flight.

    A lookup is in flight with one current try at most; the IDs of its earlier tries stay
    valid until it completes, so their late replies still answer it."""

    def __init__(self, sweeper: UDPSweeper, questions: Sequence[bytes], zones: Sequence[str]):
        self.s, self.shares, self.progress = sweeper, sweeper.shares, sweeper.progress
        self.questions = questions
        count = len(questions)
        self.replies: list[Reply | None] = [None] * count
        self.tries = [0] * count
        self.ends = [0.0] * count  # when each lookup's lifetime is spent (from its first try)
        self.live = [-1] * count  # the ID of each lookup's current try, -1 if none in flight
        self.stale: dict[int, list[int]] = {}  # lookup -> IDs of its earlier tries
        self.lifetime = sweeper.timeout * sweeper.attempts
        self.zones: dict[str, _Zone] = {}
        self.zone_of: list[_Zone] = []
        for name in zones:
            zone = self.zones.get(name)
            if zone is None:
                zone = self.zones[name] = self._zone(name)
            zone.pending.append(len(self.zone_of))
            zone.left += 1
            self.zone_of.append(zone)
        self.ring, self.turn = list(self.zones.values()), 0
        # ID -> (lookup index, try, server, sent at), for every try whose lookup is unanswered
        self.flight: dict[int, tuple[int, int, ServerState, float]] = {}
        self.timers: list[tuple[float, int, int]] = []  # retries: (expiry, ID, lookup index)
        self.expiry = [0.0] * count  # when each lookup's current try times out (FIRST: RTO)
        self.busy = 0  # lookups in flight
        self.step = max(1, count // 200)  # progress reports
        self.left = count
        self.qid = random.getrandbits(16)
        used = {state for zone in self.ring for state in zone.servers}
        self.socket_of = {
            state: self._open(*address)
            for address, state in sweeper.server_state.items()
            if state in used
        }
        self.server_of = {sock.fileno(): state for state, sock in self.socket_of.items()}
        # First tries in the order they were sent: (sent at, ID, lookup index)
        self.firsts: dict[ServerState, deque[tuple[float, int, int]]] = {
            state: deque() for state in used
        }
        self.unsent = 0

    def _zone(self, name: str) -> _Zone:
        state, own = self.s.server_state, self.s.zone_servers.get(name, self.s.servers)
        return _Zone(name, self.s.limits.get(name, ZoneLimits()), [state[a] for a in own])

    @staticmethod
    def _open(host: str, port: int) -> socket.socket:
        # Connected: the kernel drops datagrams from anyone but this server.
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
        sock.connect((host, port))
        return sock

    def close(self) -> None:
        for sock in self.socket_of.values():
            sock.close()
        for state in self.socket_of:
            state.in_flight = 0

    def loop(self) -> None:
        readers = list(self.socket_of.values())
        refresh = -math.inf
        while self.left:
            now = time.monotonic()
            if self.shares is not None and now >= refresh:
                self._govern(self.shares.current(), now)
                refresh = now + REFRESH
            due = self._expire(now)
            wake = self._fill(now)
            if not self.left:
                break
            wait = 0.05 if due == INF else due - now
            if wake is not None:
                wait = min(wait, wake - now)
            if self.shares is not None:
                wait = min(wait, refresh - now)
            ready, _, _ = select.select(readers, [], [], max(wait, 0.0))
            if ready:
                now = time.monotonic()
                for sock in ready:
                    self._drain(sock, now)

    def _govern(self, grants: dict[str, Grant], now: float) -> None:
        for name, grant in grants.items():
            zone = self.zones.get(name)
            if zone is not None:
                zone.govern(grant, now)

    def _fill(self, now: float) -> float | None:
        """Send what the window, the servers' windows and the zones' limits allow, the zones
        in turn from where the last call stopped (so none starves, and a zone's retries go
        first); return when a rate-limited zone may send next (None if none waits)."""
        wake = None
        ring, room, idle, turn = self.ring, self.s.window - self.busy, 0, self.turn
        tries, zones = self.tries, len(ring)
        while room > 0 and idle < zones:
            zone = ring[turn]
            turn = turn + 1 if turn + 1 < zones else 0
            idle += 1
            if not zone.pending or zone.in_flight >= zone.limit:
                continue
            spacing = zone.spacing
            if spacing and (spacing == INF or now < zone.next_send):
                if spacing != INF:  # else granted nothing: the next refresh may change that
                    wake = zone.next_send if wake is None else min(wake, zone.next_send)
                continue
            index, server = zone.pending[0], zone.servers[0]
            if tries[index]:  # a retry: maybe answered or expired while it waited
                index = self._next(zone, now)
                if index is None:
                    continue
                server = zone.servers[tries[index] % len(zone.servers)]
            if server.in_flight + 1 > server.size:
                continue
            zone.pending.popleft()
            if spacing:
                zone.next_send = max(zone.next_send, now - BURST) + spacing
            self._send(index, zone, server, now)
            room, idle = room - 1, 0
        self.turn = turn
        return wake

    def _next(self, zone: _Zone, now: float) -> int | None:
        """The lookup at the head of the zone's queue, past any answered while they waited
        for a retry and any whose lifetime ran out there (None if the queue empties)."""
        pending = zone.pending
        while pending:
            index = pending[0]
            if self.replies[index] is not None:
                pending.popleft()
            elif self.tries[index] and now >= self.ends[index]:
                pending.popleft()
                self.s.lost += 1
                self._finish(index, TIMEOUT_REPLY)
            else:
                return index
        return None

    def _send(self, index: int, zone: _Zone, server: ServerState, now: float) -> None:
        qid = self.qid
        while qid in self.flight:
            qid = (qid + 1) & 0xFFFF
        self.qid = (qid + 1) & 0xFFFF
        attempt = self.tries[index]
        self.tries[index] = attempt + 1
        if not attempt:
            self.ends[index] = now + self.lifetime
        try:
            self.socket_of[server].send(
                qid.to_bytes(2, "big") + HEADER_REST + self.questions[index]
            )
        except (BlockingIOError, InterruptedError, ConnectionRefusedError):
            self.unsent += 1  # buffer full, or an ICMP error: the timeout retransmits it
        self.s.sent += 1
        zone.sent += 1
        zone.in_flight += 1
        server.in_flight += 1
        self.busy += 1
        self.flight[qid] = (index, attempt, server, now)
        self.live[index] = qid
        if attempt:
            self._arm(qid, index, now, server.wait(attempt))
        else:
            self.expiry[index] = FIRST
            self.firsts[server].append((now, qid, index))

    def _arm(self, qid: int, index: int, sent: float, wait: float) -> None:
        """Time the try out `wait` after it was sent, or at the end of the lookup's lifetime
        if that comes first or too soon after for another try to be worth it."""
        end = self.ends[index]
        expiry = end if end - (sent + wait) < wait / 2 else sent + wait
        self.expiry[index] = expiry
        heapq.heappush(self.timers, (expiry, qid, index))

    def _drain(self, sock: socket.socket, now: float) -> None:
        flight, questions = self.flight, self.questions
        server = self.server_of[sock.fileno()]
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
            entry = flight.get(qid)
            if entry is None or entry[2] is not server:
                continue
            reply = parse_reply(data, questions[entry[0]])
            if reply is not None:
                self._answered(qid, reply, now)

    def _answered(self, qid: int, reply: Reply, now: float) -> None:
        index, _, server, sent = self.flight[qid]
        zone = self.zone_of[index]
        zone.answered = True
        if self.tries[index] == 1:
            server.sample(now - sent)
        if server.size < server.limit:
            server.answered(now)
        live = self.live[index]
        if live >= 0:  # else it waits for a retry: its place is free already
            (server if live == qid else self.flight[live][2]).in_flight -= 1
            zone.in_flight -= 1
            self.busy -= 1
        self._finish(index, reply)

    def _finish(self, index: int, reply: Reply) -> None:
        flight = self.flight
        flight.pop(self.live[index], None)
        if index in self.stale:
            for qid in self.stale.pop(index):
                flight.pop(qid, None)
        self.live[index] = -1
        self.replies[index] = reply
        zone = self.zone_of[index]
        zone.left -= 1
        if not zone.left and self.shares is not None:
            self.shares.done(zone.name)
        self.left -= 1
        if self.progress is not None and (self.left % self.step == 0):
            self.progress(len(self.replies) - self.left, len(self.replies))

    def _expire(self, now: float) -> float:
        """Time out the tries whose wait is over; return when the next one is due (inf if
        none is in flight)."""
        live, expiry, due = self.live, self.expiry, INF
        for server, firsts in self.firsts.items():
            while firsts:
                sent, qid, index = firsts[0]
                current = live[index] == qid and expiry[index] == FIRST
                if current and sent + server.rto > now:
                    due = min(due, sent + server.rto)
                    break
                firsts.popleft()
                if current:
                    self._timed_out(qid, index, now)
        timers = self.timers
        while timers:
            when, qid, index = timers[0]
            current = live[index] == qid and expiry[index] == when
            if current and when > now:
                return min(due, when)
            heapq.heappop(timers)
            if current:
                self._timed_out(qid, index, now)
        return due

    def _timed_out(self, qid: int, index: int, now: float) -> None:
        zone = self.zone_of[index]
        _, _, server, sent = self.flight[qid]
        if not zone.answered and now < sent + self.s.timeout and now < self.ends[index]:
            self._arm(qid, index, sent, self.s.timeout)  # a silent zone: retry slowly
            return
        server.in_flight -= 1
        zone.in_flight -= 1
        self.busy -= 1
        if now >= self.ends[index]:
            self.s.lost += 1
            self._finish(index, TIMEOUT_REPLY)
            return
        if zone.answered:
            server.timed_out(sent, now)
        self.live[index] = -1
        self.stale.setdefault(index, []).append(qid)
        zone.pending.appendleft(index)
