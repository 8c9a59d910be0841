"""Prometheus text for `/metrics`: the state an operator graphs and alerts on elsewhere.

Gauges only, read from the database at scrape time (a few indexed queries): open listings
per pool and list weight, addresses out of rotation, open spikes, the last finished sweep,
alerts waiting, and the mail routed per pool and reason in the last complete minute.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db.models import Count, Max, Sum

from reputation.models import CheckRun, Listing, Notification, Spike
from routing.models import PoolAddress, RoutingCount


def line(name: str, value: float, **labels: str) -> str:
    number = f"{value:.3f}".rstrip("0").rstrip(".")  # full precision for timestamps
    if labels:
        inner = ",".join(f'{k}="{escape(v)}"' for k, v in sorted(labels.items()))
        return f"{name}{{{inner}}} {number}"
    return f"{name} {number}"


def escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def gauge(name: str, help_text: str, samples: list[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *samples]


def routing_gauges(engine) -> str:
    """This process's routing snapshot: its age and whether reloading it fails (the
    database is unreachable); served without the database."""
    snapshots = engine.snapshots
    age = snapshots.age()
    failing = snapshots.failure or snapshots.stalled() is not None
    lines = gauge(
        "poolwarden_policy_snapshot_age_seconds",
        "Seconds since this process last loaded the routing policy (-1: never).",
        [line("poolwarden_policy_snapshot_age_seconds", -1 if age is None else age)],
    )
    lines += gauge(
        "poolwarden_policy_reload_failing",
        "1 while this process cannot reload the routing policy from the database.",
        [line("poolwarden_policy_reload_failing", int(bool(failing)))],
    )
    return "\n".join(lines) + "\n"


def render(now: datetime) -> str:
    listings = (
        Listing.objects.filter(closed__isnull=True)
        .values("pool", "blocklist__weight")
        .annotate(n=Count("id"))
    )
    out_of_rotation = (
        PoolAddress.objects.exclude(active=True, listed=False)
        .values("pool__name")
        .annotate(n=Count("id"))
    )
    spikes = Spike.objects.filter(ended__isnull=True).values("cause").annotate(n=Count("id"))
    swept = CheckRun.objects.filter(finished__isnull=False, address="")  # not a "check now"
    last_sweep = swept.aggregate(t=Max("finished"))["t"]
    pending = Notification.objects.exclude(status__in=["sent", "summarised"]).count()
    minute = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    routed = (
        RoutingCount.objects.filter(minute=minute)
        .values("pool", "reasons")
        .annotate(n=Sum("count"))
    )
    parts = [
        *gauge(
            "poolwarden_open_listings",
            "Addresses listed now, per pool and list weight.",
            [
                line(
                    "poolwarden_open_listings",
                    r["n"],
                    pool=r["pool"],
                    weight=r["blocklist__weight"],
                )
                for r in listings
            ],
        ),
        *gauge(
            "poolwarden_addresses_out_of_rotation",
            "Pool addresses routing may not choose now (taken out, or listed).",
            [
                line("poolwarden_addresses_out_of_rotation", r["n"], pool=r["pool__name"])
                for r in out_of_rotation
            ],
        ),
        *gauge(
            "poolwarden_open_spikes",
            "DSN spikes open now, per likely cause.",
            [line("poolwarden_open_spikes", r["n"], cause=r["cause"]) for r in spikes],
        ),
        *gauge(
            "poolwarden_last_sweep_finished_timestamp_seconds",
            "When the last blocklist sweep finished (0: never).",
            [
                line(
                    "poolwarden_last_sweep_finished_timestamp_seconds",
                    last_sweep.timestamp() if last_sweep else 0,
                )
            ],
        ),
        *gauge(
            "poolwarden_alerts_pending",
            "Alerts not sent yet (waiting, retrying, failed or held for a disabled channel).",
            [line("poolwarden_alerts_pending", pending)],
        ),
        *gauge(
            "poolwarden_routed_last_minute",
            "Messages routed in the last complete minute, per pool and reasons (flushed "
            "counts: up to POOLWARDEN_FLUSH_INTERVAL late).",
            [
                line("poolwarden_routed_last_minute", r["n"], pool=r["pool"], reasons=r["reasons"])
                for r in routed
            ],
        ),
    ]
    return "\n".join(parts) + "\n"
