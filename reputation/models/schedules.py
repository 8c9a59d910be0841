"""What `reputation.schedules.sync` last wrote into each periodic task, so that it applies
the environment's defaults only when they change and leaves an admin's edits alone."""

from __future__ import annotations

from django.db import models


class ScheduleDefault(models.Model):
    name = models.CharField(max_length=200, unique=True)  # PeriodicTask.name
    applied = models.JSONField()  # {"seconds": 1800, "kwargs": {"jitter": 120}}
    updated = models.DateTimeField()

    class Meta:
        verbose_name = "schedule default"

    def __str__(self) -> str:
        return f"{self.name}: {self.applied}"
