"""Listing history and rotation: what a sweep's trusted answers change.

`transition()` is the rule, on plain data: a listing opens on the first listed answer and
closes after `clean_to_close` consecutive clean answers; an unknown answer changes nothing.
`apply_chunk()` applies one chunk of a run's outcome to the database exactly once (a retried
chunk finds its `ChunkDone` row and does nothing), and `refresh_rotation()` takes addresses of
pools that want it out of rotation while a major list lists them.

Writes follow changes, not answers: an `AddressCheck` is written when its answer, its clean
streak (which counts while a listing is open, and rests at `clean_to_close` otherwise) or its
missed state changes, and on every
answer of a list planned per pair (a daily cap); what a run found per list goes in one row
per list (`ListSweep`) when the run is complete. `last_answered()` puts the two together.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from reputation.alerts import events
from reputation.blocklists import dnsbl
from reputation.blocklists.sweep import Result, SweepOutcome
from reputation.models import (
    AddressCheck,
    Blocklist,
    BlocklistEvent,
    CheckRun,
    ChunkDone,
    Listing,
    ListSweep,
    QueryUsage,
    SweepLease,
)
from routing import engine
from routing.models import PoolAddress

NONE, OPEN, CLOSE, UPDATE = "none", "open", "close", "update"
MIN_FRESH, MAX_FRESH = 60, 86400  # bounds on how long an answer's TTL defers a re-check
LEASE = dt.timedelta(minutes=15)  # a run that applied no chunk for this long lets its lists go


@dataclass(frozen=True)
class PairState:
    listed: bool  # a listing is open
    clean_streak: int = 0


def transition(
    state: PairState, verdict: dnsbl.Verdict, clean_to_close: int
) -> tuple[PairState, str]:
    """The next state of one (address, list) pair and the action on its listing."""
    if verdict.status == dnsbl.LISTED:
        return PairState(True, 0), UPDATE if state.listed else OPEN
    if verdict.status != dnsbl.CLEAN:
        return state, NONE  # unknown is never a delisting, nor a listing
    streak = state.clean_streak + 1
    if state.listed and streak >= max(clean_to_close, 1):
        return PairState(False, streak), CLOSE
    return PairState(state.listed, streak), NONE


def apply_chunk(
    run: CheckRun,
    index: int,
    outcome: SweepOutcome,
    pools: dict[str, str],
    *,
    per_pair: Iterable[str] = (),
) -> bool:
    """Apply one chunk's outcome; False if that chunk was applied already (a retry).

    `pools` maps each target to its pool's name; `per_pair` names the lists whose every
    answer is written (they are planned per pair).
    """
    with transaction.atomic():
        try:
            with transaction.atomic():
                ChunkDone.objects.create(run=run, index=index)
        except IntegrityError:
            return False
        lists = {b.zone: b for b in Blocklist.objects.filter(zone__in=_zones(outcome))}
        trusted = [r for r in outcome.trusted() if r.zone in lists]
        now = timezone.now()
        _apply_results(run, trusted, lists, pools, set(per_pair), now)
        _count(run, outcome, now)
        refresh_rotation(pools)
    return True


def _zones(outcome: SweepOutcome) -> list[str]:
    return sorted({r.zone for r in outcome.results} | set(outcome.misbehaving))


def mark_self_tests(outcome: SweepOutcome, blocklists: Iterable[Blocklist]) -> None:
    """Record which lists misbehave now; an event on each change."""
    for blocklist in blocklists:
        why = outcome.misbehaving.get(blocklist.zone, "")
        if blocklist.misbehaving == bool(why) and blocklist.misbehaving_reason == why:
            continue
        kind = BlocklistEvent.Kind.MISBEHAVING if why else BlocklistEvent.Kind.RECOVERED
        if blocklist.misbehaving != bool(why):
            BlocklistEvent.objects.create(kind=kind, blocklist=blocklist, detail=why[:500])
        blocklist.misbehaving, blocklist.misbehaving_reason = bool(why), why[:300]
        blocklist.save(update_fields=["misbehaving", "misbehaving_reason"])


# Plain columns only (no JSON or date to convert): a chunk reads one row per pair it asked.
CHECK_FIELDS = ("pk", "address", "blocklist_id", "status", "clean_streak", "missed_run")


def _apply_results(
    run: CheckRun,
    results: list[Result],
    lists: dict[str, Blocklist],
    pools: dict[str, str],
    per_pair: set[str],
    now: dt.datetime,
) -> None:
    ids = [b.pk for b in lists.values()]
    targets = {r.target for r in results}
    found = AddressCheck.objects.filter(address__in=targets, blocklist__in=ids)
    rows = {(row[1], row[2]): row for row in found.values_list(*CHECK_FIELDS)}
    listed_rows = [row[0] for row in rows.values() if row[3] == dnsbl.LISTED]
    stored_codes = dict(
        AddressCheck.objects.filter(pk__in=listed_rows).values_list("pk", "codes")
        if listed_rows
        else ()
    )
    listed = Listing.objects.filter(address__in=targets, blocklist__in=ids, closed__isnull=True)
    open_listings = {(item.address, item.blocklist_id): item for item in listed}
    new, changed, missed = [], [], []
    tops = {zone: max(b.clean_to_close, 1) for zone, b in lists.items()}
    for result in results:
        blocklist = lists[result.zone]
        key = (result.target, blocklist.pk)
        listing, row = open_listings.get(key), rows.get(key)
        if (
            row is not None  # the common case: clean again, nothing to write or do
            and result.verdict.status == dnsbl.CLEAN
            and listing is None
            and row[3] == dnsbl.CLEAN
            and row[4] == tops[result.zone]
            and row[5] is None
            and result.zone not in per_pair
        ):
            continue
        state = PairState(listing is not None, row[4] if row else 0)
        state, action = transition(state, result.verdict, blocklist.clean_to_close)
        _act(action, run, result, blocklist, listing, pools, now)
        verdict = result.verdict
        if verdict.status == dnsbl.UNKNOWN:
            if row is not None:
                missed.append((row, pools.get(result.target, "")))
            continue
        # The streak counts only while a listing is open; otherwise it rests at the top.
        top = tops[result.zone]
        streak = min(state.clean_streak, top) if state.listed else top
        codes = list(verdict.codes)
        if row is None:
            new.append(
                AddressCheck(
                    address=result.target,
                    blocklist=blocklist,
                    status=verdict.status,
                    codes=codes,
                    clean_streak=streak,
                    checked=now,
                    fresh_until=_fresh_until(verdict, now),
                )
            )
        elif (
            (row[3], row[4], row[5]) != (verdict.status, streak, None)
            or result.zone in per_pair
            or stored_codes.get(row[0], []) != codes
        ):
            changed.append(
                AddressCheck(
                    pk=row[0],
                    status=verdict.status,
                    codes=codes,
                    clean_streak=streak,
                    checked=now,
                    fresh_until=_fresh_until(verdict, now),
                    missed_run=None,
                )
            )
    AddressCheck.objects.bulk_create(new, batch_size=2000)
    AddressCheck.objects.bulk_update(
        changed,
        ["status", "codes", "clean_streak", "checked", "fresh_until", "missed_run"],
        batch_size=500,
    )
    _missed(run, missed)


def _missed(run: CheckRun, missed: list[tuple[tuple, str]]) -> None:
    """Pairs with a trusted answer before and none in this run: `checked` keeps when they
    were last answered, `missed_run` says that this run's sweep of the list does not count."""
    answered = Answered()
    checked = dict(
        AddressCheck.objects.filter(pk__in=[row[0] for row, _ in missed]).values_list(
            "pk", "checked"
        )
    )
    rows = [
        AddressCheck(
            pk=row[0], checked=answered(row[2], pool, checked[row[0]], row[5]), missed_run=run.pk
        )
        for row, pool in missed
    ]
    AddressCheck.objects.bulk_update(rows, ["checked", "missed_run"], batch_size=500)


