"""Check runs: what a sweep covers, split into chunks, and each chunk's execution.

`start_run()` records a `CheckRun`, leases its lists (a list that another run is still
sweeping is left out of this one and named in `skipped`: runs never overlap on a list),
self-tests each leased list once (a list that fails is not asked in this run), and plans
chunks of `CHUNK_ADDRESSES` pool addresses in id order. A chunk is small, plain data: its
first and last address id, the lists to ask of every address (and HELO name) in that range,
and, for the few lists that are asked of some pairs only, exactly which. Planning reads no
per-pair state of lists without a daily cap, so it takes seconds at any scale, and a chunk
loads only its own addresses. `run_chunk()` sweeps one chunk and applies it, once.

What is due: `check_blocklists` (force) asks everything now. A scheduled run asks a list
without a daily cap again once the shortest TTL of its answers in its last complete run has
passed (at least 60 s: `listings.MIN_FRESH`), and before that only the pairs it has no trusted
answer for (new addresses, and those whose last answer was unknown). A list with
`max_per_day` is planned per pair: a pair whose own TTL has not passed waits, and the run takes
only its share of what is left of today's cap, stalest first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Min
from django.utils import timezone

from reputation import schedules
from reputation.blocklists import dnsbl, listings, rdns
from reputation.blocklists.listings import release
from reputation.blocklists.shares import shares_for
from reputation.blocklists.sweep import SweepOutcome, self_test, sweep_work
from reputation.blocklists.sweeper import Shares, UDPSweeper, ZoneLimits
from reputation.models import (
    AddressCheck,
    Blocklist,
    CheckRun,
    Listing,
    ListSweep,
    QueryUsage,
    SweepLease,
)
from routing.dns import server_addresses
from routing.models import Pool, PoolAddress

CHUNK_ADDRESSES = 1024
Chunk = dict  # {"first": id, "last": id, "zones": [zone, ...], "picked": {zone: [target, ...]}}
IPV4_SAMPLE, IPV6_SAMPLE = "192.0.2.1", "2001:db8::1"


class RunError(ValueError):
    """A run cannot start as asked (unknown pool or list); the message is for a person."""


@dataclass(frozen=True)
class Target:
    """One pool address as a run sees it."""

    id: int
    address: str
    hostname: str
    pool: str


@dataclass
class RunPlan:
    run: CheckRun
    chunks: list[Chunk] = field(default_factory=list)
    lookups: int = 0  # planned, for progress
    self_test: SweepOutcome = field(default_factory=SweepOutcome)


def pool_targets(pool: str | None = None, address: str | None = None) -> list[Target]:
    """Every address of every pool (or of `pool`, or just `address`), in id order."""
    rows = PoolAddress.objects.order_by("id")
    if pool is not None:
        if not Pool.objects.filter(name=pool).exists():
            names = ", ".join(Pool.objects.order_by("name").values_list("name", flat=True))
            raise RunError(f"no pool named {pool!r} (pools: {names or 'none'})")
        rows = rows.filter(pool__name=pool)
    if address is not None:
        rows = rows.filter(address=address)
        if not rows.exists():
            raise RunError(f"{address} is in no pool")
    return [Target(*row) for row in rows.values_list("id", "address", "hostname", "pool__name")]


def pool_addresses(pool: str | None = None) -> dict[str, str]:
    """Every address of every pool (or of `pool`), with its pool's name; and every HELO/rDNS
    name of those addresses (for the domain lists), with its pool's name."""
    return _pools_of(pool_targets(pool))


def _pools_of(targets: Iterable[Target]) -> dict[str, str]:
    pools = {}
    for target in targets:
        pools[target.address] = target.pool
        if target.hostname:
            pools.setdefault(target.hostname, target.pool)
    return pools


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
    blocklists: list[Blocklist],
    progress: Callable[[int, int], None] | None = None,
    shares: Shares | None = None,
) -> UDPSweeper:
    """The sweeper for these lists: each list on its own resolvers if it has some, the others
    on POOLWARDEN_NAMESERVERS (or the system's resolvers); within each list's limits, and
    within this process's share of them when `shares` divides them among workers."""
    servers = server_addresses(settings.POOLWARDEN_NAMESERVERS)
    lifetime = settings.POOLWARDEN_DNS_TIMEOUT
    limits = {b.zone: ZoneLimits(*b.query_limits) for b in blocklists}
    own = {b.zone: b.servers() for b in blocklists if b.nameservers.strip()}
    window = getattr(settings, "POOLWARDEN_DNSBL_WINDOW", 100)
    return UDPSweeper(
        servers,
        timeout=lifetime / 3,
        attempts=3,
        window=window,
        limits=limits,
        progress=progress,
        zone_servers=own,
        shares=shares,
    )


