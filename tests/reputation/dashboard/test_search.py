"""The address search (reputation/dashboard/search.py and its view)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from reputation.dashboard.search import search
from reputation.models import Blocklist, Listing
from routing.models import IPRange, Pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def pools():
    Pool.objects.all().delete()
    normal = Pool.objects.create(name="normal", kind="normal")
    IPRange.objects.create(pool=normal, cidr="192.0.2.0/28")
    IPRange.objects.create(pool=normal, cidr="2001:db8::25/128")
    normal.sync_addresses()
    normal.addresses.filter(address="192.0.2.5").update(hostname="mta5.example.net")
    zen = Blocklist.objects.create(zone="zen.test", weight="major")
    Listing.objects.create(address="203.0.113.7", blocklist=zen, opened=timezone.now())
    return normal


def test_an_exact_address_in_any_spelling_is_one_match(pools):
    """An address is looked up exactly (not as the start of 192.0.2.10), IPv6 compressed."""
    assert search(query="192.0.2.1").only.address == "192.0.2.1"
    assert search(query=" 2001:DB8:0::25 ").only.address == "2001:db8::25"
    assert search(query="192.0.2.5").only.pool == "normal"
    assert search(query="203.0.113.7").only.pool == ""  # listed once, in no pool now
    assert search(query="192.0.2.200").matches == []


def test_a_prefix_a_network_or_a_name_lists_the_matches(pools):
    prefix = [m.address for m in search(query="192.0.2.").matches]
    assert prefix == [f"192.0.2.{i}" for i in range(16)]
    assert search(query="2001:db8:").only.address == "2001:db8::25"
    network = [m.address for m in search(query="192.0.2.4/30").matches]
    assert network == ["192.0.2.4", "192.0.2.5", "192.0.2.6", "192.0.2.7"]
    assert search(query="MTA5").only.address == "192.0.2.5"
    assert search(query="203.0").only.address == "203.0.113.7"
    assert search(query="192.0.2.0/99").problem
    assert search(query="  ").problem


def test_the_view_opens_one_match_and_lists_several(client, viewer, pools):
    client.force_login(viewer)
    one = client.get("/admin/dashboard/search/", {"q": "192.0.2.5"})
    assert one.status_code == 302 and one.url == "/admin/dashboard/address/192.0.2.5/"
    several = client.get("/admin/dashboard/search/", {"q": "192.0.2."}).content.decode()
    assert 'href="/admin/dashboard/address/192.0.2.15/"' in several
    none = client.get("/admin/dashboard/search/", {"q": "198.51"}).content.decode()
    assert "No pool address, and no listed address, matches." in none
