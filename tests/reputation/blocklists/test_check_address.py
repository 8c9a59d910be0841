"""Check now" of one address (reputation/blocklists/runs.py `check_address`): the sweep's own
code on a run of one address, against rbldnsd."""

from __future__ import annotations

import pytest
from django.utils import timezone

from reputation.blocklists import runs
from reputation.models import CheckRun, Listing, ListSweep, SweepLease
from tests.reputation.conftest import dynamic_listing

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_check_now_opens_the_listing_of_a_listed_address_on_its_own_run(catalogue):
    """The address's listing opens as a sweep would open it; the run names the address, asks
    no other address, records no list sweep and holds no list afterwards."""
    report = runs.check_address(address="192.0.2.5")
    listed = [a for a in report.answers if a.status == "listed"]
    assert [(a.zone, a.target, a.codes) for a in listed] == [
        ("zen.test", "192.0.2.5", ("127.0.0.2",))
    ]
    assert report.opened == ["zen.test"] and report.closed == []
    assert {a.target for a in report.answers} == {"192.0.2.5"}
    run = CheckRun.objects.get(pk=report.run)
    assert (run.trigger, run.address, run.addresses) == ("address", "192.0.2.5", 1)
    assert run.finished is not None and run.partial
    assert Listing.objects.get(address="192.0.2.5", closed=None).opened_by == run
    assert not ListSweep.objects.exists()
    assert not SweepLease.objects.filter(run=run).exists()


def test_check_now_closes_a_listing_the_list_no_longer_answers(catalogue, rbldnsd):
    """After a delisting, one clean answer closes a listing of a list that wants one."""
    dynamic = catalogue["dynamic.test"]
    dynamic.clean_to_close = 1
    dynamic.save()
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.13"))
    assert runs.check_address(address="192.0.2.13").opened == ["dynamic.test"]
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    report = runs.check_address(address="192.0.2.13")
    assert report.closed == ["dynamic.test"]
    assert Listing.objects.get(address="192.0.2.13").closed is not None


def test_check_now_leaves_out_a_list_another_run_is_sweeping(catalogue):
    other = CheckRun.objects.create(trigger="schedule")
    SweepLease.objects.create(
        blocklist=catalogue["zen.test"], run=other, until=timezone.now() + runs.listings.LEASE
    )
    report = runs.check_address(address="192.0.2.5")
    assert "zen.test" in report.skipped
    assert "zen.test" not in {a.zone for a in report.answers}


def test_check_now_of_an_address_in_no_pool_is_refused(catalogue):
    with pytest.raises(runs.RunError, match="in no pool"):
        runs.check_address(address="203.0.113.99")
