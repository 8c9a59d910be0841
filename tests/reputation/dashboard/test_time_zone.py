"""One clock: the dashboard's tables show every time in the active time zone, labelled."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reputation.models import Blocklist, CheckRun, Listing

pytestmark = pytest.mark.django_db

OPENED = datetime(2026, 12, 1, 5, 24, tzinfo=UTC)


def test_tables_show_times_in_time_zone_with_its_name(client, viewer, settings):
    settings.TIME_ZONE = "Europe/Berlin"
    zen = Blocklist.objects.create(zone="zen.test", weight="major")
    Listing.objects.create(address="192.0.2.1", pool="normal", blocklist=zen, opened=OPENED)
    CheckRun.objects.create(trigger="schedule", started=OPENED, finished=OPENED)
    client.force_login(viewer)
    index = client.get("/admin/").content.decode()
    assert "(2026-12-01 06:24 CET)" in index  # the overview's listed address
    assert "since 12-01 06:24 CET" in index  # the listing matrix
    assert "Started 2026-12-01 06:24:00 CET" in index  # the last sweep
    assert "05:24 UTC" not in index and "05:24:00 UTC" not in index  # charts: ISO in JSON
    page = client.get("/admin/dashboard/address/192.0.2.1/").content.decode()
    assert "<td>2026-12-01 06:24 CET</td>" in page
