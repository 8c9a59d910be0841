"""Delivery outcomes: what receivers answered each pool address, counted per minute and per
hour (read from Postfix's log by `manage.py delivery_log`), and where each log was read up to."""

from __future__ import annotations

from django.db import models

KEY = ("address", "pool", "provider", "outcome", "reply_class", "zone")


class DeliveryDimensions(models.Model):
    address = models.CharField(max_length=45, blank=True, help_text='"" when unattributed')
    pool = models.CharField(max_length=64, blank=True)
    provider = models.CharField(max_length=255)
    outcome = models.CharField(max_length=16)  # sent, deferred, bounced, expired
    reply_class = models.CharField(max_length=16)
    zone = models.CharField(max_length=255, blank=True, help_text="the blocklist a reply named")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True


class DeliveryCount(DeliveryDimensions):
    """Delivery attempts per minute, source address, provider, outcome and reply class."""

    minute = models.DateTimeField()

    class Meta:
        verbose_name = "delivery count"
        constraints = [models.UniqueConstraint(fields=["minute", *KEY], name="deliverycount_key")]
        indexes = [models.Index(fields=["minute", "address"])]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.address} {self.provider} {self.reply_class}"


class DeliveryHourly(DeliveryDimensions):
    """The same per hour, kept as long as the other hourly counts."""

    hour = models.DateTimeField()

    class Meta:
        verbose_name = "delivery count per hour"
        constraints = [models.UniqueConstraint(fields=["hour", *KEY], name="deliveryhourly_key")]
        indexes = [models.Index(fields=["hour", "address"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.address} {self.provider} {self.reply_class}"


class LogPosition(models.Model):
    """Where `delivery_log` stopped in one log file: its inode and byte offset, so that the
    next run goes on from there, and a rotated or truncated file is read from its start."""

    path = models.CharField(max_length=1000, unique=True)
    inode = models.BigIntegerField(default=0)
    offset = models.BigIntegerField(default=0)
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.path} at {self.offset}"