class Answered:
    """When a pair was last answered: the later of its own `checked` and the list's last
    complete sweep of the pair's pool (or of every pool) after the pair's `missed_run`.
    Remembers each list's last sweep per pool."""

    def __init__(self) -> None:
        self.last: dict[tuple[int, str], tuple[int, dt.datetime] | None] = {}

    def __call__(
        self, blocklist_id: int, pool: str, checked: dt.datetime, missed_run: int | None
    ) -> dt.datetime:
        key = (blocklist_id, pool)
        if key not in self.last:
            sweeps = ListSweep.objects.filter(blocklist_id=blocklist_id, pool__in=["", pool])
            self.last[key] = sweeps.order_by("-run_id").values_list("run_id", "checked").first()
        last = self.last[key]
        if last is None or last[0] <= (missed_run or 0):
            return checked
        return max(checked, last[1])


def last_answered(checks: Iterable[AddressCheck], pools: dict[str, str]) -> dict[int, dt.datetime]:
    """When each pair was last answered (see `Answered`), by AddressCheck id; `pools` gives
    each target's pool."""
    answered = Answered()
    return {
        c.pk: answered(c.blocklist_id, pools.get(c.address, ""), c.checked, c.missed_run)
        for c in checks
    }


def _fresh_until(verdict: dnsbl.Verdict, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=_fresh_seconds(verdict.ttl))


