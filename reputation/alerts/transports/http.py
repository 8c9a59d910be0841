"""All alert HTTP goes through `post()`: a timeout, a few quick retries on temporary errors,
and a TransportError that says whether retrying later can help.

A request that was sent but not answered within TIMEOUT is not retried at once: the receiver
may have it already, and a slow receiver would get it once per try. It is retried at the next
round, with backoff (receivers can tell a repeat by the events' ids)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from reputation.alerts.transports.base import MAX_TIMEOUT, TransportError

TIMEOUT = 10.0
TRIES = 3
PAUSE = 0.5
RETRY_STATUSES = {408, 425, 429}
USER_AGENT = "Poolwarden-alerts/1"


class Unanswered(TransportError):
    """The request went out but no answer came within the timeout."""


def longest(tries: int = TRIES) -> float:
    """The longest a `post()` can take: every try timing out, and the pauses between."""
    pauses = sum(PAUSE * 2**attempt for attempt in range(tries - 1))
    return tries * min(TIMEOUT, MAX_TIMEOUT) + pauses


def post(
    url: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    timeout: float | None = None,
    tries: int = TRIES,
) -> int:
    """POST `body`; returns the 2xx status. Raises TransportError(permanent=True) on a 4xx
    answer other than 408/425/429, TransportError(permanent=False) after `tries` temporary
    failures (5xx, refused connections, connect timeouts) or at once when a sent request is
    not answered within `timeout` (at most MAX_TIMEOUT)."""
    timeout = min(timeout or TIMEOUT, MAX_TIMEOUT)
    error = TransportError("not sent")
    for attempt in range(max(tries, 1)):
        if attempt:
            time.sleep(PAUSE * 2 ** (attempt - 1))
        try:
            return _post_once(url, body, headers or {}, timeout)
        except TransportError as exc:
            if exc.permanent or isinstance(exc, Unanswered):
                raise
            error = exc
    raise error


def _post_once(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
    request = urllib.request.Request(url, data=body, method="POST")
    for name, value in {"Content-Type": "application/json", "User-Agent": USER_AGENT}.items():
        request.add_header(name, value)
    for name, value in headers.items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        permanent = 400 <= exc.code < 500 and exc.code not in RETRY_STATUSES
        raise TransportError(f"HTTP {exc.code} {exc.reason}", permanent=permanent) from None
    except TimeoutError:  # sent, no answer: a connect timeout comes as a URLError
        raise Unanswered(f"the webhook did not answer within {timeout:g} s") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TransportError(f"cannot reach the webhook: {reason}") from None