@contextlib.contextmanager
def shared_limits(blocklists: list[Blocklist]) -> Iterator[Shares | None]:
    """This process's share of the limits of these lists, divided among every worker
    sweeping them now (see `shares`); None when no list has a limit."""
    limits = {b.zone: b.query_limits for b in blocklists if any(b.query_limits)}
    if not limits:
        yield None
        return
    with shares_for(limits) as shares:
        yield shares


def daily_cap(blocklist: Blocklist) -> int:
    """The list's daily query cap; 0 when it has none (a local mirror has none)."""
    return blocklist.daily_cap


# --- planning -----------------------------------------------------------------------------


def start_run(
    *,
    trigger: str,
    pool: str | None = None,
    zones: list[str] | None = None,
    force: bool = False,
    address: str | None = None,
) -> RunPlan:
    """Record a run, lease and self-test its lists, and plan its chunks (raises RunError on
    an unknown pool or list, or an `address` in no pool)."""
    targets = pool_targets(pool, address)
    blocklists = chosen_blocklists(zones)
    # Admins may have disabled a list, changed its weight or a pool's rotation setting.
    if address is None:
        listings.refresh_rotation(pool=pool or "")
    else:
        listings.refresh_rotation([address])
    now = timezone.now()
    run = CheckRun.objects.create(
        trigger=trigger,
        pool=pool or "",
        zones=list(zones or []),
        address=address or "",
        addresses=len(targets),
    )
    try:
        return _plan(run, targets, blocklists, force=force, now=now)
    except Exception:
        # Its caller reports the error (the schedule's task raises a sweep-failed alert): the
        # run ends here, with no lease held and no "did not finish" alert two hours later.
        with contextlib.suppress(DatabaseError):
            release(run)
            CheckRun.objects.filter(pk=run.pk).update(finished=timezone.now())
        raise


def _plan(
    run: CheckRun,
    targets: list[Target],
    blocklists: list[Blocklist],
    *,
    force: bool,
    now: dt.datetime,
) -> RunPlan:
    leased, run.skipped = lease(run, blocklists, now)
    tested = _self_test(run, leased)
    usable = [b for b in leased if b.zone not in tested.misbehaving]
    release(run, [b for b in leased if b.zone in tested.misbehaving])
    plan = RunPlan(run, self_test=tested)
    whole, picked, run.deferred, plan.lookups = due(targets, usable, force=force, now=now)
    plan.chunks = split(targets, whole, picked)
    run.chunks, run.misbehaving = len(plan.chunks), dict(tested.misbehaving)
    if not plan.chunks:
        run.finished = timezone.now()
        release(run)
    run.save(update_fields=["skipped", "deferred", "chunks", "misbehaving", "finished"])
    return plan


def lease(
    run: CheckRun, blocklists: list[Blocklist], now: dt.datetime
) -> tuple[list[Blocklist], dict[str, str]]:
    """The lists `run` may sweep (no other run holds them), and why each other one may not."""
    SweepLease.objects.bulk_create(
        [SweepLease(blocklist=b, until=now) for b in blocklists], ignore_conflicts=True
    )
    leased, skipped = [], {}
    for blocklist in blocklists:
        holder = _take(run, blocklist, now)
        if holder is None:
            leased.append(blocklist)
        else:
            skipped[blocklist.zone] = holder
    return leased, skipped


def _take(run: CheckRun, blocklist: Blocklist, now: dt.datetime) -> str | None:
    """Lease the list to `run`; None when it did, else why not. A lease released between
    the conditional UPDATE and the look at its holder is free: taken on a second try."""
    lease = SweepLease.objects.filter(blocklist=blocklist)
    for free_at in (now, timezone.now()):
        if lease.filter(until__lte=free_at).update(run=run, until=now + listings.LEASE):
            return None
        holder = lease.values_list("run_id", flat=True).first()
        if holder is not None:
            return f"run {holder} is still sweeping it"
    return "another run was sweeping it"


def _self_test(run: CheckRun, blocklists: list[Blocklist]) -> SweepOutcome:
    """RFC 5782 §5, once per run: which lists fail (an event on each change)."""
    if not blocklists:
        return SweepOutcome()
    resolver = make_resolver(blocklists)
    outcome = self_test([b.spec() for b in blocklists], resolver)
    # A test point lost on a lossy link is not a dead list: those lists get a second try.
    lost = [b.spec() for b in blocklists if _only_timed_out(outcome, b.zone)]
    if lost:
        again = self_test(lost, resolver)
        for spec in lost:
            if spec.zone not in again.misbehaving:
                del outcome.misbehaving[spec.zone]
        outcome.results = [r for r in outcome.results if r.zone in outcome.misbehaving]
        for zone, sent in again.queries_by_zone.items():
            outcome.queries_by_zone[zone] = outcome.queries_by_zone.get(zone, 0) + sent
        outcome.queries += again.queries
    listings.mark_self_tests(outcome, blocklists)
    listings.count_queries(run, outcome)
    return outcome


