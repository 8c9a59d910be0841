"""DSN spikes: detection settings per dimension or series, the spikes found, and DSN counts
per hour."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from reputation.spikes.baseline import SpikeState, Thresholds
from routing.models import DSNDimensions


class SpikeThreshold(models.Model):
    """Spike detection settings: one global row (no dimension), and overrides per dimension
    or per single series (a source, a domain)."""

    class Dimension(models.TextChoices):
        GLOBAL = "", "all series (global default)"
        ALL = "all", "all DSNs together"
        POOL = "pool", "per pool"
        SOURCE = "source", "per emitting source"
        RECIPIENT_DOMAIN = "recipient_domain", "per DSN recipient domain"
        ORIGINAL_DOMAIN = "original_domain", "per original-recipient domain"
        STATUS = "status", "per status"
        STATUS_CLASS = "status_class", "per status class"
        REFINED_CLASS = "refined_class", "per refined class (unknown user, mailbox full, ...)"
        REPORTING_MTA = "reporting_mta", "per reporting MTA"

    dimension = models.CharField(max_length=32, choices=Dimension.choices, blank=True)
    value = models.CharField(
        max_length=255,
        blank=True,
        help_text="One series (e.g. a source or a domain); empty: every series of the dimension.",
    )
    enabled = models.BooleanField(default=True)
    window_minutes = models.PositiveSmallIntegerField(
        default=15, help_text="Length of the recent window compared with the baseline."
    )
    sensitivity = models.FloatField(
        default=5.0, help_text="How many spreads above the baseline make a spike."
    )
    min_count = models.PositiveIntegerField(
        default=20, help_text="DSNs the window must hold at least (three bounces are no spike)."
    )
    quiet_minutes = models.PositiveSmallIntegerField(
        default=30, help_text="Back to normal this long before a spike closes."
    )
    days = models.PositiveSmallIntegerField(
        default=14,
        help_text="Previous days whose same window makes the baseline until three weeks of "
        "history allow comparing the same hour of the week.",
    )

    class Meta:
        verbose_name = "spike threshold"
        constraints = [
            models.UniqueConstraint(fields=["dimension", "value"], name="spikethreshold_key")
        ]

    def __str__(self) -> str:
        where = self.get_dimension_display() + (f" {self.value}" if self.value else "")
        return f"{where}: x{self.sensitivity:g}, at least {self.min_count}"

    def clean(self) -> None:
        if self.value and not self.dimension:
            raise ValidationError({"value": "A single series needs its dimension."})
        if not 1 <= self.window_minutes <= 1440:
            raise ValidationError({"window_minutes": "Between 1 and 1440 minutes."})
        if not 1 <= self.days <= 31:
            raise ValidationError({"days": "Between 1 and 31 days."})
        if self.sensitivity <= 0:
            raise ValidationError({"sensitivity": "Must be above 0."})

    def thresholds(self) -> Thresholds:
        return Thresholds(
            window_minutes=self.window_minutes,
            sensitivity=self.sensitivity,
            min_count=self.min_count,
            quiet_minutes=self.quiet_minutes,
            days=self.days,
        )


class Spike(models.Model):
    """A DSN spike: one incident, the series that moved together, opened on the first elevated
    window, followed while any of them is elevated, closed when all are quiet. Its dimension
    and value name the lead series (the one that best describes it), whose peak, baseline and
    evidence the row holds; `series` lists every series involved."""

    dimension = models.CharField(max_length=32, help_text="Of the lead series.")
    value = models.CharField(max_length=255, blank=True)
    started = models.DateTimeField()
    ended = models.DateTimeField(null=True, blank=True)
    peak = models.PositiveIntegerField(help_text="Most DSNs in one window.")
    baseline = models.FloatField(help_text="Usual DSNs in such a window when it opened.")
    last_count = models.PositiveIntegerField(default=0)
    calm_since = models.DateTimeField(null=True, blank=True)
    cause = models.CharField(max_length=32, help_text="Likely cause, from the evidence.")
    confidence = models.FloatField(default=0.0)
    evidence = models.JSONField(default=dict)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)
    processed = models.DateTimeField(
        null=True, blank=True, help_text="When alerts about the spike's last change went out."
    )
    series = models.JSONField(
        default=list,
        blank=True,
        help_text="Every series involved: dimension, value, count, baseline, threshold, peak.",
    )

    class Meta:
        ordering = ["-started"]
        indexes = [
            models.Index(fields=["started"]),
            models.Index(fields=["dimension", "value"], condition=Q(ended=None), name="spike_open"),
        ]

    def __str__(self) -> str:
        series = self.dimension + (f" {self.value}" if self.value else "")
        return f"{series} since {self.started:%Y-%m-%d %H:%M} ({self.cause})"

    def state(self) -> SpikeState:
        return SpikeState(self.started, self.peak, self.baseline, self.calm_since)


class DSNHourly(DSNDimensions):
    """DSN counts rolled up per hour once older than the per-minute retention."""

    hour = models.DateTimeField()

    class Meta:
        verbose_name = "DSN count per hour"
        constraints = [
            models.UniqueConstraint(fields=["hour", *DSNDimensions.KEY], name="dsnhourly_key")
        ]
        indexes = [models.Index(fields=["hour", "pool"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.pool} {self.status}: {self.count}"
