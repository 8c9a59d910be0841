"""Forward-confirmed reverse DNS per pool address: PTR -> name -> A back to the address, and
that name in HELO; checked against the test unbound's 127.in-addr.arpa zone
(tests/zones/routing-unbound.conf), recorded per address, alerted once per failure."""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rrset
import pytest
from django.core.management import call_command

from reputation import tasks
from reputation.blocklists import rdns
from reputation.models import Blocklist, Event, ReverseDNSCheck
from routing.models import IPRange, Pool, PoolAddress

pytestmark = pytest.mark.integration


VERDICTS = [
    ("127.0.0.10", "mta10.rdns.test", "ok", ["mta10.rdns.test"]),
    ("127.0.0.13", "MTA13.rdns.test.", "ok", ["other.rdns.test", "mta13.rdns.test"]),
    ("127.0.0.11", "mta11.rdns.test", "no-ptr", []),
    ("127.0.0.12", "elsewhere.rdns.test", "mismatch", ["elsewhere.rdns.test"]),
    ("127.0.0.10", "mail.rdns.test", "helo-mismatch", ["mta10.rdns.test"]),
    ("127.0.0.10", "", "generic-helo", ["mta10.rdns.test"]),
    ("127.0.0.14", "mta14.servfail.test", "error", ["mta14.servfail.test"]),
]


@pytest.fixture
def resolvers(settings, dns_server):
    """The sweep's resolvers are the test unbound."""
    settings.POOLWARDEN_NAMESERVERS = [dns_server.nameserver]
    settings.POOLWARDEN_DNS_TIMEOUT = 1.0


@pytest.mark.parametrize(("address", "hostname", "status", "ptr_names"), VERDICTS)
def test_each_address_gets_the_verdict_its_dns_earns(
    resolvers, address, hostname, status, ptr_names
):
    (result,) = rdns.check_all([rdns.Target(address, hostname)])
    assert (result.status, sorted(result.ptr_names)) == (status, sorted(ptr_names))
    assert result.failing is (None if status == "error" else status != "ok")


def test_addresses_checked_together_get_the_verdicts_they_get_alone(resolvers):
    results = rdns.check_all([rdns.Target(a, h) for a, h, _, _ in VERDICTS])
    assert [(r.address, r.status, sorted(r.ptr_names)) for r in results] == [
        (a, status, sorted(names)) for a, _, status, names in VERDICTS
    ]


def test_a_dns_error_names_the_question_that_went_unanswered(resolvers):
    (result,) = rdns.check_all([rdns.Target("127.0.0.14", "mta14.servfail.test")])
    assert result.detail == "A mta14.servfail.test: servfail"
    (result,) = rdns.check_all([rdns.Target("127.0.0.1", "")])
    assert (result.status, result.ptr_names) == ("generic-helo", ("localhost",))


V6_REVERSE = ipaddress.ip_address("2001:db8::20").reverse_pointer

# What a recursive resolver answers for a classless (RFC 2317) delegation and an alias: the
# CNAME chain, then the records of its end, in the answer section.
CHAINS = {
    ("20.2.0.192.in-addr.arpa.", "PTR"): [
        "20.2.0.192.in-addr.arpa. 300 IN CNAME 20.0-63.2.0.192.in-addr.arpa.",
        "20.0-63.2.0.192.in-addr.arpa. 300 IN PTR mta20.example.",
    ],
    ("mta20.example.", "A"): [
        "mta20.example. 300 IN CNAME host20.example.",
        "host20.example. 300 IN A 192.0.2.20",
    ],
    (f"{V6_REVERSE}.", "PTR"): [f"{V6_REVERSE}. 300 IN PTR mta20.example."],
    ("mta20.example.", "AAAA"): ["mta20.example. 300 IN AAAA 2001:db8::20"],
}


@pytest.fixture
def chain_resolver(settings) -> Iterator[None]:
    """A loopback resolver that answers CHAINS (NXDOMAIN to anything else)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            q = query.question[0]
            key = (q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype))
            for text in CHAINS.get(key, []):
                reply.answer.append(dns.rrset.from_text(*text.split(" ", 4)))
            reply.set_rcode(0 if key in CHAINS else 3)
            sock.sendto(reply.to_wire(), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    settings.POOLWARDEN_NAMESERVERS = [f"127.0.0.1:{sock.getsockname()[1]}"]
    settings.POOLWARDEN_DNS_TIMEOUT = 1.0
    yield
    stop.set()
    thread.join()
    sock.close()


def test_cname_chains_resolve_as_a_recursive_resolver_answers_them(chain_resolver):
    """RFC 2317 PTR and an aliased host name; an IPv6 address confirmed by AAAA."""
    results = rdns.check_all(
        [rdns.Target("192.0.2.20", "mta20.example"), rdns.Target("2001:db8::20", "mta20.example")]
    )
    assert [(r.status, r.ptr_names) for r in results] == [("ok", ("mta20.example",))] * 2


def test_a_refusing_resolver_gives_an_error_for_every_address(settings, dns_server):
    """Outside 127/8 and .test the test unbound answers REFUSED."""
    settings.POOLWARDEN_NAMESERVERS = [dns_server.nameserver]
    (result,) = rdns.check_all([rdns.Target("198.18.0.1", "mta.example")])
    assert (result.status, result.failing) == ("error", None)
    assert result.detail == "PTR 1.0.18.198.in-addr.arpa: refused"


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


@pytest.mark.django_db
def test_a_sweep_that_loses_the_insert_of_a_new_address_reads_the_winners_row(monkeypatch):
    """As on PostgreSQL when two sweeps record a new address at once: the second insert
    fails on the unique key; the loser then compares with the winner's row."""
    from django.db import IntegrityError

    result = rdns.Result("192.0.2.77", "no-ptr", (), "", "no PTR record")
    record, tries = rdns._record, []

    def after_the_winner(results):
        tries.append(results)
        if len(tries) == 1:
            record(results)  # the winner's, committed while the loser was checking
            raise IntegrityError("duplicate key value violates unique constraint")
        return record(results)

    monkeypatch.setattr(rdns, "_record", after_the_winner)
    assert rdns.record([result]) == []  # the loser: nothing changed
    assert ReverseDNSCheck.objects.filter(address="192.0.2.77").count() == 1
    assert rdns_events("192.0.2.77") == [("rdns-failed", "warning")]
