"""Check runs: what a sweep covers, split into chunks, and each chunk's execution.

`start_run()` records a `CheckRun` and plans its chunks: each chunk is a mapping
zone -> addresses due for a look-up. A scheduled run skips pairs whose last answer's TTL has
not passed and spreads each list's daily cap over the rest of the day; `check_blocklists`
checks everything now (within the cap). `run_chunk()` sweeps one chunk and applies it, once.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from config.env import split_nameserver
from reputation import schedules
from reputation.blocklists import listings, rdns
from reputation.blocklists.sweep import SweepOutcome, sweep_work
from reputation.blocklists.sweeper import UDPSweeper, ZoneLimits
from reputation.models import AddressCheck, Blocklist, CheckRun, Listing, QueryUsage
from routing.models import Pool, PoolAddress

CHUNK_ADDRESSES = 256
Chunk = dict[str, list[str]]  # zone -> addresses


class RunError(ValueError):
    """A run cannot start as asked (unknown pool or list); the message is for a person."""


@dataclass
class RunPlan:
    run: CheckRun
    chunks: list[Chunk] = field(default_factory=list)


def pool_addresses(pool: str | None = None) -> dict[str, str]:
    """Every address of every pool (or of `pool`), with its pool's name; and every HELO/rDNS
    name of those addresses (for the domain lists), with its pool's name."""
    rows = PoolAddress.objects.select_related("pool").order_by("pool__name", "id")
    if pool is not None:
        if not Pool.objects.filter(name=pool).exists():
            names = ", ".join(Pool.objects.order_by("name").values_list("name", flat=True))
            raise RunError(f"no pool named {pool!r} (pools: {names or 'none'})")
        rows = rows.filter(pool__name=pool)
    targets = {row.address: row.pool.name for row in rows}
    targets.update({row.hostname: row.pool.name for row in rows if row.hostname})
    return targets


def chosen_blocklists(zones: list[str] | None = None) -> list[Blocklist]:
    """Enabled lists (with their key when they need one), or exactly the named ones."""
    if zones:
        found = {b.zone: b for b in Blocklist.objects.filter(zone__in=zones)}
        missing = [zone for zone in zones if zone not in found]
        if missing:
            raise RunError(f"no blocklist with zone {missing[0]!r} in the catalogue")
        keyless = [z for z in zones if found[z].requires_key and not found[z].access_key]
        if keyless:
            raise RunError(f"blocklist {keyless[0]!r} needs an access key (set it in admin)")
        return [found[zone] for zone in dict.fromkeys(zones)]
    usable = Blocklist.objects.filter(enabled=True).exclude(requires_key=True, access_key="")
    return list(usable.order_by("zone"))


def make_resolver(
    blocklists: list[Blocklist], progress: Callable[[int, int], None] | None = None
) -> UDPSweeper:
    """The sweeper for these lists, on POOLWARDEN_NAMESERVERS (or the system's resolvers)."""
    servers = [split_nameserver(entry) for entry in settings.POOLWARDEN_NAMESERVERS]
    if not servers:
        import dns.resolver

        servers = [(host, 53) for host in dns.resolver.Resolver().nameservers]
    lifetime = settings.POOLWARDEN_DNS_TIMEOUT
    limits = {b.zone: ZoneLimits(b.max_in_flight, float(b.max_qps)) for b in blocklists}
    window = getattr(settings, "POOLWARDEN_DNSBL_WINDOW", 100)
    return UDPSweeper(
        servers, timeout=lifetime / 3, attempts=3, window=window, limits=limits, progress=progress
    )


def start_run(
    *, trigger: str, pool: str | None = None, zones: list[str] | None = None, force: bool = False
) -> RunPlan:
    """Record a run and plan its chunks (raises RunError on an unknown pool or list)."""
    addresses = pool_addresses(pool)
    blocklists = chosen_blocklists(zones)
    # Admins may have disabled a list, changed its weight or a pool's rotation setting.
    listings.refresh_rotation(addresses)
    work, deferred = due_work(list(addresses), blocklists, force=force)
    chunks = split(work, list(addresses))
    run = CheckRun.objects.create(
        trigger=trigger,
        pool=pool or "",
        zones=list(zones or []),
        chunks=len(chunks),
        addresses=len(addresses),
        deferred=deferred,
        finished=timezone.now() if not chunks else None,
    )
    return RunPlan(run, chunks)


def due_work(
    addresses: list[str], blocklists: list[Blocklist], *, force: bool
) -> tuple[Chunk, int]:
    """Per zone, the addresses to look up now; and how many pairs wait for a later run."""
    now = timezone.now()
    work, deferred = {}, 0
    for blocklist in blocklists:
        spec = blocklist.spec()
        wanted = [a for a in addresses if spec.applies_to(a)]
        due = wanted if force else _not_fresh(blocklist, wanted, now)
        allowed = _allowance(blocklist, now, spread=not force)
        if allowed is not None and len(due) > allowed:
            due = _stalest(blocklist, due)[:allowed]
        deferred += len(wanted) - len(due)
        work[blocklist.zone] = due
    return work, deferred


def _not_fresh(blocklist: Blocklist, addresses: list[str], now: dt.datetime) -> list[str]:
    fresh = set(
        AddressCheck.objects.filter(
            blocklist=blocklist, address__in=addresses, fresh_until__gt=now
        ).values_list("address", flat=True)
    )
    return [a for a in addresses if a not in fresh]


