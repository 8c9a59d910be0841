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
        "ipv4": "on" if blocklist.ipv4 else "",
        "ipv6": "on" if blocklist.ipv6 else "",
        "nameservers": blocklist.nameservers,
        "mirror": "on" if blocklist.mirror else "",
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


def test_change_form_shows_families_nameservers_and_mirror(client, operator):
    client.force_login(operator)
    zen = Blocklist.objects.get(zone="zen.spamhaus.org")
    page = client.get(url(zen)).content.decode()
    for label in ("Answers for IPv4", "Answers for IPv6", "Own nameservers", "Local mirror"):
        assert f"{label}</label>" in page.replace(":</label>", "</label>")
    assert 'name="ipv4"' in page and 'name="nameservers"' in page and 'name="mirror"' in page


def test_operator_saves_an_ipv6_only_mirror_on_its_own_nameservers(client, operator):
    client.force_login(operator)
    zen = Blocklist.objects.get(zone="zen.spamhaus.org")
    fields = {"ipv4": "", "ipv6": "on", "nameservers": "127.0.0.1:5353 , [::1]:5353"}
    response = client.post(url(zen), form(zen, requires_key="", mirror="on", **fields))
    assert response.status_code == 302, response.content[:2000]
    zen.refresh_from_db()
    assert (zen.ipv4, zen.ipv6, zen.mirror) == (False, True, True)
    assert zen.nameservers == "127.0.0.1:5353, [::1]:5353"
    assert zen.servers() == [("127.0.0.1", 5353), ("::1", 5353)]


def test_bad_nameservers_are_a_form_error_naming_each_entry(client, operator):
    client.force_login(operator)
    zen = Blocklist.objects.get(zone="zen.spamhaus.org")
    bad = "resolver.example.net, 127.0.0.1:dns"
    page = client.post(url(zen), form(zen, requires_key="", nameservers=bad))
    assert page.status_code == 200
    errors = page.context["adminform"].form.errors
    assert list(errors) == ["nameservers"]
    assert "'resolver.example.net' is not an IP address" in errors["nameservers"][0]
    assert "'127.0.0.1:dns' is not an IP address" in errors["nameservers"][1]
    zen.refresh_from_db()
    assert zen.nameservers == ""


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"ipv4": "", "ipv6": ""}, "an IP list answers for IPv4, IPv6 or both"),
        ({"mirror": "on"}, "a mirror is queried on the list&#x27;s own nameservers"),
    ],
)
def test_list_without_a_family_or_mirror_without_nameservers_is_refused(
    client, operator, fields, message
):
    client.force_login(operator)
    zen = Blocklist.objects.get(zone="zen.spamhaus.org")
    page = client.post(url(zen), form(zen, requires_key="", **fields))
    assert page.status_code == 200 and message in page.content.decode()
    zen.refresh_from_db()
    assert (zen.ipv4, zen.mirror) == (True, False)


def test_new_list_starts_with_100_in_flight_and_no_rate_limit(client, operator):
    client.force_login(operator)
    fields = client.get("/admin/reputation/blocklist/add/").context["adminform"].form.fields
    assert fields["max_in_flight"].initial == 100 and fields["max_qps"].initial == 0
    assert fields["ipv4"].initial is True and fields["ipv6"].initial is False