def _only_timed_out(outcome: SweepOutcome, zone: str) -> bool:
    """Whether `zone` failed its self-test only because test points got no answer."""
    failed = [
        v for (spec, _), v in outcome.probes if spec.zone == zone and v.status == dnsbl.UNKNOWN
    ]
    return (
        zone in outcome.misbehaving
        and bool(failed)
        and all(v.error == dnsbl.TIMEOUT for v in failed)
    )


def families(targets: Iterable[Target]) -> dict[str, list[str]]:
    """The targets each kind of list answers for: IPv4 and IPv6 addresses, and HELO names."""
    kinds: dict[str, list[str]] = {"ipv4": [], "ipv6": [], "names": []}
    for target in targets:
        kinds["ipv6" if ":" in target.address and _v6(target.address) else "ipv4"].append(
            target.address
        )
    kinds["names"] = list(dict.fromkeys(t.hostname for t in targets if t.hostname))
    return kinds


def _v6(address: str) -> bool:
    ip = dnsbl.ip_or_none(address)
    return ip is not None and ip.version == 6  # an IPv4-mapped address is asked as IPv4


def applicable(spec: dnsbl.ListSpec, kinds: dict[str, list[str]]) -> list[str]:
    """The targets of `kinds` that the list answers for."""
    if spec.kind == dnsbl.DOMAIN:
        return kinds["names"]
    found = []
    if spec.applies_to(IPV4_SAMPLE):
        found += kinds["ipv4"]
    if spec.applies_to(IPV6_SAMPLE):
        found += kinds["ipv6"]
    return found


def due(
    targets: list[Target], blocklists: list[Blocklist], *, force: bool, now: dt.datetime
) -> tuple[list[str], dict[str, list[str]], int, int]:
    """The lists to ask of every target; per list, the targets to ask when only some are due;
    how many pairs wait for a later run; and how many look-ups are planned."""
    kinds = families(targets)
    whole, picked, deferred, lookups = [], {}, 0, 0
    for blocklist in blocklists:
        wanted = applicable(blocklist.spec(), kinds)
        if not wanted:
            continue
        if daily_cap(blocklist):
            asked = _within_cap(blocklist, wanted, force=force, now=now)
            picked[blocklist.zone] = asked
        elif force or not _list_fresh(blocklist, now):
            whole.append(blocklist.zone)
            asked = wanted
        else:
            asked = _unanswered(blocklist, wanted)
            picked[blocklist.zone] = asked
        deferred += len(wanted) - len(asked)
        lookups += len(asked)
    return whole, {zone: asked for zone, asked in picked.items() if asked}, deferred, lookups


def _list_fresh(blocklist: Blocklist, now: dt.datetime) -> bool:
    """Whether the list's last complete sweep of every pool is younger than its answers' TTL."""
    last = ListSweep.objects.filter(blocklist=blocklist, pool="").order_by("-run_id")
    fresh_until = last.values_list("fresh_until", flat=True).first()
    return fresh_until is not None and fresh_until > now


def _unanswered(blocklist: Blocklist, wanted: list[str]) -> list[str]:
    """The targets the list has no trusted answer for: new ones, and those whose last
    answer was unknown."""
    answered = AddressCheck.objects.filter(blocklist=blocklist, missed_run__isnull=True)
    found = set(answered.values_list("address", flat=True))
    return [target for target in wanted if target not in found]


def _within_cap(
    blocklist: Blocklist, wanted: list[str], *, force: bool, now: dt.datetime
) -> list[str]:
    """A capped list's pairs to ask now: those whose own TTL has passed (all, when forced),
    stalest first, no more than this run's share of what is left of today's cap."""
    if force:
        asked = wanted
    else:
        fresh = AddressCheck.objects.filter(
            blocklist=blocklist, fresh_until__gt=now, missed_run__isnull=True
        )
        fresh_targets = set(fresh.values_list("address", flat=True))
        asked = [target for target in wanted if target not in fresh_targets]
    allowed = _allowance(blocklist, now, spread=not force)
    if len(asked) > allowed:
        asked = _stalest(blocklist, asked)[:allowed]
    return asked


