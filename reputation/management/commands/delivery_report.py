"""manage.py delivery_report [--since 24h] [--json]: what receivers answered each address."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum
from django.utils import timezone

from reputation.models import DeliveryCount, DeliveryHourly

SPAN = re.compile(r"^(\d+)([mhd])$")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_span(text: str) -> timedelta:
    match = SPAN.match(text.strip())
    if not match or int(match[1]) == 0:
        raise CommandError(
            f"--since {text!r}: expected a number and m, h or d, e.g. 24h or 7d", returncode=2
        )
    return timedelta(**{UNITS[match[2]]: int(match[1])})


class Command(BaseCommand):
    help = (
        "Per source address and provider, the delivery attempts per outcome and reply class "
        "read from Postfix's log (manage.py delivery_log)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--since", default="24h", help="how far back: 90m, 24h, 7d")
        parser.add_argument("--json", action="store_true", help="one JSON document")

    def handle(self, *args, **options) -> None:
        span = parse_span(options["since"])
        since = timezone.now() - span
        # Per minute for a few hours, else per hour (whole hours).
        if span <= timedelta(hours=6):
            rows = DeliveryCount.objects.filter(minute__gte=since)
        else:
            rows = DeliveryHourly.objects.filter(hour__gte=since.replace(minute=0, second=0))
        fields = ("address", "pool", "provider", "outcome", "reply_class", "zone")
        report: dict[tuple, dict] = defaultdict(
            lambda: {"outcomes": {}, "classes": {}, "zones": {}}
        )
        for row in rows.values(*fields).annotate(n=Sum("count")).order_by(*fields):
            entry = report[(row["address"], row["pool"], row["provider"])]
            for part, key in (("outcomes", "outcome"), ("classes", "reply_class")):
                entry[part][row[key]] = entry[part].get(row[key], 0) + row["n"]
            if row["zone"]:
                entry["zones"][row["zone"]] = entry["zones"].get(row["zone"], 0) + row["n"]
        items = [
            {
                "address": a,
                "pool": p,
                "provider": v,
                **entry,
                "attempts": sum(entry["outcomes"].values()),
            }
            for (a, p, v), entry in report.items()
        ]
        items.sort(key=lambda x: (-(x["attempts"] - x["classes"].get("accepted", 0)), x["address"]))
        if options["json"]:
            self.stdout.write(json.dumps({"since": since.isoformat(), "rows": items}, indent=2))
            return
        if not items:
            self.stdout.write(f"no delivery attempts since {since:%Y-%m-%d %H:%M %Z}")
            return
        self.stdout.write(f"{'address':<40} {'provider':<20} {'attempts':>8}  accepted  classes")
        for x in items:
            accepted = x["classes"].get("accepted", 0) / x["attempts"]
            others = ", ".join(
                f"{n} {c}"
                for c, n in sorted(x["classes"].items(), key=lambda i: -i[1])
                if c != "accepted"
            )
            zones = f" (lists: {', '.join(x['zones'])})" if x["zones"] else ""
            self.stdout.write(
                f"{x['address'] or '(unattributed)':<40} {x['provider'][:20]:<20} "
                f"{x['attempts']:>8}  {accepted:7.0%}  {others}{zones}"
            )
