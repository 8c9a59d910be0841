"""Listing history and rotation (reputation/blocklists/listings.py), with sweeps run against
rbldnsd."""

from __future__ import annotations

import pytest

from reputation.blocklists import dnsbl, runs
from reputation.blocklists.listings import CLOSE, NONE, OPEN, UPDATE, PairState, transition
from reputation.models import AddressCheck, Blocklist, BlocklistEvent, CheckRun, Listing
from routing.models import Pool, PoolAddress
from routing.policy import load_snapshot
from tests.rbldnsd_server import proxy
from tests.reputation.conftest import dynamic_listing, make_list

LISTED = dnsbl.Verdict(dnsbl.LISTED, ("127.0.0.2",))
CLEAN = dnsbl.Verdict(dnsbl.CLEAN)
UNKNOWN = dnsbl.Verdict(dnsbl.UNKNOWN, error=dnsbl.TIMEOUT)


def test_first_listed_answer_opens_a_listing():
    assert transition(PairState(False, 3), LISTED, 2) == (PairState(True, 0), OPEN)
    assert transition(PairState(True, 0), LISTED, 2) == (PairState(True, 0), UPDATE)


def test_listing_closes_only_after_consecutive_clean_answers():
    state, action = transition(PairState(True, 0), CLEAN, 2)
    assert action == NONE
    assert transition(state, CLEAN, 2) == (PairState(False, 2), CLOSE)
    assert transition(PairState(True, 1), LISTED, 2)[0].clean_streak == 0


def test_unknown_answer_neither_opens_nor_closes_nor_counts():
    for state in (PairState(False, 0), PairState(True, 1)):
        assert transition(state, UNKNOWN, 2) == (state, NONE)


def open_listings() -> set[tuple[str, str]]:
    return set(
        Listing.objects.filter(closed__isnull=True).values_list("address", "blocklist__zone")
    )


@pytest.mark.integration
@pytest.mark.django_db
def test_sweep_opens_listings_with_codes_and_reasons(catalogue):
    report = runs.run_now()
    assert open_listings() == {
        ("192.0.2.5", "zen.test"),
        ("192.0.2.7", "zen.test"),
        ("2001:db8::25", "zen.test"),
        ("198.51.100.3", "zen.test"),
        ("192.0.2.10", "bitmask.test"),
        ("192.0.2.11", "bitmask.test"),
        ("192.0.2.12", "minor.test"),
    }
    both = Listing.objects.get(address="192.0.2.7")
    assert (both.codes, both.meanings, both.pool) == (
        ["127.0.0.2", "127.0.0.4"],
        ["SBL", "XBL"],
        "normal",
    )
    assert "XBL exploited host 192.0.2.7" in both.reason
    assert report.misbehaving == []
    assert {"zone": "zen.test", "address": "192.0.2.9", "kind": "error-code"} in report.errors
    assert BlocklistEvent.objects.filter(kind="opened").count() == 7


@pytest.mark.integration
@pytest.mark.django_db
def test_every_run_is_recorded_and_a_rerun_is_idempotent(catalogue):
    runs.run_now()
    first = set(Listing.objects.values_list("pk", flat=True))
    runs.run_now()
    assert set(Listing.objects.values_list("pk", flat=True)) == first
    assert BlocklistEvent.objects.filter(kind="opened").count() == len(first)
    run = CheckRun.objects.first()
    assert run.finished is not None and run.chunks_done == run.chunks == 1
    assert run.addresses == 34
    # 34 addresses x 4 lists, minus the two IPv6 addresses on the 3 IPv4-only lists
    assert run.listed + run.clean + run.unknown == 34 * 4 - 2 * 3
    assert run.errors == {"zen.test": {"error-code": 1}}
    assert run.queries >= 130


@pytest.mark.integration
@pytest.mark.django_db
def test_listing_appears_and_disappears_across_sweeps(catalogue, rbldnsd):
    only = ["dynamic.test"]
    runs.run_now(zones=only)
    assert open_listings() == set()
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.4"))
    runs.run_now(zones=only)
    assert open_listings() == {("192.0.2.4", "dynamic.test")}
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    runs.run_now(zones=only)
    assert open_listings() == {("192.0.2.4", "dynamic.test")}  # one clean answer: still open
    runs.run_now(zones=only)
    assert open_listings() == set()
    closed = Listing.objects.get(address="192.0.2.4")
    assert closed.closed is not None and closed.closed_by_id is not None
    assert list(BlocklistEvent.objects.order_by("created").values_list("kind", flat=True)) == [
        "opened",
        "closed",
    ]


