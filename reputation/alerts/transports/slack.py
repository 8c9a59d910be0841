"""Slack and Mattermost incoming webhooks: `{"text": ...}` in their markdown."""

from __future__ import annotations

import json

from reputation.alerts.transports import http
from reputation.alerts.transports.base import Message, Transport
from reputation.alerts.transports.webhook import host_of


class SlackTransport(Transport):
    def notify(self, message: Message) -> str:
        text = f"*{message.subject}*\n{message.text}"
        http.post(self.config["url"], json.dumps({"text": text}).encode())
        return host_of(self.config["url"])
