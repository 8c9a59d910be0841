"""Blocklist admin: operators edit the catalogue; an access key is never shown after saving."""

from __future__ import annotations

import pytest

from reputation.models import Blocklist, Listing

pytestmark = pytest.mark.django_db

KEY = "abcdefghijklmnopqrstuvwxyz"


def form(blocklist: Blocklist, **fields) -> dict:
    data = {
        "zone": blocklist.zone,
        "kind": blocklist.kind,
        "weight": blocklist.weight,
        "enabled": "on" if blocklist.enabled else "",
        "ipv6": "on" if blocklist.ipv6 else "",
        "description": blocklist.description,
        "codes": '{"127.0.0.2": "SBL"}',
        "error_codes": '["127.255.255.0/24"]',
        "not_listing_codes": "[]",
        "delist_url": "",
        "max_in_flight": "20",
        "max_qps": "50",
        "max_per_day": "0",
        "clean_to_close": "2",
        "requires_key": "on",
    }
    return {**data, **fields}


def url(blocklist: Blocklist) -> str:
    return f"/admin/reputation/blocklist/{blocklist.pk}/change/"


def test_operator_sets_an_access_key_that_is_never_shown_again(client, operator):
    client.force_login(operator)
    dq = Blocklist.objects.get(zone="zen.dq.spamhaus.net")
    response = client.post(url(dq), form(dq, new_access_key=KEY))
    assert response.status_code == 302, response.content[:2000]
    dq.refresh_from_db()
    assert dq.access_key == KEY
    page = client.get(url(dq)).content.decode()
    assert KEY not in page and "set (hidden)" in page
    assert KEY not in client.get("/admin/reputation/blocklist/").content.decode()
    client.post(url(dq), form(dq))  # an empty key field keeps the key
    dq.refresh_from_db()
    assert dq.access_key == KEY


def test_bad_access_key_and_codes_are_refused_without_echoing_the_key(client, operator):
    client.force_login(operator)
    dq = Blocklist.objects.get(zone="zen.dq.spamhaus.net")
    page = client.post(url(dq), form(dq, new_access_key="Not A Key", codes='{"10.0.0.2": "x"}'))
    text = page.content.decode()
    assert page.status_code == 200 and "Not A Key" not in text
    assert "one DNS label" in text and "outside 127.0.0.0/8" in text


def test_viewer_reads_listings_and_runs_but_changes_nothing(client, viewer):
    client.force_login(viewer)
    zen = Blocklist.objects.get(zone="zen.spamhaus.org")
    Listing.objects.create(address="192.0.2.5", blocklist=zen, codes=["127.0.0.2"])
    assert client.get("/admin/reputation/listing/").status_code == 200
    assert client.get("/admin/reputation/checkrun/").status_code == 200
    assert client.post(url(zen), form(zen)).status_code == 403