def _allowance(blocklist: Blocklist, now: dt.datetime, *, spread: bool) -> int | None:
    """How many look-ups this run may make on a list with a daily cap (None: no cap).

    A scheduled run takes its share of what is left today, one sweep interval's worth.
    """
    if not blocklist.max_per_day:
        return None
    used = QueryUsage.objects.filter(blocklist=blocklist, day=timezone.localdate(now))
    left = blocklist.max_per_day - sum(used.values_list("queries", flat=True))
    if left <= 0:
        return 0
    if not spread:
        return left
    local = timezone.localtime(now)
    midnight = (local + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    every = schedules.sweep_schedule(now).every
    interval = every.total_seconds() if every else settings.POOLWARDEN_SWEEP_INTERVAL
    share = min(1.0, interval / max((midnight - local).total_seconds(), 1.0))
    return math.ceil(left * share)


def _stalest(blocklist: Blocklist, addresses: list[str]) -> list[str]:
    checked = dict(
        AddressCheck.objects.filter(blocklist=blocklist, address__in=addresses).values_list(
            "address", "checked"
        )
    )
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(addresses, key=lambda a: checked.get(a, never))


def split(work: Chunk, order: list[str], size: int | None = None) -> list[Chunk]:
    """Chunks of at most `size` addresses each, every address with all its due zones."""
    size = size or CHUNK_ADDRESSES
    chunks = []
    for start in range(0, len(order), size):
        group = set(order[start : start + size])
        chunk = {zone: [a for a in addrs if a in group] for zone, addrs in work.items()}
        chunk = {zone: addrs for zone, addrs in chunk.items() if addrs}
        if chunk:
            chunks.append(chunk)
    return chunks


def run_chunk(
    run: CheckRun,
    index: int,
    chunk: Chunk,
    progress: Callable[[int, int], None] | None = None,
) -> SweepOutcome:
    """Sweep one chunk and apply it (a chunk applied already is swept but not re-applied)."""
    blocklists = list(Blocklist.objects.filter(zone__in=list(chunk)))
    work = [(b.spec(), chunk[b.zone]) for b in blocklists]
    outcome = sweep_work(work, make_resolver(blocklists, progress))
    addresses = {a for addrs in chunk.values() for a in addrs}
    pools = {a: p for a, p in pool_addresses().items() if a in addresses}
    listings.apply_chunk(run, index, outcome, pools)
    return outcome


@dataclass
class Report:
    """What check_blocklists prints (the `--json` contract of DESIGN.md)."""

    listed: list[dict]
    errors: list[dict]
    misbehaving: list[str]
    queries: int
    seconds: float
    addresses: int
    run: int

    def as_json(self) -> dict:
        return {
            "listed": self.listed,
            "errors": self.errors,
            "misbehaving": self.misbehaving,
            "queries": self.queries,
            "seconds": round(self.seconds, 3),
            "addresses": self.addresses,
            "run": self.run,
        }


def run_now(
    *,
    pool: str | None = None,
    zones: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """One whole sweep in this process (check_blocklists); raises RunError on bad input."""
    plan = start_run(trigger=CheckRun.Trigger.COMMAND, pool=pool, zones=zones, force=True)
    total = sum(len(addrs) for chunk in plan.chunks for addrs in chunk.values())
    outcomes, done = [], 0
    for index, chunk in enumerate(plan.chunks):
        size = sum(len(addrs) for addrs in chunk.values())

        def report(n: int, _: int, base: int = done) -> None:
            if progress is not None:
                progress(min(base + n, total), total)

        outcomes.append(run_chunk(plan.run, index, chunk, report))
        done += size
    rdns.check_pools(pool)
    return _report(plan, outcomes)


def _report(plan: RunPlan, outcomes: list[SweepOutcome]) -> Report:
    addresses = pool_addresses(plan.run.pool or None)
    zones = {zone for chunk in plan.chunks for zone in chunk} or set(plan.run.zones)
    errors = [
        {"zone": r.zone, "address": r.target, "kind": r.verdict.error}
        for outcome in outcomes
        for r in outcome.results
        if r.verdict.status == "unknown"
    ]
    misbehaving = sorted({z for o in outcomes for z in o.misbehaving} & zones)
    return Report(
        listed=listed_now(list(addresses), plan.run.zones),
        errors=errors,
        misbehaving=misbehaving,
        queries=sum(o.queries for o in outcomes),
        seconds=sum(o.seconds for o in outcomes),
        addresses=len(addresses),
        run=plan.run.pk,
    )


def listed_now(addresses: list[str], zones: list[str]) -> list[dict]:
    """Open listings of these addresses on the named lists (or on every enabled one)."""
    listed = Listing.objects.filter(closed__isnull=True, address__in=addresses)
    if zones:
        listed = listed.filter(blocklist__zone__in=zones)
    else:
        listed = listed.filter(blocklist__enabled=True)
    return [
        {
            "address": x.address,
            "zone": x.blocklist.zone,
            "codes": x.codes,
            "meanings": x.meanings,
            "reason": x.reason,
        }
        for x in listed.select_related("blocklist").order_by("address", "blocklist__zone")
    ]
