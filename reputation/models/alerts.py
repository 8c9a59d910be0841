"""Alerts: events to tell admins about, the channels they chose, and one notification per
event and channel (the alert history).

An `Event` is written for every transition worth an alert (reputation.alerts.events collects them);
`processed` is set once its notifications are queued. A `Notification` is claimed by one
worker at a time with a conditional UPDATE (a lease that expires if the worker dies), sent,
and marked sent or retried later with backoff.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone

SEVERITY_RANK = {"info": 0, "warning": 1, "critical": 2}


class Severity(models.TextChoices):
    INFO = "info", "Info"
    WARNING = "warning", "Warning"
    CRITICAL = "critical", "Critical"


class Event(models.Model):
    """Something that happened and may be alerted about (once per channel)."""

    class Kind(models.TextChoices):
        LISTING_OPENED = "listing-opened", "Listing opened"
        LISTING_CLOSED = "listing-closed", "Listing closed"
        INITIAL_STATE = "initial-state", "First check of new addresses"
        ROTATION_OUT = "rotation-out", "Address taken out of rotation"
        ROTATION_IN = "rotation-in", "Address back in rotation"
        SPIKE_OPENED = "spike-opened", "DSN spike started"
        SPIKE_CLOSED = "spike-closed", "DSN spike ended"
        LIST_MISBEHAVING = "list-misbehaving", "Blocklist misbehaving"
        LIST_RECOVERED = "list-recovered", "Blocklist recovered"
        SWEEP_FAILED = "sweep-failed", "Sweep could not run"
        RDNS_FAILED = "rdns-failed", "Reverse DNS not confirmed"
        RDNS_RECOVERED = "rdns-recovered", "Reverse DNS confirmed again"
        MISSED = "missed", "Alerts missed while a channel was disabled"
        TEST = "test", "Test alert"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    source = models.CharField(
        max_length=100,
        unique=True,
        help_text="What the event was made from (e.g. blocklistevent:12): collected once.",
    )
    pool = models.CharField(max_length=64, blank=True)
    address = models.CharField(max_length=255, blank=True)
    zone = models.CharField(max_length=253, blank=True)
    subject = models.CharField(max_length=300)
    data = models.JSONField(default=dict, blank=True, help_text="Details shown in the alert.")
    suppressed = models.CharField(
        max_length=100, blank=True, help_text="Why no alert is sent (e.g. flapping)."
    )
    created = models.DateTimeField(default=timezone.now)
    processed = models.DateTimeField(
        null=True, blank=True, help_text="When its notifications were queued."
    )

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(
                fields=["created"],
                condition=Q(processed__isnull=True),
                name="alertevent_unprocessed",
            )
        ]

    def __str__(self) -> str:
        return self.subject


class Channel(models.Model):
    """Where alerts go: an email list or an incoming webhook of some kind."""

    class Kind(models.TextChoices):
        EMAIL = "email", "Email"
        WEBHOOK = "webhook", "Generic webhook (JSON)"
        SLACK = "slack", "Slack / Mattermost incoming webhook"
        TEAMS = "teams", "Microsoft Teams incoming webhook"

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text='email: {"to": ["a@example.org"]}; webhooks: {"url": "https://…"}, and for '
        'the generic webhook an optional "secret" (HMAC), never shown after saving.',
    )
    min_severity = models.CharField(
        "minimum severity",
        max_length=16,
        choices=Severity.choices,
        default=Severity.WARNING,
        help_text="Only events at least this severe (listings of high-risk addresses are info).",
    )
    pools = models.JSONField(
        default=list, blank=True, help_text="Only events of these pools (empty: all)."
    )
    digest_seconds = models.PositiveIntegerField(
        "digest window",
        default=60,
        help_text="Alerts within this many seconds are sent as one message.",
    )
    disabled = models.BooleanField(
        default=False, help_text="Set on a permanent error (see last error); untick to resume."
    )
    last_error = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        problems = config_problems(self.kind, self.config)
        if problems:
            raise ValidationError(problems)
        if not isinstance(self.pools, list) or not all(isinstance(p, str) for p in self.pools):
            raise ValidationError({"pools": "A list of pool names."})

    def wants(self, event: Event) -> bool:
        """Whether this channel alerts about the event (severity and pool filters)."""
        if SEVERITY_RANK[event.severity] < SEVERITY_RANK[self.min_severity]:
            return False
        return not self.pools or not event.pool or event.pool in self.pools


def config_problems(kind: str, config: object) -> list[str]:
    """What is wrong with a channel's config (empty when it is usable)."""
    if not isinstance(config, dict):
        return ["The config must be a JSON object."]
    if kind == Channel.Kind.EMAIL:
        to = config.get("to")
        if not isinstance(to, list) or not to:
            return ['An email channel needs "to": a list of addresses.']
        problems = []
        for address in to:
            try:
                validate_email(address)
            except (ValidationError, TypeError):
                problems.append(f"Not an email address: {address!r}.")
        return problems
    try:
        URLValidator(schemes=["http", "https"])(config.get("url"))
    except (ValidationError, TypeError):
        return ['A webhook channel needs "url": an http(s) URL.']
    if not isinstance(config.get("secret", ""), str):
        return ["The secret must be a string."]
    return []


class Notification(models.Model):
    """One event on one channel: the alert history."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (channel disabled; re-enabling retries it)"
        HELD = "held", "Held (raised while the channel was disabled; sent when it is enabled)"
        SUMMARISED = "summarised", "Not sent (missed while disabled; counted in a summary)"

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(Channel, on_delete=models.CASCADE, related_name="notifications")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt = models.DateTimeField(default=timezone.now)
    claimed_by = models.CharField(max_length=100, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    recipients = models.CharField("to", max_length=500, blank=True)
    sent = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created"]
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="notification_key")
        ]
        indexes = [
            models.Index(
                fields=["channel", "next_attempt"],
                condition=Q(status="pending"),
                name="notification_pending",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel}: {self.status}"


class KnownAddress(models.Model):
    """An address whose blocklist state was reported once: listings of an address seen for
    the first time are summarised ("initial state"), not alerted one by one."""

    address = models.CharField(max_length=255, unique=True)
    created = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.address


__all__ = ["Channel", "Event", "KnownAddress", "Notification", "Severity"]
