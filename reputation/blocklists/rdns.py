"""Forward-confirmed reverse DNS of each pool address, checked with each sweep.

Receivers (Gmail, Microsoft, Spamhaus' CSS) want the address's PTR name to resolve back to the
address, and that name in the HELO that Postfix says from it (the address's hostname; without
one, the host's generic `$myhostname`). `judge()` decides on plain data, `check_all()` asks the
sweep's resolvers about many addresses at once (a bounded number at a time), and `record()`
keeps the latest result per address and raises one event when an address starts or stops
failing. A DNS error is no verdict: it changes neither the failing state nor the alerts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.exception
import dns.resolver
import dns.reversename
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from reputation.models import ReverseDNSCheck
from routing.dns import make_resolver
from routing.models import PoolAddress

S = ReverseDNSCheck.Status
CONCURRENCY = 16  # addresses asked about at once: a sweep of 1,024 stays gentle on the resolver


class DNSUnknown(Exception):
    """No answer to rely on (timeout, SERVFAIL, REFUSED): the message names the kind."""


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


def check(resolver: dns.resolver.Resolver, target: Target) -> Result:
    """Look the address up (PTR, then A or AAAA of each name) and judge it."""
    ip = ipaddress.ip_address(target.address)
    names: list[str] = []
    try:
        names = [name(r) for r in records(resolver, dns.reversename.from_address(str(ip)), "PTR")]
        forward = "A" if ip.version == 4 else "AAAA"
        confirmed = [n for n in names if ip in _addresses(records(resolver, n, forward))]
    except DNSUnknown as exc:
        return Result(target.address, S.ERROR, tuple(names), name(target.hostname), str(exc))
    return judge(target, names, confirmed)


def records(resolver: dns.resolver.Resolver, qname, rdtype: str) -> list[str]:
    """The answer's records as text; [] for NXDOMAIN or no data. Raises DNSUnknown."""
    try:
        answer = resolver.resolve(qname, rdtype, raise_on_no_answer=False, search=False)
    except dns.resolver.NXDOMAIN:
        return []
    except dns.resolver.LifetimeTimeout:
        raise DNSUnknown(f"{rdtype} {qname}: timeout") from None
    except dns.resolver.NoNameservers:
        raise DNSUnknown(f"{rdtype} {qname}: servfail or refused") from None
    except dns.exception.DNSException as exc:
        raise DNSUnknown(f"{rdtype} {qname}: {type(exc).__name__}") from None
    return [r.to_text() for r in answer.rrset] if answer.rrset is not None else []


def _addresses(texts: list[str]) -> set:
    return {ipaddress.ip_address(text) for text in texts}


def check_all(targets: list[Target], *, concurrency: int = CONCURRENCY) -> list[Result]:
    """Every target checked through POOLWARDEN_NAMESERVERS, the sweep's resolvers."""
    if not targets:
        return []
    resolver = make_resolver(settings.POOLWARDEN_NAMESERVERS, settings.POOLWARDEN_DNS_TIMEOUT)
    with ThreadPoolExecutor(max_workers=min(concurrency, len(targets))) as pool:
        return list(pool.map(lambda target: check(resolver, target), targets))


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


@transaction.atomic
def record(results: Iterable[Result]) -> list[ReverseDNSCheck]:
    """Store each result as its address's latest; returns the rows whose failing state
    changed (an event was raised for each). A row is written only when its result changed;
    the others get this check's time in one statement per thousand addresses."""
    from reputation.alerts import events

    results = list(results)
    now = timezone.now()
    found = ReverseDNSCheck.objects.select_for_update().filter(
        address__in=[r.address for r in results]
    )
    rows = {row.address: row for row in found}
    new, written, same, changed = [], [], [], []
    for result in results:
        row = rows.get(result.address)
        if row is None:
            row = ReverseDNSCheck(address=result.address, since=now, failing=False)
            new.append(row)
        failing = row.failing if result.failing is None else result.failing
        values = (result.status, list(result.ptr_names), result.helo, result.detail, failing)
        if row.pk is not None and values == (
            row.status,
            row.ptr_names,
            row.helo,
            row.detail,
            row.failing,
        ):
            same.append(row.pk)
            continue
        if failing != row.failing:
            row.since = now
            changed.append(row)
        row.status, row.ptr_names, row.helo, row.detail, row.failing = values
        row.checked = now
        if row.pk is not None:
            written.append(row)
    ReverseDNSCheck.objects.bulk_create(new, batch_size=1000)
    fields = ["status", "ptr_names", "helo", "detail", "failing", "since", "checked"]
    ReverseDNSCheck.objects.bulk_update(written, fields, batch_size=500)
    for start in range(0, len(same), 1000):
        ReverseDNSCheck.objects.filter(pk__in=same[start : start + 1000]).update(checked=now)
    events.rdns_changed(changed)
    return changed
