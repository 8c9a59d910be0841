"""Alert transports: one small class per channel kind (see base.Transport)."""

from __future__ import annotations

from reputation.alerts.transports.base import Message, Transport, TransportError


def for_kind(kind: str) -> type[Transport]:
    """The transport class of a channel kind; raises KeyError for an unknown kind."""
    from reputation.alerts.transports import email, slack, teams, webhook

    return {
        "email": email.EmailTransport,
        "webhook": webhook.WebhookTransport,
        "slack": slack.SlackTransport,
        "teams": teams.TeamsTransport,
    }[kind]


__all__ = ["Message", "Transport", "TransportError", "for_kind"]