def _allowance(blocklist: Blocklist, now: dt.datetime, *, spread: bool) -> int:
    """How many look-ups this run may make on a list with a daily cap.

    A scheduled run takes its share of what is left today, one sweep interval's worth.
    """
    used = QueryUsage.objects.filter(blocklist=blocklist, day=timezone.localdate(now))
    left = daily_cap(blocklist) - sum(used.values_list("queries", flat=True))
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


def _stalest(blocklist: Blocklist, targets: list[str]) -> list[str]:
    checked = dict(
        AddressCheck.objects.filter(blocklist=blocklist).values_list("address", "checked")
    )
    never = dt.datetime.min.replace(tzinfo=dt.UTC)
    return sorted(targets, key=lambda target: checked.get(target, never))


def split(
    targets: list[Target], whole: list[str], picked: dict[str, list[str]], size: int = 0
) -> list[Chunk]:
    """Chunks of at most `size` addresses in id order; a HELO name goes with the first
    address that has it. A chunk without anything to ask is left out."""
    size = size or CHUNK_ADDRESSES
    groups = [targets[start : start + size] for start in range(0, len(targets), size)]
    home: dict[str, int] = {}
    for index, group in enumerate(groups):
        for target in group:
            home[target.address] = index
            if target.hostname:
                home.setdefault(target.hostname, index)
    picks: list[dict[str, list[str]]] = [{} for _ in groups]
    for zone, asked in picked.items():
        for target in asked:
            picks[home[target]].setdefault(zone, []).append(target)
    return [
        {"first": group[0].id, "last": group[-1].id, "zones": list(whole), "picked": picks[i]}
        for i, group in enumerate(groups)
        if whole or picks[i]
    ]


# --- a chunk ------------------------------------------------------------------------------


def run_chunk(
    run: CheckRun,
    index: int,
    chunk: Chunk,
    progress: Callable[[int, int], None] | None = None,
) -> SweepOutcome:
    """Sweep one chunk and apply it (a chunk applied already is swept but not re-applied)."""
    if "first" not in chunk:  # queued by an earlier version: zone -> targets
        chunk = {"zones": [], "picked": chunk}
    targets = chunk_targets(run, chunk)
    zones = {*chunk["zones"], *chunk["picked"]}
    blocklists = list(Blocklist.objects.filter(zone__in=zones))
    kinds = families(targets)
    kinds["names"] = _own_names(run, targets, chunk)
    pools = _pools_of(targets)
    work = []
    for blocklist in blocklists:
        spec = blocklist.spec()
        if blocklist.zone in chunk["zones"]:
            asked = applicable(spec, kinds)
        else:
            asked = [t for t in chunk["picked"][blocklist.zone] if t in pools]
        if asked:
            work.append((spec, asked))
    with shared_limits(blocklists) as shares:
        resolver = make_resolver(blocklists, progress, shares)
        outcome = sweep_work(work, resolver, self_test=False)
    per_pair = {b.zone for b in blocklists if daily_cap(b)}
    listings.apply_chunk(run, index, outcome, pools, per_pair=per_pair)
    return outcome


def chunk_targets(run: CheckRun, chunk: Chunk) -> list[Target]:
    """The chunk's addresses in the run's scope; for a chunk of an earlier version, those
    that carry its targets."""
    rows = PoolAddress.objects.order_by("id")
    if run.pool:
        rows = rows.filter(pool__name=run.pool)
    if run.address:
        rows = rows.filter(address=run.address)
    if "first" in chunk:
        rows = rows.filter(id__gte=chunk["first"], id__lte=chunk["last"])
    else:
        named = {t for asked in chunk["picked"].values() for t in asked}
        ips = [t for t in named if dnsbl.ip_or_none(t)]  # an inet column compares no names
        rows = rows.filter(address__in=ips) | rows.filter(hostname__in=named)
    return [Target(*row) for row in rows.values_list("id", "address", "hostname", "pool__name")]


def _own_names(run: CheckRun, targets: list[Target], chunk: Chunk) -> list[str]:
    """The HELO names this chunk asks: those whose first address (by id, in the run's scope,
    as `split` chose) is one of its own, so that a name several addresses share is asked once
    per run."""
    names = list(dict.fromkeys(t.hostname for t in targets if t.hostname))
    if not names or "first" not in chunk:
        return names
    first = PoolAddress.objects.filter(hostname__in=names)
    if run.pool:
        first = first.filter(pool__name=run.pool)
    if run.address:
        first = first.filter(address=run.address)
    first = first.values("hostname")
    homes = {
        row["hostname"]
        for row in first.annotate(first=Min("id"))
        if chunk["first"] <= row["first"] <= chunk["last"]
    }
    return [name for name in names if name in homes]


