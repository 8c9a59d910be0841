"""Forward-confirmed reverse DNS of each pool address, checked with each sweep.

Receivers (Gmail, Microsoft, Spamhaus' CSS) want the address's PTR name to resolve back to the
address, and that name in the HELO that Postfix says from it (the address's hostname; without
one, the host's generic `$myhostname`). `judge()` decides on plain data, `check_all()` asks the
sweep's resolvers about many addresses at once, and `record()` keeps the latest result per
address and raises one event when an address starts or stops failing. A DNS error is no
verdict: it changes neither the failing state nor the alerts.

`check_all()` does its DNS through the sweep's raw UDP sweeper (sweeper.py: retransmission,
congestion window, replies matched by ID and question) in two batches: the PTR question of
every address, then the A (IPv4) or AAAA (IPv6) question of every name found, each name asked
once however many addresses point to it. A thread per address with dnspython's resolver cost
~0.3-0.45 ms of CPU per address; this costs a few hundredths of that. The records of an
answer are taken whatever their owner name, so a CNAME chain (RFC 2317 classless delegation
of in-addr.arpa, a host name that is an alias) gives what a full resolver gives. A reply is
read with the records it carries: there is no EDNS and no retry over TCP, so a PTR or address
set too large for 512 bytes (dozens of names) may be judged on part of it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from reputation.blocklists.dnsbl import (
    NOERROR,
    NXDOMAIN,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    REFUSED,
    SERVFAIL,
    TIMEOUT,
    Reply,
)
from reputation.blocklists.sweeper import AAAA, PTR, A, UDPSweeper, question
from reputation.models import ReverseDNSCheck
from routing.dns import server_addresses
from routing.models import PoolAddress

S = ReverseDNSCheck.Status
ZONE = "rdns"  # the sweeper zone of these lookups: no blocklist's limits apply
TYPE_NAMES = {PTR: "PTR", A: "A", AAAA: "AAAA"}
ERROR_KINDS = {RCODE_SERVFAIL: SERVFAIL, RCODE_REFUSED: REFUSED}
Key = tuple[str, int]  # a question: name (no root dot), type
IP = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    address: str
    hostname: str  # the HELO name Postfix says from this address ("" = $myhostname)


@dataclass(frozen=True)
class Result:
    address: str
    status: str
    ptr_names: tuple[str, ...]
    helo: str
    detail: str

    @property
    def failing(self) -> bool | None:
        """True or False on a verdict; None when DNS gave no answer to judge by."""
        return None if self.status == S.ERROR else self.status != S.OK


def name(text: str) -> str:
    """A DNS name as compared here: lowercase, without the root dot."""
    return text.strip().rstrip(".").lower()


def judge(target: Target, ptr_names: list[str], confirmed: list[str]) -> Result:
    """The verdict for one address from its PTR names and those that resolve back to it."""
    helo = name(target.hostname)
    names = tuple(ptr_names)

    def result(status: str, detail: str) -> Result:
        return Result(target.address, status, names, helo, detail[:300])

    if not names:
        return result(S.NO_PTR, "no PTR record: receivers see an address without a name")
    if not confirmed:
        return result(S.UNCONFIRMED, f"{', '.join(names)} does not resolve back to the address")
    if not helo:
        return result(
            S.GENERIC_HELO,
            f"no hostname set: HELO is the host's generic name ($myhostname), not {confirmed[0]}",
        )
    if helo not in confirmed:
        return result(S.HELO_MISMATCH, f"HELO says {helo}, the PTR confirms {confirmed[0]}")
    return result(S.OK, f"{helo} resolves back to the address and is its HELO")


def check_all(targets: list[Target]) -> list[Result]:
    """Every target checked through POOLWARDEN_NAMESERVERS, the sweep's resolvers: all the
    PTR questions in one batch, then all the forward questions of the names found."""
    if not targets:
        return []
    sweeper = make_sweeper()
    ips = [ipaddress.ip_address(target.address) for target in targets]
    reverse = [(reverse_name(ip), PTR) for ip in ips]
    ptr = ask(sweeper, reverse)
    found = [answer(key, ptr[key]) for key in reverse]
    wanted = [
        (n, forward_type(ip)) for ip, names in zip(ips, found, strict=True) for n in names or ()
    ]
    forward = ask(sweeper, wanted)
    return [
        _result(target, ip, (key, ptr[key]), names, forward)
        for target, ip, key, names in zip(targets, ips, reverse, found, strict=True)
    ]


def make_sweeper() -> UDPSweeper:
    """The sweep's resolvers with runs.py's settings: POOLWARDEN_DNS_TIMEOUT per lookup, in
    three tries, within POOLWARDEN_DNSBL_WINDOW lookups in flight."""
    timeout = settings.POOLWARDEN_DNS_TIMEOUT
    window = getattr(settings, "POOLWARDEN_DNSBL_WINDOW", 100)
    servers = server_addresses(settings.POOLWARDEN_NAMESERVERS)
    return UDPSweeper(servers, timeout=timeout / 3, attempts=3, window=window)


def reverse_name(ip: IP) -> str:
    """The PTR question's name; an IPv4-mapped IPv6 address is asked in in-addr.arpa."""
    mapped = ip.ipv4_mapped if ip.version == 6 else None
    return (mapped or ip).reverse_pointer


