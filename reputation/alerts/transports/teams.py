"""Microsoft Teams incoming webhooks: a MessageCard."""

from __future__ import annotations

import json

from reputation.alerts.transports import http
from reputation.alerts.transports.base import Message, Transport
from reputation.alerts.transports.webhook import host_of

COLOURS = {"critical": "D32F2F", "warning": "F9A825", "info": "1976D2"}


def card(message: Message) -> dict:
    return {
        "@type": "MessageCard",
        "@context": "https://schema.org/extensions",
        "summary": message.subject,
        "themeColor": COLOURS.get(message.severity, "808080"),
        "title": message.subject,
        "text": message.text.replace("\n", "  \n"),
    }


class TeamsTransport(Transport):
    def notify(self, message: Message) -> str:
        http.post(self.config["url"], json.dumps(card(message)).encode())
        return host_of(self.config["url"])
