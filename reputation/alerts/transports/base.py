"""What every transport gets (a rendered `Message`) and how it fails (`TransportError`)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Every timeout of a send is at most this: a fifth of the claim lease (sending.LEASE, 5 min),
# so a silent server fails a send well before its claim could lapse (checks.py says so for a
# larger EMAIL_TIMEOUT; the email transport clamps it).
MAX_TIMEOUT = 60.0


class TransportError(Exception):
    """Sending failed. `permanent`: retrying cannot help (bad address, 4xx), so the channel
    is disabled; otherwise the notifications are retried later with backoff."""

    def __init__(self, message: str, *, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Message:
    """One alert message (a digest of one or more events)."""

    subject: str
    text: str
    html: str
    events: list[dict] = field(default_factory=list)  # the webhook schema's events[]
    severity: str = "warning"


class Transport:
    """Sends messages to one channel; `notify()` returns the recipients' description."""

    def __init__(self, config: dict):
        self.config = config

    def notify(self, message: Message) -> str:
        raise NotImplementedError
