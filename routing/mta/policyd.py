"""The Postfix policy delegation service: envelope in, `FILTER <transport>:` out (`DUNNO` for
requests it does not handle, 4xx when the pool has no address in rotation).

For sites that want only the envelope rules (a DSN by its null sender, a sender domain with no
A/MX). The protocol (Postfix SMTPD_POLICY_README): `name=value` lines ended by an empty line,
answered by `action=...` and an empty line, many requests per connection. Parsing and
answering are pure functions; `PolicyServer` is a small threaded server over TCP or a unix
socket.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import threading
from collections.abc import Iterable

from routing.engine import Engine
from routing.facts import DEFER, REJECT, Decision
from routing.limits.checker import rejection_text
from routing.mta.postfix import Listen, filter_action, unix_listener
from routing.policy import PolicyUnavailable

logger = logging.getLogger(__name__)

MAX_LINE = 8192
MAX_ATTRIBUTES = 200
DUNNO = "DUNNO"


class ProtocolError(ValueError):
    """The client broke the protocol (line too long, too many attributes)."""


def parse_request(lines: Iterable[bytes]) -> dict[str, str]:
    """The attributes of one request (its lines, without the ending empty line)."""
    request = {}
    for line in lines:
        name, sep, value = line.decode("utf-8", "replace").rstrip("\r\n").partition("=")
        if sep:
            request[name.strip()] = value
    return request


def envelope(request: dict[str, str]) -> dict:
    """The engine's envelope arguments: an empty `sender` is the null sender of a DSN."""
    recipient = request.get("recipient", "")
    return {
        "mail_from": request.get("sender", ""),
        "rcpt_to": [recipient] if recipient else [],
        "source": request.get("sasl_username") or request.get("client_address", ""),
        "sasl_login": request.get("sasl_username", ""),
        # At DATA (where postfix_config asks) Postfix names the recipient only when it is
        # the one: the sender limits count the others too.
        "recipient_count": recipient_count(request),
    }


def recipient_count(request: dict[str, str]) -> int:
    try:
        return max(0, int(request.get("recipient_count") or 0))
    except ValueError:
        return 0


def action_for(decision: Decision, nexthop: str = "") -> str:
    """FILTER to the chosen address's transport; defer (4xx) when there is none, since the
    default transport would be a wrong pool. A sender limit's rejection is a reject action
    with its code, `550 5.7.1 …` (Postfix's plain REJECT would answer 554)."""
    if decision.action == REJECT and decision.limit is not None:
        return f"550 5.7.1 {rejection_text(decision.limit)}"
    if decision.action == DEFER:
        return "451 4.3.0 Poolwarden: sender limits unavailable, try again later"
    if not decision.source_ip:
        return f"451 4.3.0 Poolwarden: no source address in rotation in the {decision.pool} pool"
    return filter_action(decision.source_ip, nexthop)


def answer(request: dict[str, str], engine: Engine, nexthop: str = "") -> bytes:
    """The reply to one request, ready to send."""
    if request.get("request") != "smtpd_access_policy":
        return reply(DUNNO)
    try:
        _, decision = engine.route_envelope(**envelope(request))
    except PolicyUnavailable as exc:  # no snapshot since start-up: logged by the refresher
        return reply(f"451 4.3.0 Poolwarden: {exc}, try again later")
    except Exception:  # never let a bug send mail by the wrong pool: it waits instead
        logger.exception("policyd: routing failed; message deferred")
        return reply("451 4.3.0 Poolwarden: routing failed, try again later")
    return reply(action_for(decision, nexthop))


def reply(action: str) -> bytes:
    return f"action={action}\n\n".encode()


def read_request(stream) -> list[bytes] | None:
    """The lines of the next request on `stream`; None at end of stream."""
    lines = []
    while True:
        line = stream.readline(MAX_LINE + 1)
        if not line:
            return None
        if len(line) > MAX_LINE or len(lines) >= MAX_ATTRIBUTES:
            raise ProtocolError("request too large")
        if line in (b"\n", b"\r\n"):
            return lines
        lines.append(line)


class Handler(socketserver.StreamRequestHandler):
    """One persistent client connection: answer requests until it closes."""

    server: PolicyServer

    def handle(self) -> None:
        try:
            while (lines := read_request(self.rfile)) is not None:
                request = parse_request(lines)
                self.wfile.write(answer(request, self.server.engine, self.server.nexthop))
                self.wfile.flush()
        except (ProtocolError, ConnectionError):
            return


class PolicyServer:
    """The service on a TCP address or a unix socket; `stop()` ends it from any thread."""

    def __init__(self, listen: Listen, engine: Engine, nexthop: str = ""):
        self.server = make_server(listen)
        self.server.engine, self.server.nexthop = engine, nexthop
        self.thread = threading.Thread(target=self.server.serve_forever, name="policyd")

    def start(self) -> PolicyServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join()
        self.server.server_close()


class TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class TCP6Server(TCPServer):
    address_family = socket.AF_INET6


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False

    def server_close(self) -> None:
        super().server_close()
        if os.path.exists(self.server_address):
            os.unlink(self.server_address)


def make_server(listen: Listen) -> socketserver.BaseServer:
    """A bound server; raises OSError when the address cannot be used."""
    if not listen.path:
        server_class = TCP6Server if ":" in listen.host else TCPServer
        return server_class((listen.host, listen.port), Handler)
    server = UnixServer(listen.path, Handler, bind_and_activate=False)
    server.socket.close()
    server.socket = unix_listener(listen.path, server.request_queue_size)
    return server