def forward_type(ip: IP) -> int:
    return A if ip.version == 4 else AAAA


def ask(sweeper: UDPSweeper, keys: Iterable[Key]) -> dict[Key, Reply]:
    """The reply to each distinct question, asked in one batch. A name that no question
    can carry (an empty, overlong or non-ASCII label) is not asked and gets no entry."""
    asked, questions = [], []
    for key in dict.fromkeys(keys):
        try:
            questions.append(question(*key))
        except ValueError:
            continue
        asked.append(key)
    return dict(zip(asked, sweeper.resolve_wire(questions, [ZONE] * len(questions)), strict=True))


def answer(key: Key, reply: Reply | None) -> tuple[str, ...] | None:
    """The PTR names (compared form) or addresses of a reply; () for NXDOMAIN, no data or a
    name never asked (reply None); None when there is no answer to rely on."""
    if reply is None or reply.rcode == NXDOMAIN:
        return ()
    if reply.rcode != NOERROR:
        return None
    return tuple(name(n) for n in reply.names) if key[1] == PTR else reply.addresses


def problem(key: Key, reply: Reply) -> str:
    """Why `reply` is no answer, as a Result's detail."""
    rcode = reply.rcode
    kind = TIMEOUT if rcode is None else ERROR_KINDS.get(rcode, f"rcode-{rcode}")
    return f"{TYPE_NAMES[key[1]]} {key[0]}: {kind}"


def _result(
    target: Target,
    ip: IP,
    ptr: tuple[Key, Reply],
    names: tuple[str, ...] | None,
    forward: dict[Key, Reply],
) -> Result:
    """Judge one target on its PTR reply, the names it gave (None: no answer) and the
    forward replies of those names."""
    if names is None:
        return Result(target.address, S.ERROR, (), name(target.hostname), problem(*ptr))
    confirmed, qtype = [], forward_type(ip)
    for found in names:
        key = (found, qtype)
        addresses = answer(key, forward.get(key))
        if addresses is None:
            detail = problem(key, forward[key])
            return Result(target.address, S.ERROR, names, name(target.hostname), detail)
        if any(ipaddress.ip_address(a) == ip for a in addresses):
            confirmed.append(found)
    return judge(target, list(names), confirmed)


def targets(pool: str | None = None) -> list[Target]:
    """Every pool address (or those of `pool`) with the HELO name Postfix says from it."""
    rows = PoolAddress.objects.order_by("pool__name", "id")
    if pool:
        rows = rows.filter(pool__name=pool)
    return [Target(a, h) for a, h in rows.values_list("address", "hostname")]


def check_pools(pool: str | None = None) -> list[Result]:
    """Check and record every pool address (or those of `pool`): once per sweep run."""
    results = check_all(targets(pool))
    record(results)
    return results


BATCH = 1000
STORED = ("pk", "status", "ptr_names", "helo", "detail", "failing", "since")


def record(results: Iterable[Result]) -> list[ReverseDNSCheck]:
    """Store each result as its address's latest; returns the rows whose failing state
    changed (an event was raised for each). A row is written only when its result changed;
    the others get this check's time in one statement per thousand addresses.

    Two sweeps recording at once may both find an address new: the second to insert it reads
    the first's row and compares with it instead (one event, no unique-key error)."""
    results = list(results)
    try:
        return _record(results)
    except IntegrityError:
        return _record(results)


@transaction.atomic
def _record(results: list[Result]) -> list[ReverseDNSCheck]:
    from reputation.alerts import events

    now = timezone.now()
    stored = {}
    for start in range(0, len(results), BATCH):  # bounded IN lists (SQLite's variable limit)
        batch = [r.address for r in results[start : start + BATCH]]
        found = ReverseDNSCheck.objects.select_for_update().filter(address__in=batch)
        stored.update((row[0], row[1:]) for row in found.values_list("address", *STORED))
    new, written, same, changed = [], [], [], []
    for result in results:
        old = stored.get(result.address)
        was_failing = old[5] if old else False
        failing = was_failing if result.failing is None else result.failing
        values = (result.status, list(result.ptr_names), result.helo, result.detail, failing)
        if old is not None and values == old[1:6]:
            same.append(old[0])
            continue
        row = ReverseDNSCheck(address=result.address, checked=now, since=now)
        row.status, row.ptr_names, row.helo, row.detail, row.failing = values
        if old is not None:
            row.pk, row.since = old[0], now if failing != was_failing else old[6]
            written.append(row)
        else:
            new.append(row)
        if failing != was_failing:
            changed.append(row)
    ReverseDNSCheck.objects.bulk_create(new, batch_size=1000)
    fields = ["status", "ptr_names", "helo", "detail", "failing", "since", "checked"]
    ReverseDNSCheck.objects.bulk_update(written, fields, batch_size=500)
    for start in range(0, len(same), BATCH):
        ReverseDNSCheck.objects.filter(pk__in=same[start : start + BATCH]).update(checked=now)
    events.rdns_changed(changed)
    return changed
