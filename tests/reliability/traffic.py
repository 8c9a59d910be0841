"""Clients that keep sending decisions to a running stack and record each answer: the HTTP
API on a kept-alive connection, the policy service on a persistent unix-socket connection, and
mail through Postfix (one SMTP session per message). Each answer is a `Sample` with the time
it was asked, how long it took and whether it was a decision.
"""

from __future__ import annotations

import http.client
import json
import smtplib
import socket
import statistics
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import urlsplit

SENDERS = ("ann@both.test", "bo@both.test", "", "cy@neither.test")  # normal, DSN, no A/MX


@dataclass(frozen=True)
class Sample:
    at: float  # time.monotonic() when asked
    seconds: float
    ok: bool
    detail: str  # the pool, action or error


class Load(threading.Thread):
    """Calls `ask()` until stopped, at most `rate` times a second (None: as fast as it can)."""

    def __init__(self, name: str, rate: float | None = None):
        super().__init__(name=name, daemon=True)
        self.rate = rate
        self.samples: list[Sample] = []
        self.stopping = threading.Event()
        self.sent = 0

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stopping.is_set():
            sender = SENDERS[self.sent % len(SENDERS)]
            self.sent += 1
            started = time.monotonic()
            try:
                ok, detail = self.ask(sender)
            except Exception as exc:
                ok, detail = False, f"{type(exc).__name__}: {exc}"
                self.reconnect()
            self.samples.append(Sample(started, time.monotonic() - started, ok, detail))
            if self.rate:
                next_at += 1 / self.rate
                self.stopping.wait(max(0.0, next_at - time.monotonic()))
        self.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=60)

    def ask(self, sender: str) -> tuple[bool, str]:
        raise NotImplementedError

    def reconnect(self) -> None:
        self.close()

    def close(self) -> None:
        pass


class ApiLoad(Load):
    """POST /api/v1/route; a decision is a 200 whose JSON names a pool (the detail says
    whether the decision listed problems)."""

    def __init__(self, url: str, token: str, rate: float | None = None):
        super().__init__("api-load", rate)
        self.where = urlsplit(url).netloc
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.conn: http.client.HTTPConnection | None = None

    def ask(self, sender: str) -> tuple[bool, str]:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.where, timeout=60)
        body = json.dumps({"mail_from": sender, "rcpt_to": ["bob@sink.test"]})
        self.conn.request("POST", "/api/v1/route", body, self.headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status != 200:
            return False, f"HTTP {response.status}: {data[:200]!r}"
        decision = json.loads(data)
        return True, decision["pool"] + (" (problems)" if decision["problems"] else "")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class PolicydLoad(Load):
    """smtpd_access_policy requests; a decision is a FILTER action."""

    def __init__(self, path: str, rate: float | None = None):
        super().__init__("policyd-load", rate)
        self.path = path
        self.stream = None

    def ask(self, sender: str) -> tuple[bool, str]:
        if self.stream is None:
            sock = socket.socket(socket.AF_UNIX)
            sock.settimeout(60)
            sock.connect(self.path)
            self.stream = sock.makefile("rwb")
        request = (
            "request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=127.0.0.1\n"
            f"sender={sender}\nrecipient=bob@sink.test\n\n"
        )
        self.stream.write(request.encode())
        self.stream.flush()
        answer = self.stream.readline().decode().strip()
        self.stream.readline()  # the empty line that ends the answer
        return answer.startswith("action=FILTER "), answer

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None


class MailLoad(Load):
    """One message per SMTP session into Postfix; accepted (250) is all it can see here, the
    sink tells where each went (`ids` keys the messages by their X-Test-Id)."""

    def __init__(self, port: int, rate: float | None = None):
        super().__init__("mail-load", rate)
        self.port = port
        self.ids: list[str] = []

    def ask(self, sender: str) -> tuple[bool, str]:
        test_id = uuid.uuid4().hex
        text = (
            f"From: {sender or 'MAILER-DAEMON@pw-test.localdomain'}\r\nTo: bob@sink.test\r\n"
            f"Subject: outage\r\nX-Test-Id: {test_id}\r\n\r\nHello.\r\n"
        )
        with smtplib.SMTP("127.0.0.1", self.port, timeout=60) as client:
            client.sendmail(sender, ["bob@sink.test"], text.encode())
        self.ids.append(test_id)
        return True, "accepted"


def between(samples: list[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.at < end]


def summary(samples: list[Sample]) -> dict:
    """Count, failures, decisions per second and latency percentiles (ms) of `samples`."""
    if not samples:
        return {"n": 0, "failed": 0, "rate": 0.0, "p50": 0.0, "p99": 0.0, "max": 0.0}
    ms = sorted(s.seconds * 1000 for s in samples)
    span = max(s.at + s.seconds for s in samples) - min(s.at for s in samples)
    return {
        "n": len(samples),
        "failed": sum(not s.ok for s in samples),
        "rate": len(samples) / span if span > 0 else 0.0,
        "p50": statistics.median(ms),
        "p99": ms[min(len(ms) - 1, int(len(ms) * 0.99))],
        "max": ms[-1],
    }