def _fresh_seconds(ttl: int) -> int:
    """How long an answer with this TTL defers a re-check."""
    return min(max(ttl, MIN_FRESH), MAX_FRESH)


def _act(
    action: str,
    run: CheckRun,
    result: Result,
    blocklist: Blocklist,
    listing: Listing | None,
    pools: dict[str, str],
    now: dt.datetime,
) -> None:
    verdict = result.verdict
    if action == OPEN:
        Listing.objects.create(
            address=result.target,
            pool=pools.get(result.target, ""),
            blocklist=blocklist,
            codes=list(verdict.codes),
            meanings=list(verdict.meanings),
            reason=verdict.reason,
            opened=now,
            opened_by=run,
        )
        _event(BlocklistEvent.Kind.OPENED, blocklist, result.target, describe(verdict), now)
    elif action == UPDATE and listing is not None:
        reason = verdict.reason if result.reason_known else listing.reason
        wanted = (list(verdict.codes), list(verdict.meanings), reason)
        if (listing.codes, listing.meanings, listing.reason) != wanted:
            listing.codes, listing.meanings, listing.reason = wanted
            listing.save(update_fields=["codes", "meanings", "reason"])
    elif action == CLOSE and listing is not None:
        listing.closed, listing.closed_by = now, run
        listing.save(update_fields=["closed", "closed_by"])
        _event(BlocklistEvent.Kind.CLOSED, blocklist, result.target, "", now)


def _event(kind: str, blocklist: Blocklist, address: str, detail: str, now: dt.datetime) -> None:
    BlocklistEvent.objects.create(
        kind=kind, blocklist=blocklist, address=address, detail=detail[:500], created=now
    )


def describe(verdict: dnsbl.Verdict) -> str:
    """A listing in a line: codes, meanings, reason."""
    text = ", ".join(f"{c} {m}" for c, m in zip(verdict.codes, verdict.meanings, strict=False))
    return f"{text}: {verdict.reason}" if verdict.reason else text


def _count(run: CheckRun, outcome: SweepOutcome, now: dt.datetime) -> None:
    """Add the chunk to its run; the chunk that completes the run writes its ListSweeps and
    releases its lists."""
    counts = outcome.counts()
    CheckRun.objects.filter(pk=run.pk).update(
        chunks_done=F("chunks_done") + 1,
        queries=F("queries") + outcome.queries,
        listed=F("listed") + counts[dnsbl.LISTED],
        clean=F("clean") + counts[dnsbl.CLEAN],
        unknown=F("unknown") + counts[dnsbl.UNKNOWN],
    )
    # JSON fields merge under a row lock, so concurrent chunks lose nothing.
    locked = CheckRun.objects.select_for_update().get(pk=run.pk)
    for zone, kinds in outcome.errors_by_zone().items():
        merged = locked.errors.setdefault(zone, {})
        for kind, number in kinds.items():
            merged[kind] = merged.get(kind, 0) + number
    locked.misbehaving.update(outcome.misbehaving)
    _swept(locked.swept, outcome, now)
    complete = locked.chunks_done >= locked.chunks and locked.finished is None
    if complete:
        locked.finished = timezone.now()
        if not locked.address:  # one address's answers say nothing of the list's others
            _list_sweeps(locked)
    locked.save(update_fields=["errors", "misbehaving", "swept", "finished"])
    if complete:
        release(run)
    else:
        SweepLease.objects.filter(run=run).update(until=now + LEASE)  # renewed
    _use(outcome)


def release(run: CheckRun, blocklists: list[Blocklist] | None = None) -> None:
    """Give up `run`'s lease on these lists (all of them by default)."""
    held = SweepLease.objects.filter(run=run)
    if blocklists is not None:
        held = held.filter(blocklist__in=blocklists)
    held.update(run=None, until=timezone.now())