@pytest.mark.integration
@pytest.mark.django_db
def test_lost_replies_neither_open_nor_close_a_listing(catalogue, rbldnsd, settings):
    only = ["dynamic.test"]
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.4"))
    runs.run_now(zones=only)
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    runs.run_now(zones=only)
    streak = AddressCheck.objects.get(address="192.0.2.4", blocklist__zone="dynamic.test")
    assert streak.clean_streak == 1
    with proxy(rbldnsd.port, loss=1.0) as dead:
        settings.POOLWARDEN_NAMESERVERS = [dead.nameserver]
        settings.POOLWARDEN_DNS_TIMEOUT = 0.15
        report = runs.run_now(zones=only)
    assert report.misbehaving == ["dynamic.test"]  # no answer at all
    assert open_listings() == {("192.0.2.4", "dynamic.test")}
    streak.refresh_from_db()
    assert streak.clean_streak == 1


@pytest.mark.integration
@pytest.mark.django_db
def test_one_lost_reply_leaves_the_clean_streak_alone(catalogue, rbldnsd, settings):
    only = ["dynamic.test"]
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.4"))
    runs.run_now(zones=only)
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    runs.run_now(zones=only)
    with proxy(rbldnsd.port, lose="4.2.0.192.dynamic.test") as lossy:
        settings.POOLWARDEN_NAMESERVERS = [lossy.nameserver]
        report = runs.run_now(zones=only)
    assert report.misbehaving == []  # the self-test went through
    assert {"zone": "dynamic.test", "address": "192.0.2.4", "kind": "timeout"} in report.errors
    assert open_listings() == {("192.0.2.4", "dynamic.test")}
    settings.POOLWARDEN_NAMESERVERS = [rbldnsd.nameserver]
    runs.run_now(zones=only)  # the second clean answer
    assert open_listings() == set()


@pytest.mark.integration
@pytest.mark.django_db
def test_misbehaving_list_is_not_applied_and_admins_are_told(catalogue):
    make_list("all.test", weight="major")
    report = runs.run_now()
    assert report.misbehaving == ["all.test"]
    assert not Listing.objects.filter(blocklist__zone="all.test").exists()
    listed = Blocklist.objects.get(zone="all.test")
    assert listed.misbehaving and "answers for everything" in listed.misbehaving_reason
    event = BlocklistEvent.objects.get(kind="misbehaving")
    assert event.blocklist == listed and event.processed is None


@pytest.mark.integration
@pytest.mark.django_db
def test_normal_pool_address_listed_on_a_major_list_leaves_rotation(catalogue):
    runs.run_now()
    out = PoolAddress.objects.get(address="192.0.2.5")
    assert out.listed and out.listed_reason == "zen.test 127.0.0.2"
    assert not out.in_rotation
    routed = load_snapshot().pool("normal").addresses
    assert "192.0.2.5" not in routed and "192.0.2.10" not in routed
    assert "192.0.2.12" in routed  # minor list: recorded only
    assert not PoolAddress.objects.get(address="198.51.100.3").listed  # high-risk: recorded


@pytest.mark.integration
@pytest.mark.django_db
def test_admin_override_keeps_a_listed_address_in_rotation(catalogue):
    PoolAddress.objects.filter(address="192.0.2.5").update(keep_in_rotation=True)
    runs.run_now()
    assert "192.0.2.5" in load_snapshot().pool("normal").addresses


@pytest.mark.integration
@pytest.mark.django_db
def test_address_returns_to_rotation_when_its_listing_closes(catalogue, rbldnsd):
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.4"))
    runs.run_now(zones=["dynamic.test"])
    assert PoolAddress.objects.get(address="192.0.2.4").listed
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    runs.run_now(zones=["dynamic.test"])
    runs.run_now(zones=["dynamic.test"])
    assert not PoolAddress.objects.get(address="192.0.2.4").listed


@pytest.mark.integration
@pytest.mark.django_db
def test_pool_that_keeps_listed_addresses_only_records_them(catalogue):
    Pool.objects.filter(name="normal").update(take_listed_out=False)
    runs.run_now()
    assert ("192.0.2.5", "zen.test") in open_listings()
    assert not PoolAddress.objects.filter(listed=True).exists()


@pytest.mark.integration
@pytest.mark.django_db
def test_disabling_a_major_list_returns_its_addresses_at_the_next_sweep(catalogue):
    runs.run_now()
    assert PoolAddress.objects.get(address="192.0.2.10").listed  # bitmask.test
    Blocklist.objects.filter(zone="bitmask.test").update(enabled=False)
    runs.start_run(trigger="schedule")
    assert not PoolAddress.objects.get(address="192.0.2.10").listed
    assert PoolAddress.objects.get(address="192.0.2.5").listed  # zen.test still applies
