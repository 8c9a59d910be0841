"""Who is sweeping which blocklist right now: one row per sweeper process (a holder) and zone,
the database side of reputation.blocklists.shares when no Redis is configured.

Rows are written and read only through that module's own connection (raw SQL with short
timeouts, outside any caller's transaction); the model gives the table, its migration and a
name to look at when debugging.
"""

from __future__ import annotations

from django.db import models


class ZoneHolder(models.Model):
    """A sweeper process working on one zone, with the limits it was configured with. The id
    is the join order; `beat` is the holder's heartbeat counter (a holder whose beat stops
    changing for a few seconds is dead, as judged by each reader on its own clock)."""

    zone = models.CharField(max_length=253, help_text="The blocklist's zone.")
    holder = models.CharField(max_length=100, help_text="host:pid:random of the process.")
    beat = models.BigIntegerField(default=0, help_text="Heartbeat counter.")
    in_flight = models.PositiveIntegerField(
        "queries in flight", default=0, help_text="The list's limit as this holder knows it."
    )
    qps = models.FloatField("queries per second", default=0.0)
    beat_at = models.DateTimeField(help_text="Wall-clock time of the last heartbeat.")

    class Meta:
        verbose_name = "zone holder"
        constraints = [
            models.UniqueConstraint(fields=["zone", "holder"], name="zone_holder_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.holder} on {self.zone}"
