"""A real DNS server on loopback for routing tests: Debian's unbound serving the `.test` zones
of tests/zones/routing-unbound.conf (the table of names and answers is at the top of that file).

Use the session-scoped `dns_server` fixture; it yields a `DNSServer`. Nothing here ever sends a
packet off the host: unbound listens on 127.0.0.1, serves local data, forwards only to
loopback, and leaves its outgoing queries from 127.0.0.1.
"""

from __future__ import annotations

import selectors
import socket
import string
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.resolver
import pytest

UNBOUND = "/usr/sbin/unbound"
UNBOUND_CONTROL = "/usr/sbin/unbound-control"
TEMPLATE = Path(__file__).resolve().parent / "zones" / "routing-unbound.conf"
HOST = "127.0.0.1"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class SilentUpstream:
    """A loopback DNS "server" on one UDP+TCP port that reads every query and never answers.

    slow.test. is forwarded here, so a client of unbound sees a real upstream timeout rather
    than a configured one. `received` counts the UDP datagrams and TCP connections taken in.
    """

    def __init__(self) -> None:
        self.udp, self.tcp = _bind_udp_and_tcp()
        self.port: int = self.udp.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="silent-dns", daemon=True)

    def start(self) -> None:
        self.tcp.listen()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.udp.close()
        self.tcp.close()

    def _serve(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self.udp, selectors.EVENT_READ)
            selector.register(self.tcp, selectors.EVENT_READ)
            while not self._stop.is_set():
                # The timeout only bounds how long stop() waits for this loop to notice.
                for key, _ in selector.select(timeout=0.2):
                    self._read(selector, key.fileobj)
            for key in list(selector.get_map().values()):
                if key.fileobj not in (self.udp, self.tcp):
                    key.fileobj.close()

    def _read(self, selector: selectors.BaseSelector, sock: socket.socket) -> None:
        if sock is self.udp:
            sock.recvfrom(65535)
            self.received += 1
        elif sock is self.tcp:
            conn, _ = sock.accept()
            selector.register(conn, selectors.EVENT_READ)
            self.received += 1
        elif not sock.recv(65535):
            # The peer gave up; keep open connections otherwise, answering nothing.
            selector.unregister(sock)
            sock.close()


@dataclass(frozen=True)
class DNSServer:
    """Handle on the running unbound. `nameserver` is in POOLWARDEN_NAMESERVERS format."""

    host: str
    port: int
    conf: Path
    log: Path
    silent_upstream: SilentUpstream = field(repr=False)

    @property
    def nameserver(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def silent_nameserver(self) -> str:
        """A loopback DNS endpoint that takes every query and never answers: the dependable
        way to make a client time out. (Through unbound, slow.test. times out only until
        unbound gives the silent upstream up, after which it answers SERVFAIL at once.)"""
        return f"{HOST}:{self.silent_upstream.port}"

    def resolver(self, lifetime: float = 3.0) -> dns.resolver.Resolver:
        """A dnspython resolver that asks only this server (no /etc/resolv.conf)."""
        resolver = dns.resolver.Resolver(configure=False)
        resolver.nameservers = [self.host]
        resolver.port = self.port
        resolver.lifetime = lifetime
        return resolver

    def add(self, record: str) -> None:
        """Add one record at runtime, e.g. `add("fresh.test. 2 IN A 192.0.2.55")`."""
        self._control("local_data", record)

    def remove(self, name: str) -> None:
        """Remove every record of `name` added with add() or listed in the config."""
        self._control("local_data_remove", name)

    def flush(self, name: str) -> None:
        """Drop `name` from unbound's cache (matters for forwarded names, not local data)."""
        self._control("flush", name)

    def queries(self) -> int:
        """Total client queries unbound has received since it started."""
        stats = self._control("stats_noreset")
        for line in stats.splitlines():
            key, _, value = line.partition("=")
            if key == "total.num.queries":
                return int(value)
        raise AssertionError(f"no total.num.queries in unbound stats:\n{stats}")

    def _control(self, *args: str) -> str:
        cmd = [UNBOUND_CONTROL, "-c", str(self.conf), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        # unbound-control exits 0 for some refused commands, so also check the reply text.
        if done.returncode != 0 or done.stdout.startswith("error"):
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stdout}{done.stderr}")
        return done.stdout


def _bind_udp_and_tcp() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same free loopback port (kept open: no race)."""
    for _ in range(20):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((HOST, 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((HOST, udp.getsockname()[1]))
        except OSError:
            udp.close()
            tcp.close()
            continue
        return udp, tcp
    raise RuntimeError("no loopback port free for both UDP and TCP")


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports free for UDP and TCP right now, for unbound to bind next.
    All are held until every one is picked, so the kernel cannot hand out one twice."""
    pairs = [_bind_udp_and_tcp() for _ in range(count)]
    ports = [udp.getsockname()[1] for udp, _ in pairs]
    for udp, tcp in pairs:
        udp.close()
        tcp.close()
    return ports


def write_config(workdir: Path, port: int, control_port: int, slow_port: int) -> Path:
    conf = workdir / "unbound.conf"
    text = string.Template(TEMPLATE.read_text()).substitute(
        workdir=workdir, port=port, control_port=control_port, slow_port=slow_port
    )
    conf.write_text(text)
    return conf


def _answers(port: int) -> bool:
    query = dns.message.make_query("a-only.test.", "A")
    try:
        dns.query.udp(query, HOST, port=port, timeout=0.3)
    except (dns.exception.Timeout, OSError):
        return False
    return True


def _diagnostics(workdir: Path) -> str:
    parts = []
    for name in ("unbound.stderr", "unbound.log"):
        path = workdir / name
        text = path.read_text(errors="replace") if path.exists() else "(none)"
        parts.append(f"--- {path} ---\n{text}")
    return "\n".join(parts)


def _wait_until_answering(proc: subprocess.Popen, port: int, workdir: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"unbound exited with {proc.returncode} at startup\n{_diagnostics(workdir)}",
                pytrace=False,
            )
        if _answers(port):
            return
        time.sleep(0.1)
    pytest.fail(
        f"unbound did not answer on {HOST}:{port} within {START_TIMEOUT:.0f} s\n"
        f"{_diagnostics(workdir)}",
        pytrace=False,
    )


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT)


def _require_unbound() -> None:
    from tests.support import require_tool

    require_tool("unbound", UNBOUND, UNBOUND_CONTROL, install="apt-get install unbound")


@contextmanager
def serve(workdir: Path) -> Iterator[DNSServer]:
    """Run unbound with the routing test zones from `workdir` until the block ends (also
    used by bench/route.py, outside pytest)."""
    upstream = SilentUpstream()
    upstream.start()
    port, control_port = _free_ports(2)
    conf = write_config(workdir, port, control_port, upstream.port)
    with (workdir / "unbound.stderr").open("w") as stderr:
        # -d: foreground, so this Popen is unbound itself and terminate() reaches it.
        proc = subprocess.Popen(
            [UNBOUND, "-d", "-c", str(conf)],
            cwd=workdir,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
        )
    try:
        _wait_until_answering(proc, port, workdir)
        yield DNSServer(HOST, port, conf, workdir / "unbound.log", upstream)
    finally:
        _stop(proc)
        upstream.stop()


@pytest.fixture(scope="session")
def dns_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DNSServer]:
    """Unbound on a free 127.0.0.1 port serving the routing test zones, for the session."""
    _require_unbound()
    with serve(tmp_path_factory.mktemp("unbound")) as server:
        yield server
