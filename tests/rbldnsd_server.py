"""A real rbldnsd on loopback for blocklist tests, serving tests/zones/dnsbl (see its README
for what every zone answers), and small Python DNS proxies in front of it for what rbldnsd
cannot do: a resolver that rewrites NXDOMAIN into an address, a link that loses replies, a
slow link; the proxies also count what they are asked.

Use the session-scoped `rbldnsd` fixture; it yields an `Rbldnsd`. Nothing here sends a packet
off the host: rbldnsd and the proxies listen on 127.0.0.1 and only talk to each other.
"""

from __future__ import annotations

import heapq
import itertools
import os
import random
import selectors
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

RBLDNSD = "/usr/sbin/rbldnsd"
ZONE_DIR = Path(__file__).resolve().parent / "zones" / "dnsbl"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
ZONES = [
    "zen.test:ip4set:zen-sbl.zone,zen-xbl.zone",
    "zen.test:ip6trie:zen6.zone",
    "v6only.test:ip6trie:v6only.zone",
    "bitmask.test:ip4set:bitmask.zone",
    "minor.test:ip4set:minor.zone",
    "dynamic.test:ip4set:dynamic.zone",
    "dbl.test:dnset:dbl.zone",
    "refused.test:ip4set:empty.zone",
    "refused.test:acl:refuse.acl",
    "silent.test:ip4set:empty.zone",
    "silent.test:acl:ignore.acl",
    "all.test:ip4set:empty.zone",
    "all.test:acl:all.acl",
    "pubres.test:ip4set:empty.zone",
    "pubres.test:acl:pubres.acl",
]


def udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def _wire(name: str) -> bytes:
    return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"


def _name(query: bytes) -> str:
    """The question name of a query datagram, lowercase, without the trailing dot."""
    labels, pos = [], 12
    while pos < len(query) and query[pos]:
        labels.append(query[pos + 1 : pos + 1 + query[pos]].decode("ascii", "replace"))
        pos += 1 + query[pos]
    return ".".join(labels).lower()


def ask(port: int, name: str, qtype: int = 1, timeout: float = 0.3) -> bytes | None:
    """One raw query; the reply datagram, or None on timeout."""
    packet = struct.pack("!HHHHHH", 4242, 0x0100, 1, 0, 0, 0) + _wire(name)
    packet += struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (HOST, port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


@dataclass
class Rbldnsd:
    """Handle on the running rbldnsd. `nameserver` is in POOLWARDEN_NAMESERVERS format."""

    port: int
    zone_dir: Path
    proc: subprocess.Popen
    log: Path

    @property
    def nameserver(self) -> str:
        return f"{HOST}:{self.port}"

    def write_zone(self, name: str, text: str) -> None:
        """Replace zone file `name` and make rbldnsd reload it (SIGHUP), waiting until it
        has (a file that already holds `text` is served as it is)."""
        path = self.zone_dir / name
        if path.read_text() == text:
            return
        path.write_text(text)
        path.chmod(0o644)
        # rbldnsd reloads a file whose mtime changed; make sure it did, even within a second.
        stamp = max(time.time(), path.stat().st_mtime) + 1
        os.utime(path, (stamp, stamp))
        reloads = self._reloads()
        self.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + START_TIMEOUT
        while self._reloads() == reloads:
            if time.monotonic() > deadline:
                pytest.fail(f"rbldnsd did not reload {name}:\n{self.log.read_text()}", False)
            time.sleep(0.01)

    def _reloads(self) -> int:
        return self.log.read_text().count("zones reloaded")

    def answers(self, name: str) -> bool:
        return ask(self.port, name) is not None


def _start(zone_dir: Path, port: int, log: Path, zones: list[str]) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [RBLDNSD, "-n", "-b", f"{HOST}/{port}", "-w", str(zone_dir), "-t", "60", *zones],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
        )


def _wait(proc: subprocess.Popen, port: int, log: Path, probe: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"rbldnsd exited with {proc.returncode}:\n{log.read_text()}", False)
        if ask(port, probe, timeout=0.2) is not None:
            return
        time.sleep(0.05)
    pytest.fail(f"rbldnsd did not answer within {START_TIMEOUT} s:\n{log.read_text()}", False)


