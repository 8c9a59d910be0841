"""Runs at scale (reputation/blocklists/runs.py and listings.py): a sweep writes what changed
and no more, runs never overlap on a list, a list is self-tested once per run, chunks carry
their own addresses, and what got no answer keeps what was known. Against rbldnsd."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from reputation import tasks
from reputation.blocklists import listings, runs
from reputation.blocklists.sweep import sweep_work
from reputation.models import (
    AddressCheck,
    Blocklist,
    BlocklistEvent,
    CheckRun,
    Listing,
    ListSweep,
    SweepLease,
)
from routing.models import PoolAddress
from tests.rbldnsd_server import proxy
from tests.reputation.conftest import dynamic_listing, make_list

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def writes(queries: CaptureQueriesContext, table: str = "") -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
        and table in q["sql"]
    ]


def test_a_later_sweep_that_finds_the_same_answers_writes_no_pair_and_one_row_per_list(
    catalogue,
):
    runs.run_now()
    first = AddressCheck.objects.count()
    assert first > 100
    with CaptureQueriesContext(connection) as queries:
        runs.run_now()
    assert writes(queries, "reputation_addresscheck") == []
    assert writes(queries, 'reputation_listing"') == [] and writes(queries, "listing ") == []
    # O(lists), not O(pairs): the run, its chunk, a lease, a ListSweep and the usage per list.
    assert len(writes(queries)) <= 8 + 4 * len(catalogue), writes(queries)
    assert AddressCheck.objects.count() == first
    assert ListSweep.objects.count() == 2 * len(catalogue)


def test_the_clean_streak_is_written_up_to_clean_to_close_and_no_further(catalogue, rbldnsd):
    only = ["dynamic.test"]
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.13"))
    runs.run_now(zones=only)
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    pair = AddressCheck.objects.filter(address="192.0.2.13", blocklist__zone="dynamic.test")
    streaks = []
    for _ in range(4):
        runs.run_now(zones=only)
        streaks.append(pair.get().clean_streak)
    assert streaks == [1, 2, 2, 2]
    assert Listing.objects.get(address="192.0.2.13").closed is not None  # after two clean


def test_an_unanswered_pair_keeps_when_it_was_last_answered_and_is_asked_again(
    catalogue, rbldnsd, settings
):
    only = ["zen.test"]
    runs.run_now(zones=only)
    pair = AddressCheck.objects.get(address="192.0.2.13", blocklist__zone="zen.test")
    first = ListSweep.objects.get(run__pk=CheckRun.objects.latest("pk").pk).checked
    with proxy(rbldnsd.port, lose="13.2.0.192.zen.test") as lossy:
        settings.POOLWARDEN_NAMESERVERS = [lossy.nameserver]
        report = runs.run_now(zones=only)
    settings.POOLWARDEN_NAMESERVERS = [rbldnsd.nameserver]
    assert {"zone": "zen.test", "address": "192.0.2.13", "kind": "timeout"} in report.errors
    pair.refresh_from_db()
    assert (pair.status, pair.missed_run) == ("clean", report.run)
    assert listings.last_answered([pair], {})[pair.pk] == first
    # The list's answers are fresh, but this pair has none since: a scheduled run asks it.
    plan = runs.start_run(trigger="schedule")
    assert [c["picked"] for c in plan.chunks] == [{"zen.test": ["192.0.2.9", "192.0.2.13"]}]
    for index, chunk in enumerate(plan.chunks):
        runs.run_chunk(plan.run, index, chunk)
    pair.refresh_from_db()
    assert pair.missed_run is None and listings.last_answered([pair], {})[pair.pk] > first


def test_a_lost_txt_reply_keeps_the_reason_of_an_open_listing(catalogue, rbldnsd, settings):
    runs.run_now(zones=["zen.test"])
    listing = Listing.objects.get(address="192.0.2.5", closed__isnull=True)
    assert listing.reason.startswith("SBL listed")
    with proxy(rbldnsd.port, lose="5.2.0.192.zen.test", lose_type=16) as lossy:
        settings.POOLWARDEN_NAMESERVERS = [lossy.nameserver]
        runs.run_now(zones=["zen.test"])
        assert lossy.dropped >= 1
    listing.refresh_from_db()
    assert listing.reason.startswith("SBL listed") and listing.closed is None


def test_no_txt_is_asked_of_a_list_that_failed_its_self_test(catalogue, rbldnsd):
    everything = make_list("all.test", codes={"127.0.0.2": "all"})
    resolver = runs.make_resolver([everything])
    outcome = sweep_work([(everything.spec(), ["192.0.2.1", "192.0.2.2"])], resolver)
    assert "all.test" in outcome.misbehaving
    assert resolver.sent_by_zone["all.test"] == 2 + 2  # self-test and A look-ups, no TXT
    assert all(r.verdict.reason == "" for r in outcome.results)


def test_runs_never_overlap_on_a_list(catalogue):
    first = runs.start_run(trigger="schedule")
    second = runs.start_run(trigger="schedule")
    assert second.chunks == [] and second.run.finished is not None
    assert second.run.skipped == {
        zone: f"run {first.run.pk} is still sweeping it" for zone in sorted(catalogue)
    }
    assert sorted(runs.run_now(zones=["minor.test"]).skipped) == ["minor.test"]
    for index, chunk in enumerate(first.chunks):
        runs.run_chunk(first.run, index, chunk)
    assert not SweepLease.objects.filter(run__isnull=False).exists()  # released when complete
    assert runs.run_now(zones=["minor.test"]).skipped == {}
    # A run that stopped applying chunks (its workers died) lets its lists go in the end.
    stuck = runs.start_run(trigger="schedule")
    SweepLease.objects.update(until=timezone.now())
    assert runs.start_run(trigger="schedule").run.skipped == {}
    assert stuck.run.pk != CheckRun.objects.latest("pk").pk


def test_a_lease_released_while_a_run_looks_at_it_is_taken_not_named_after_no_run(catalogue):
    """The holder released the list between the conditional UPDATE and the look at the
    holder (its `until` is the release time, after the new run's start)."""
    zen = catalogue["zen.test"]
    started = timezone.now()
    SweepLease.objects.create(blocklist=zen, run=None, until=timezone.now())
    run = CheckRun.objects.create(trigger="command")
    assert runs.lease(run, [zen], started) == ([zen], {})
    assert SweepLease.objects.get(blocklist=zen).run == run


def test_a_run_that_fails_while_planning_ends_and_lets_its_lists_go(catalogue, monkeypatch):
    def unreachable(run, blocklists):
        raise OSError("no resolver answers")

    monkeypatch.setattr(runs, "_self_test", unreachable)
    with pytest.raises(OSError):
        runs.start_run(trigger="schedule")
    assert not CheckRun.objects.filter(finished__isnull=True).exists()
    assert not SweepLease.objects.filter(run__isnull=False).exists()


def test_a_list_is_self_tested_once_per_run_and_a_failing_one_is_not_swept(catalogue, monkeypatch):
    monkeypatch.setattr(runs, "CHUNK_ADDRESSES", 10)
    make_list("silent.test")
    plan = runs.start_run(trigger="schedule")
    assert len(plan.chunks) == 4
    assert all("silent.test" not in c["zones"] and "zen.test" in c["zones"] for c in plan.chunks)
    assert list(plan.run.misbehaving) == ["silent.test"]
    for index, chunk in enumerate(plan.chunks):
        runs.run_chunk(plan.run, index, chunk)
    kinds = BlocklistEvent.objects.filter(blocklist__zone="silent.test").values_list("kind")
    assert list(kinds) == [("misbehaving",)]
    assert not AddressCheck.objects.filter(blocklist__zone="silent.test").exists()
    assert Blocklist.objects.get(zone="silent.test").misbehaving


def test_chunks_split_the_addresses_by_id_and_each_sweeps_only_its_own(catalogue, monkeypatch):
    monkeypatch.setattr(runs, "CHUNK_ADDRESSES", 10)
    ids = list(PoolAddress.objects.order_by("id").values_list("id", flat=True))
    plan = runs.start_run(trigger="schedule")
    assert [(c["first"], c["last"]) for c in plan.chunks] == [
        (ids[i], ids[min(i + 9, len(ids) - 1)]) for i in range(0, len(ids), 10)
    ]
    tasks.sweep_chunk(plan.run.pk, 1, plan.chunks[1])
    checked = set(AddressCheck.objects.values_list("address", flat=True))
    own = set(PoolAddress.objects.filter(id__in=ids[10:20]).values_list("address", flat=True))
    assert checked == own


def test_a_helo_name_that_several_addresses_share_is_asked_once_per_run(catalogue, monkeypatch):
    monkeypatch.setattr(runs, "CHUNK_ADDRESSES", 10)
    make_list("dbl.test", kind="domain", codes={"127.0.1.2": "spam domain"})
    ids = list(PoolAddress.objects.order_by("id").values_list("id", flat=True))
    PoolAddress.objects.filter(id__in=[ids[3], ids[15], ids[25]]).update(hostname="spam.example")
    plan = runs.start_run(trigger="schedule", zones=["dbl.test"])
    asked = 0
    for index, chunk in enumerate(plan.chunks):
        asked += len(runs.run_chunk(plan.run, index, chunk).results)
    assert asked == 1
    assert Listing.objects.filter(address="spam.example", closed__isnull=True).count() == 1


def test_old_list_sweeps_are_forgotten_but_each_lists_latest_stays(catalogue):
    for _ in range(3):
        runs.run_now(zones=["minor.test", "zen.test"])
    ListSweep.objects.update(checked=timezone.now() - dt.timedelta(days=40))
    assert listings.forget_sweeps(before=timezone.now() - dt.timedelta(days=32)) == 4
    kept = ListSweep.objects.values_list("blocklist__zone", "run_id")
    last = CheckRun.objects.latest("pk").pk
    assert sorted(kept) == [("minor.test", last), ("zen.test", last)]


def test_a_list_with_its_own_nameservers_is_asked_only_there(catalogue, rbldnsd, settings):
    settings.POOLWARDEN_NAMESERVERS = ["127.0.0.1:9"]  # nothing answers there
    with proxy(rbldnsd.port) as own:
        Blocklist.objects.filter(zone="minor.test").update(nameservers=own.nameserver)
        report = runs.run_now(zones=["minor.test"])
        assert own.asked
    assert report.misbehaving == [] and report.errors == []
    assert [x["address"] for x in report.listed] == ["192.0.2.12"]


def test_a_chunk_takes_its_share_of_a_lists_limits_with_every_other_worker(catalogue, monkeypatch):
    """While a run sweeps a rate-limited list, another worker on the same list gets half of
    its rate: the run's chunk is one of the list's holders (here in Redis)."""
    import secrets
    import threading
    import time

    from reputation.blocklists import shares
    from reputation.blocklists.holders import RedisBackend
    from tests.support import redis_answers, skip_missing

    url = "redis://127.0.0.1:6379/0"
    if not redis_answers(url):
        skip_missing("redis", f"nothing answers at {url}", "apt-get install redis-server")
    prefix = f"pw-test-{secrets.token_hex(4)}"
    monkeypatch.setattr(shares, "default_backend", lambda: RedisBackend(url, prefix=prefix))
    Blocklist.objects.filter(zone="minor.test").update(max_qps=8, max_in_flight=0)
    grants, stop = [], threading.Event()

    def other_worker() -> None:
        with shares.shares_for({"minor.test": (0, 8.0)}) as other:
            while not stop.is_set():
                grants.append(other.current()["minor.test"].qps)
                time.sleep(0.05)

    worker = threading.Thread(target=other_worker)
    worker.start()
    try:
        runs.run_now(zones=["minor.test"])  # 32 addresses at 8 a second, or 4 while shared
    finally:
        stop.set()
        worker.join(timeout=10)
    assert 4.0 in grants  # the run's chunk held half of the rate meanwhile
    assert Listing.objects.filter(address="192.0.2.12", closed__isnull=True).exists()


def test_a_self_test_lost_on_a_lossy_link_is_tried_again_before_the_list_is_judged(
    catalogue, rbldnsd, settings
):
    """Every reply to minor.test's must-list test point is lost for longer than one self-test
    lasts (POOLWARDEN_DNS_TIMEOUT, 0.6 s here), then they come through: the second try passes,
    and the list is swept, not called misbehaving."""
    with proxy(rbldnsd.port, lose="2.0.0.127.minor.test", lose_for=0.8) as lossy:
        settings.POOLWARDEN_NAMESERVERS = [lossy.nameserver]
        report = runs.run_now(zones=["minor.test"])
        assert lossy.dropped >= 2
    assert report.misbehaving == [] and not Blocklist.objects.get(zone="minor.test").misbehaving
    assert [x["address"] for x in report.listed] == ["192.0.2.12"]
    assert not BlocklistEvent.objects.filter(kind="misbehaving").exists()


def test_the_check_runs_page_names_the_lists_a_run_skipped(catalogue, admin_client):
    busy = runs.start_run(trigger="schedule", zones=["minor.test"])
    runs.run_now(zones=["minor.test", "zen.test"])
    page = admin_client.get("/admin/reputation/checkrun/").content.decode()
    assert "Skipped (another run held them)" in page and "minor.test" in page
    assert busy.run.skipped == {}


def test_a_pool_run_asks_a_helo_name_its_pool_shares_with_another_pool(catalogue):
    make_list("dbl.test", kind="domain", codes={"127.0.1.2": "spam domain"})
    normal = PoolAddress.objects.filter(pool__name="normal").order_by("id").first()
    risky = PoolAddress.objects.filter(pool__name="high-risk").order_by("id").first()
    assert normal.id < risky.id  # the name's first address is in the other pool
    PoolAddress.objects.filter(id__in=[normal.id, risky.id]).update(hostname="spam.example")
    report = runs.run_now(pool="high-risk", zones=["dbl.test"])
    assert [x["address"] for x in report.listed] == ["spam.example"]


def test_a_chunk_queued_by_an_earlier_version_still_sweeps_addresses_and_names(catalogue):
    make_list("dbl.test", kind="domain", codes={"127.0.1.2": "spam domain"})
    PoolAddress.objects.filter(address="192.0.2.1").update(hostname="spam.example")
    plan = runs.start_run(trigger="schedule", zones=["dbl.test", "minor.test"])
    runs.run_chunk(plan.run, 0, {"dbl.test": ["spam.example"], "minor.test": ["192.0.2.12"]})
    listed = set(Listing.objects.filter(closed__isnull=True).values_list("address", flat=True))
    assert listed == {"spam.example", "192.0.2.12"}
