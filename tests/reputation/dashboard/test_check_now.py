"""The dashboard's "check now" of one address: operators only, by POST with CSRF, audited, and
the overview's per-address facts (codes, 24 h volume, delisting, the button). Against rbldnsd."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.utils import timezone

from reputation.models import CheckRun, Listing
from routing.models import AddressCount, SettingChange

pytestmark = [pytest.mark.integration, pytest.mark.django_db]

URL = "/admin/dashboard/address/192.0.2.5/check/"


def test_an_operator_checks_an_address_and_sees_what_came_back(client, operator, catalogue):
    """The check opens 192.0.2.5's listing on zen.test, says so on the address page, and is
    recorded as the operator's."""
    client.force_login(operator)
    response = client.post(URL)
    assert response.status_code == 302
    assert response.url == "/admin/dashboard/address/192.0.2.5/#pw-check"
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert "listed on zen.test (127.0.0.2)" in message
    assert "Listing opened on zen.test." in message
    run = CheckRun.objects.get(address="192.0.2.5")
    assert Listing.objects.get(address="192.0.2.5", closed=None).opened_by == run
    change = SettingChange.objects.get(model="reputation.checkrun")
    assert change.username == operator.username and change.object_id == str(run.pk)
    assert "check now 192.0.2.5" in str(change)


def test_a_viewer_may_not_check_and_sees_no_button(client, viewer, catalogue):
    client.force_login(viewer)
    assert client.post(URL).status_code == 403
    assert not CheckRun.objects.exists()
    Listing.objects.create(address="192.0.2.5", pool="normal", blocklist=catalogue["zen.test"])
    assert "Check now" not in client.get("/admin/").content.decode()


def test_check_now_needs_a_post_with_its_csrf_token(operator, catalogue):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(operator)
    assert strict.get(URL).status_code == 405
    assert strict.post(URL).status_code == 403
    assert not CheckRun.objects.exists()


def test_an_address_in_no_pool_is_not_checked(client, operator, catalogue):
    client.force_login(operator)
    response = client.post("/admin/dashboard/address/203.0.113.9/check/")
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    assert message == "Not checked: 203.0.113.9 is in no pool."


def test_the_overview_row_has_codes_volume_delisting_and_the_button(client, operator, catalogue):
    now = timezone.now()
    Listing.objects.create(
        address="192.0.2.5",
        pool="normal",
        blocklist=catalogue["zen.test"],
        codes=["127.0.0.2"],
        meanings=["SBL"],
        opened=now - timedelta(hours=2),
    )
    hour = now.replace(minute=0, second=0, microsecond=0)
    AddressCount.objects.create(hour=hour, address="192.0.2.5", count=120)
    AddressCount.objects.create(hour=hour - timedelta(hours=3), address="192.0.2.5", count=30)
    AddressCount.objects.create(hour=hour - timedelta(hours=30), address="192.0.2.5", count=999)
    client.force_login(operator)
    page = client.get("/admin/").content.decode()
    row = page[page.index('data-address="192.0.2.5"') :]
    row = row[: row.index("</tr>")]
    assert "zen.test</span>: 127.0.0.2 SBL" in row
    assert '<td class="pw-num">150</td>' in row
    assert 'href="https://zen.test/remove"' in row
    assert 'action="/admin/dashboard/address/192.0.2.5/check/"' in row
    assert " UTC)" in row  # the time, with its zone
