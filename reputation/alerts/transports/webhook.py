"""The generic webhook: a JSON document (schema in docs/alerts.md), signed with HMAC-SHA256
in `X-Poolwarden-Signature: sha256=<hex>` when the channel has a secret."""

from __future__ import annotations

import hashlib
import hmac
import json

from reputation.alerts.transports import http
from reputation.alerts.transports.base import Message, Transport

SCHEMA_VERSION = 1


def body_of(message: Message) -> bytes:
    document = {
        "version": SCHEMA_VERSION,
        "subject": message.subject,
        "severity": message.severity,
        "events": message.events,
    }
    return json.dumps(document, sort_keys=True).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookTransport(Transport):
    def notify(self, message: Message) -> str:
        body = body_of(message)
        headers = {}
        if self.config.get("secret"):
            headers["X-Poolwarden-Signature"] = signature(self.config["secret"], body)
        http.post(self.config["url"], body, headers)
        return host_of(self.config["url"])


def host_of(url: str) -> str:
    """The webhook's host only: paths and queries of webhook URLs often hold tokens."""
    from urllib.parse import urlsplit

    return urlsplit(url).netloc.rsplit("@", 1)[-1]