def _swept(swept: dict, outcome: SweepOutcome, now: dt.datetime) -> None:
    """Per list: the first answer time, the earliest TTL expiry and the answers so far."""
    at = now.timestamp()
    answers = Counter(
        (r.zone, r.verdict.ttl) for r in outcome.trusted() if r.verdict.status != dnsbl.UNKNOWN
    )
    for (zone, ttl), count in answers.items():
        entry = swept.setdefault(zone, {"checked": at, "fresh": math.inf, "answers": 0})
        entry["checked"] = min(entry["checked"], at)
        entry["fresh"] = min(entry["fresh"], at + _fresh_seconds(ttl))
        entry["answers"] += count


def _list_sweeps(run: CheckRun) -> None:
    lists = dict(Blocklist.objects.filter(zone__in=list(run.swept)).values_list("zone", "pk"))
    moment = dt.datetime.fromtimestamp
    ListSweep.objects.bulk_create(
        [
            ListSweep(
                run=run,
                blocklist_id=lists[zone],
                pool=run.pool,
                checked=moment(entry["checked"], dt.UTC),
                fresh_until=moment(entry["fresh"], dt.UTC),
                answers=entry["answers"],
            )
            for zone, entry in run.swept.items()
            if zone in lists
        ],
        ignore_conflicts=True,
    )


def forget_sweeps(*, before: dt.datetime) -> int:
    """Delete list sweeps older than `before`, except the latest of each list and pool."""
    latest = ListSweep.objects.values("blocklist", "pool").annotate(last=Max("run_id"))
    return sum(
        ListSweep.objects.filter(
            blocklist=row["blocklist"], pool=row["pool"], run_id__lt=row["last"], checked__lt=before
        ).delete()[0]
        for row in latest
    )


def count_queries(run: CheckRun, outcome: SweepOutcome) -> None:
    """Queries sent outside a chunk (the run's self-test): on the run and the daily caps."""
    CheckRun.objects.filter(pk=run.pk).update(queries=F("queries") + outcome.queries)
    _use(outcome)


def _use(outcome: SweepOutcome) -> None:
    """Count every datagram sent to each list (self-tests, TXT, retries) against its cap."""
    today = timezone.localdate()
    ids = dict(
        Blocklist.objects.filter(zone__in=list(outcome.queries_by_zone)).values_list("zone", "pk")
    )
    for zone, queries in outcome.queries_by_zone.items():
        if zone not in ids:
            continue
        usage = QueryUsage.objects.filter(blocklist_id=ids[zone], day=today)
        if usage.update(queries=F("queries") + queries):
            continue
        try:
            with transaction.atomic():
                QueryUsage.objects.create(blocklist_id=ids[zone], day=today, queries=queries)
        except IntegrityError:  # another chunk created it meanwhile
            usage.update(queries=F("queries") + queries)


def refresh_rotation(targets: Iterable[str] | None = None, *, pool: str = "") -> int:
    """Set `listed` on the given addresses (every pool address, or those of `pool`, when
    None): open listing on an enabled major list, in a pool that takes listed addresses out.
    Returns how many addresses changed."""
    rows = PoolAddress.objects.all()
    major = Listing.objects.filter(
        closed__isnull=True, blocklist__weight=Blocklist.Weight.MAJOR, blocklist__enabled=True
    ).select_related("blocklist")  # few: open listings on major lists
    if targets is not None:
        # Targets also hold HELO names: an address column can't compare those.
        addresses = [t for t in targets if dnsbl.ip_or_none(t)]
        rows, major = rows.filter(address__in=addresses), major.filter(address__in=addresses)
    elif pool:
        rows = rows.filter(pool__name=pool)
    listings: dict[str, list[Listing]] = {}
    for listing in major:
        listings.setdefault(listing.address, []).append(listing)
    rows = rows.values_list("pk", "address", "listed", "listed_reason", "pool__take_listed_out")
    wanted = {}
    for pk, address, listed, listed_reason, take_out in rows:
        found = listings.get(address, []) if take_out else []
        reason = "; ".join(f"{x.blocklist.zone} {', '.join(x.codes)}" for x in found)[:300]
        if (listed, listed_reason) != (bool(found), reason):
            wanted[pk] = (bool(found), reason)
    changed = list(PoolAddress.objects.filter(pk__in=list(wanted)).select_related("pool"))
    for address in changed:
        address.listed, address.listed_reason = wanted[address.pk]
    PoolAddress.objects.bulk_update(changed, ["listed", "listed_reason"])
    events.rotation_changed(changed)
    if changed:
        _routing_changed()
    return len(changed)


def _routing_changed() -> None:
    engine.invalidate_policy()
