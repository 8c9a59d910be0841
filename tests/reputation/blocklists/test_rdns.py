"""Forward-confirmed reverse DNS per pool address: PTR -> name -> A back to the address, and
that name in HELO; checked against the test unbound's 127.in-addr.arpa zone
(tests/zones/routing-unbound.conf), recorded per address, alerted once per failure."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

from reputation import tasks
from reputation.blocklists import rdns
from reputation.models import Blocklist, Event, ReverseDNSCheck
from routing.models import IPRange, Pool, PoolAddress

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("address", "hostname", "status", "ptr_names"),
    [
        ("127.0.0.10", "mta10.rdns.test", "ok", ["mta10.rdns.test"]),
        ("127.0.0.13", "MTA13.rdns.test.", "ok", ["other.rdns.test", "mta13.rdns.test"]),
        ("127.0.0.11", "mta11.rdns.test", "no-ptr", []),
        ("127.0.0.12", "elsewhere.rdns.test", "mismatch", ["elsewhere.rdns.test"]),
        ("127.0.0.10", "mail.rdns.test", "helo-mismatch", ["mta10.rdns.test"]),
        ("127.0.0.10", "", "generic-helo", ["mta10.rdns.test"]),
        ("127.0.0.14", "mta14.servfail.test", "error", ["mta14.servfail.test"]),
    ],
)
def test_each_address_gets_the_verdict_its_dns_earns(
    dns_server, address, hostname, status, ptr_names
):
    result = rdns.check(dns_server.resolver(), rdns.Target(address, hostname))
    assert (result.status, sorted(result.ptr_names)) == (status, sorted(ptr_names))
    assert result.failing is (None if status == "error" else status != "ok")


def test_without_a_hostname_the_check_says_helo_is_the_hosts_generic_name():
    result = rdns.judge(rdns.Target("192.0.2.1", ""), ["mx.example"], ["mx.example"])
    assert "HELO is the host's generic name ($myhostname), not mx.example" in result.detail


@pytest.fixture
def pool(db, settings, dns_server):
    """One pool of 127.0.0.10-127.0.0.14, resolving through the test unbound."""
    Pool.objects.all().delete()
    Blocklist.objects.all().delete()
    normal = Pool.objects.create(name="normal", kind="normal")
    for last in range(10, 15):
        IPRange.objects.create(pool=normal, cidr=f"127.0.0.{last}/32")
    normal.sync_addresses()
    PoolAddress.objects.filter(address="127.0.0.10").update(hostname="mta10.rdns.test")
    settings.POOLWARDEN_NAMESERVERS = [dns_server.nameserver]
    settings.POOLWARDEN_DNS_TIMEOUT = 1.0
    return normal


def rdns_events(address: str) -> list[tuple[str, str]]:
    found = Event.objects.filter(address=address, kind__startswith="rdns").order_by("created")
    return list(found.values_list("kind", "severity"))


@pytest.mark.django_db
def test_a_failure_raises_one_warning_and_its_recovery_one_info(pool):
    PoolAddress.objects.filter(address="127.0.0.10").update(hostname="mail.rdns.test")
    rdns.check_pools()
    rdns.check_pools()  # still failing: no second event
    assert rdns_events("127.0.0.10") == [("rdns-failed", "warning")]
    event = Event.objects.get(address="127.0.0.10")
    assert event.pool == "normal" and "helo" in event.subject.lower()
    PoolAddress.objects.filter(address="127.0.0.10").update(hostname="mta10.rdns.test")
    rdns.check_pools()
    rdns.check_pools()
    assert rdns_events("127.0.0.10") == [("rdns-failed", "warning"), ("rdns-recovered", "info")]
    check = ReverseDNSCheck.objects.get(address="127.0.0.10")
    assert (check.status, check.failing, check.ptr_names) == ("ok", False, ["mta10.rdns.test"])


@pytest.mark.django_db
def test_an_address_confirmed_from_the_start_raises_nothing(pool):
    rdns.check_pools()
    assert rdns_events("127.0.0.10") == []
    assert rdns_events("127.0.0.11") == [("rdns-failed", "warning")]


@pytest.mark.django_db
def test_a_dns_error_keeps_the_last_verdict_and_alerts_nothing(pool):
    ReverseDNSCheck.objects.create(address="127.0.0.14", status="no-ptr", failing=True)
    rdns.check_pools()
    check = ReverseDNSCheck.objects.get(address="127.0.0.14")
    assert (check.status, check.failing) == ("error", True)
    assert rdns_events("127.0.0.14") == []


@pytest.mark.django_db
def test_check_blocklists_checks_every_address_once_per_run(pool):
    call_command("check_blocklists", "--json", stdout=io.StringIO())
    statuses = dict(ReverseDNSCheck.objects.values_list("address", "status"))
    assert statuses == {
        "127.0.0.10": "ok",
        "127.0.0.11": "no-ptr",
        "127.0.0.12": "mismatch",
        "127.0.0.13": "generic-helo",
        "127.0.0.14": "error",
    }


@pytest.mark.django_db
def test_a_scheduled_sweep_queues_one_reverse_dns_check(
    pool, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr(tasks.check_rdns, "delay", lambda pool: queued.append(pool))
    with django_capture_on_commit_callbacks(execute=True):
        tasks.sweep(jitter=0)
    assert queued == [None]
    assert tasks.check_rdns(None) == {"addresses": 5, "failing": 3}
