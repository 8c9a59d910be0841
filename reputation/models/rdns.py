"""The latest forward-confirmed reverse DNS check of each pool address (see
reputation.blocklists.rdns): one row per address, rewritten by every sweep."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class ReverseDNSCheck(models.Model):
    """PTR -> name -> A/AAAA back to the address, and that name in HELO, as last checked."""

    class Status(models.TextChoices):
        OK = "ok", "Confirmed, and the HELO name"
        NO_PTR = "no-ptr", "No PTR record"
        UNCONFIRMED = "mismatch", "PTR name does not resolve back"
        HELO_MISMATCH = "helo-mismatch", "HELO is another name"
        GENERIC_HELO = "generic-helo", "No hostname set: HELO is the host's generic name"
        ERROR = "error", "DNS gave no answer"

    address = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=16, choices=Status.choices)
    ptr_names = models.JSONField("PTR names", default=list, blank=True)
    helo = models.CharField(
        "HELO name", max_length=253, blank=True, help_text="The address's hostname when checked."
    )
    detail = models.CharField(max_length=300, blank=True)
    failing = models.BooleanField(
        default=False, help_text="The last answered check failed (a DNS error keeps the state)."
    )
    since = models.DateTimeField(default=timezone.now, help_text="When `failing` last changed.")
    checked = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "reverse DNS check"

    def __str__(self) -> str:
        return f"{self.address}: {self.status}"