@contextmanager
def serve(
    source: Path = ZONE_DIR, zones: list[str] | None = None, probe: str = "2.0.0.127.zen.test"
) -> Iterator[Rbldnsd]:
    """Run rbldnsd on a copy of the zone files in `source` (the test zones by default) until
    the block ends; bench/sweep.py uses it too. `probe` answers once rbldnsd is up."""
    # rbldnsd started as root reads its zones as user rbldns: a world-readable copy.
    zone_dir = Path(tempfile.mkdtemp(prefix="pw-rbldnsd-"))
    log_dir = Path(tempfile.mkdtemp(prefix="pw-rbldnsd-log-"))
    try:
        zone_dir.chmod(0o755)
        for path in source.iterdir():
            shutil.copy(path, zone_dir / path.name)
            (zone_dir / path.name).chmod(0o644)
        port = udp_port()
        log = log_dir / "rbldnsd.log"
        proc = _start(zone_dir, port, log, ZONES if zones is None else zones)
        try:
            _wait(proc, port, log, probe)
            yield Rbldnsd(port, zone_dir, proc, log)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    finally:
        shutil.rmtree(zone_dir, ignore_errors=True)
        shutil.rmtree(log_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def rbldnsd() -> Iterator[Rbldnsd]:
    """rbldnsd on a free 127.0.0.1 UDP port serving tests/zones/dnsbl, for the session."""
    from tests.support import require_tool

    require_tool("rbldnsd", RBLDNSD, install="apt-get install rbldnsd")
    with serve() as server:
        yield server


# --- proxies -------------------------------------------------------------------------------

REWRITTEN_TO = "198.51.100.200"  # where a "helpful" resolver sends mistyped names


def rewrite_nxdomain(reply: bytes) -> bytes:
    """NXDOMAIN -> NOERROR with one A record outside 127/8, as some ISP resolvers do."""
    if len(reply) < 12 or reply[3] & 0x0F != 3:
        return reply
    end = 12
    while reply[end]:
        end += reply[end] + 1
    end += 5  # root label, type, class
    header = bytearray(reply[:12])
    header[3] &= 0xF0
    header[6:12] = struct.pack("!HHH", 1, 0, 0)
    answer = struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(REWRITTEN_TO)
    return bytes(header) + reply[12:end] + answer


class Proxy:
    """A UDP DNS proxy on loopback in front of `upstream`: drops a `loss` fraction of the
    replies (chosen by a seeded random generator) and every reply about the name `lose` (of
    type `lose_type` only, when given: 1 = A, 16 = TXT; only for `lose_for` seconds from the
    first such reply, when given), holds each reply `delay` seconds
    before passing it on, and optionally rewrites NXDOMAIN.

    It counts the query names it forwards (`asked`) and the most queries outstanding at
    once (`peak`: forwarded, their reply neither passed on nor dropped yet). `loss` may be
    changed while it runs."""

    def __init__(
        self,
        upstream: int,
        *,
        loss: float = 0.0,
        lose: str = "",
        lose_type: int = 0,
        lose_for: float = 0.0,
        rewrite: bool = False,
        seed: int = 5,
        delay: float = 0.0,
    ):
        self.upstream, self.loss, self.rewrite = (HOST, upstream), loss, rewrite
        self.lose = _wire(lose) if lose else b""
        self.lose_type = struct.pack("!H", lose_type) if lose_type else b""
        self.lose_for, self.losing_since = lose_for, 0.0
        self.delay = delay
        self.random = random.Random(seed)
        self.front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front.bind((HOST, 0))
        self.back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.back.bind((HOST, 0))
        self.port: int = self.front.getsockname()[1]
        self.clients: dict[int, tuple] = {}
        self.dropped = 0
        self.asked: Counter[str] = Counter()
        self.outstanding: set[int] = set()
        self.peak = 0
        self._held: list[tuple[float, int, bytes, tuple]] = []  # (release at, seq, reply, client)
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="dns-proxy", daemon=True)
        self._thread.start()

    @property
    def nameserver(self) -> str:
        return f"{HOST}:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.front.close()
        self.back.close()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.front, selectors.EVENT_READ)
            selector.register(self.back, selectors.EVENT_READ)
            while not self._stop.is_set():
                wait = 0.1
                if self._held:
                    wait = min(wait, max(0.0, self._held[0][0] - time.monotonic()))
                for key, _ in selector.select(timeout=wait):
                    if key.fileobj is self.front:
                        self._forward()
                    else:
                        self._reply()
                self._release(time.monotonic())

    def _forward(self) -> None:
        data, client = self.front.recvfrom(4096)
        if len(data) < 12:
            return
        qid = struct.unpack("!H", data[:2])[0]
        self.clients[qid] = client
        self.asked[_name(data)] += 1
        self.outstanding.add(qid)
        self.peak = max(self.peak, len(self.outstanding))
        self.back.sendto(data, self.upstream)

    def _reply(self) -> None:
        data, _ = self.back.recvfrom(4096)
        qid = struct.unpack("!H", data[:2])[0]
        client = self.clients.get(qid)
        if client is None:
            return
        question = data[12 : 12 + len(self.lose) + 2].lower()
        lost = self.lose and question.startswith(self.lose) and question.endswith(self.lose_type)
        if lost and self.lose_for:
            self.losing_since = self.losing_since or time.monotonic()
            lost = time.monotonic() - self.losing_since < self.lose_for
        if lost or (self.loss and self.random.random() < self.loss):
            self.dropped += 1
            self.outstanding.discard(qid)
            return
        data = rewrite_nxdomain(data) if self.rewrite else data
        heapq.heappush(self._held, (time.monotonic() + self.delay, next(self._seq), data, client))

    def _release(self, now: float) -> None:
        while self._held and self._held[0][0] <= now:
            _, _, data, client = heapq.heappop(self._held)
            self.outstanding.discard(struct.unpack("!H", data[:2])[0])
            self.front.sendto(data, client)


@contextmanager
def proxy(upstream: int, **options) -> Iterator[Proxy]:
    server = Proxy(upstream, **options)
    try:
        yield server
    finally:
        server.close()
