"""Real receivers on loopback for alert tests: an SMTP server (aiosmtpd), an SMTP relay that
goes silent on demand (a TCP proxy in front of it that holds connections without a byte), and
an HTTP server that records webhook requests and answers with the statuses, and after the
delay, a test asks for."""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.support import free_port
from tests.tcp_proxy import TcpProxy


class Mailbox:
    """An aiosmtpd handler keeping every message; refuses recipients in `refuse`."""

    def __init__(self):
        self.messages: list[email.message.EmailMessage] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            email.message_from_bytes(envelope.content, policy=email.policy.default)
        )
        return "250 Message accepted"


class SMTPServer:
    def __init__(self):
        self.mailbox = Mailbox()
        self.port = free_port()
        self.controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class SilentRelay:
    """An SMTP relay at `port` that accepts connections and never says a word while `silent`
    (no banner, no reply); otherwise it passes them to `server`."""

    def __init__(self, server: SMTPServer):
        self.proxy = TcpProxy(("127.0.0.1", server.port))

    def __enter__(self) -> SilentRelay:
        self.proxy.start()
        self.silent = True
        return self

    def __exit__(self, *exc) -> None:
        self.proxy.stop()

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def silent(self) -> bool:
        return self.proxy.mode == "hang"

    @silent.setter
    def silent(self, silent: bool) -> None:
        self.proxy.mode = "hang" if silent else "pass"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class HookState:
    requests: list[Request] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in order, then 200
    delay: float = 0.0  # seconds between reading a request and answering it
    lock: threading.Lock = field(default_factory=threading.Lock)


class HookServer:
    """A ThreadingHTTPServer on 127.0.0.1 recording POSTs."""

    def __init__(self):
        self.state = state = HookState()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with state.lock:
                    state.requests.append(Request(self.path, dict(self.headers), body))
                    status = state.statuses.pop(0) if state.statuses else 200
                time.sleep(state.delay)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> HookServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def requests(self) -> list[Request]:
        with self.state.lock:
            return list(self.state.requests)