# --- check_blocklists ---------------------------------------------------------------------


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
    skipped: dict[str, str] = field(default_factory=dict)
    elapsed: float = 0.0  # the whole run in this process, database included

    def as_json(self) -> dict:
        return {
            "listed": self.listed,
            "errors": self.errors,
            "misbehaving": self.misbehaving,
            "skipped": self.skipped,
            "queries": self.queries,
            "seconds": round(self.seconds, 3),
            "elapsed": round(self.elapsed, 3),
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
    started = time.monotonic()
    plan = start_run(trigger=CheckRun.Trigger.COMMAND, pool=pool, zones=zones, force=True)
    outcomes, done = [plan.self_test], 0
    for index, chunk in enumerate(plan.chunks):

        def report(n: int, _: int, base: int = done) -> None:
            if progress is not None:
                progress(min(base + n, plan.lookups), plan.lookups)

        outcome = run_chunk(plan.run, index, chunk, report)
        outcomes.append(outcome)
        done += len(outcome.results)
    rdns.check_pools(pool)
    report = _report(plan, outcomes)
    report.elapsed = time.monotonic() - started
    return report


@dataclass(frozen=True)
class Answer:
    """One list's answer about one target (an address or its HELO name) in a check."""

    zone: str
    target: str
    status: str  # listed, clean or unknown
    codes: tuple[str, ...] = ()
    error: str = ""  # the unknown kind


@dataclass
class AddressReport:
    """What a "check now" of one address found and changed."""

    run: int
    address: str
    answers: list[Answer]
    opened: list[str]  # lists whose listing of the address (or its name) this check opened
    closed: list[str]  # and those whose listing it closed
    misbehaving: list[str]  # lists that failed their self-test: not asked
    skipped: dict[str, str]  # lists another run was sweeping: not asked
    seconds: float


def check_address(*, address: str) -> AddressReport:
    """Sweep one pool address (and its HELO name) on every enabled list now, as a sweep does
    (`start_run` and `run_chunk`, in a run of its own): listings open and close, rotation
    and alerts follow. Bounded by the DNS timeout: a self-test, its retry and the look-ups.
    Raises RunError when the address is in no pool."""
    started = time.monotonic()
    before = _open_zones(address)
    plan = start_run(trigger=CheckRun.Trigger.ADDRESS, address=address, force=True)
    outcomes = []
    try:
        for index, chunk in enumerate(plan.chunks):
            outcomes.append(run_chunk(plan.run, index, chunk))
    finally:
        release(plan.run)  # done, or failed: either way no list stays held
    after = _open_zones(address)
    answers = [
        Answer(r.zone, r.target, r.verdict.status, r.verdict.codes, r.verdict.error)
        for outcome in outcomes
        for r in outcome.results
    ]
    return AddressReport(
        run=plan.run.pk,
        address=address,
        answers=sorted(answers, key=lambda a: (a.status != dnsbl.LISTED, a.zone, a.target)),
        opened=sorted(after - before),
        closed=sorted(before - after),
        misbehaving=sorted(plan.run.misbehaving),
        skipped=dict(plan.run.skipped),
        seconds=time.monotonic() - started,
    )


def _open_zones(address: str) -> set[str]:
    """The lists with an open listing of the address or its HELO name."""
    names = [
        address,
        *PoolAddress.objects.filter(address=address).values_list("hostname", flat=True),
    ]
    listed = Listing.objects.filter(address__in=[n for n in names if n], closed__isnull=True)
    return set(listed.values_list("blocklist__zone", flat=True))


def _report(plan: RunPlan, outcomes: list[SweepOutcome]) -> Report:
    errors = [
        {"zone": r.zone, "address": r.target, "kind": r.verdict.error}
        for outcome in outcomes
        for r in outcome.results
        if r.verdict.status == "unknown"
    ]
    return Report(
        listed=listed_now(plan.run.pool or None, plan.run.zones),
        errors=errors,
        misbehaving=sorted(plan.run.misbehaving),
        queries=sum(o.queries for o in outcomes),
        seconds=sum(o.seconds for o in outcomes),
        addresses=plan.run.addresses,
        run=plan.run.pk,
        skipped=dict(plan.run.skipped),
    )


def listed_now(pool: str | None, zones: list[str]) -> list[dict]:
    """Open listings of the addresses (and HELO names) of every pool, or of `pool`, on the
    named lists (or on every enabled one)."""
    ours = set(pool_addresses(pool))  # not a subquery: PostgreSQL's inet is no varchar
    listed = Listing.objects.filter(closed__isnull=True)
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
        if x.address in ours
    ]
