"""/metrics: Prometheus text behind a token or a staff login, with the state it reports."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reputation.models import Blocklist, CheckRun, Listing, Spike
from routing import tokens
from routing.models import PoolAddress, RoutingCount

pytestmark = pytest.mark.django_db


def test_metrics_need_a_token_or_a_staff_login(client, viewer):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    tokens.forget()
    token = tokens.issue("prometheus")[1]
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    client.force_login(viewer)
    assert client.get("/metrics").status_code == 200


def test_metrics_report_listings_rotation_spikes_sweeps_and_traffic(client, operator):
    now = timezone.now()
    zen = Blocklist.objects.create(zone="zen.test", weight="major")
    Listing.objects.create(address="192.0.2.5", pool="normal", blocklist=zen, codes=["127.0.0.2"])
    Listing.objects.create(address="192.0.2.6", pool="normal", blocklist=zen, closed=now)
    PoolAddress.objects.filter(address="192.0.2.5").update(listed=True)
    Spike.objects.create(dimension="all", started=now, peak=90, baseline=4, cause="backscatter")
    finished = now - timedelta(minutes=7)
    CheckRun.objects.create(trigger="schedule", started=finished, finished=finished)
    checked = now - timedelta(minutes=1)  # a "check now" of one address is no sweep
    CheckRun.objects.create(trigger="address", address="192.0.2.5", started=checked, finished=now)
    minute = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
    for back in (0, 1, 2):  # the scrape may fall into the next minute
        RoutingCount.objects.create(
            minute=minute + timedelta(minutes=1 - back), pool="normal", reasons="none", count=31
        )
    client.force_login(operator)
    text = client.get("/metrics").content.decode()
    assert 'poolwarden_open_listings{pool="normal",weight="major"} 1' in text
    # network + broadcast of both default /28s, and the listed address
    assert 'poolwarden_addresses_out_of_rotation{pool="normal"} 3' in text
    assert 'poolwarden_open_spikes{cause="backscatter"} 1' in text
    stamp = f"{finished.timestamp():.3f}".rstrip("0").rstrip(".")
    assert f"poolwarden_last_sweep_finished_timestamp_seconds {stamp}\n" in text
    assert stamp.startswith(str(int(finished.timestamp())))  # not 1.79e+09
    assert 'poolwarden_routed_last_minute{pool="normal",reasons="none"} 31' in text
    assert "# TYPE poolwarden_alerts_pending gauge" in text
