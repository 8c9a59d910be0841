"""Listing history and rotation: what a sweep's trusted answers change.

`transition()` is the rule, on plain data: a listing opens on the first listed answer and
closes after `clean_to_close` consecutive clean answers; an unknown answer changes nothing.
`apply_chunk()` applies one chunk of a run's outcome to the database exactly once (a retried
chunk finds its `ChunkDone` row and does nothing), and `refresh_rotation()` takes addresses of
pools that want it out of rotation while a major list lists them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import F
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
    QueryUsage,
)
from routing import engine
from routing.models import PoolAddress

NONE, OPEN, CLOSE, UPDATE = "none", "open", "close", "update"
MIN_FRESH, MAX_FRESH = 60, 86400  # bounds on how long an answer's TTL defers a re-check


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


def apply_chunk(run: CheckRun, index: int, outcome: SweepOutcome, pools: dict[str, str]) -> bool:
    """Apply one chunk's outcome; False if that chunk was applied already (a retry).

    `pools` maps each address to its pool's name.
    """
    with transaction.atomic():
        try:
            with transaction.atomic():
                ChunkDone.objects.create(run=run, index=index)
        except IntegrityError:
            return False
        lists = {b.zone: b for b in Blocklist.objects.all()}
        mark_self_tests(outcome, [lists[z] for z in _zones(outcome) if z in lists])
        trusted = [r for r in outcome.trusted() if r.zone in lists]
        _apply_results(run, trusted, lists, pools)
        _count(run, outcome)
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


def _apply_results(
    run: CheckRun, results: list[Result], lists: dict[str, Blocklist], pools: dict[str, str]
) -> None:
    addresses = {r.target for r in results}
    checks = {
        (c.address, c.blocklist_id): c for c in AddressCheck.objects.filter(address__in=addresses)
    }
    open_listings = {
        (item.address, item.blocklist_id): item
        for item in Listing.objects.filter(address__in=addresses, closed__isnull=True)
    }
    now = timezone.now()
    new_checks, changed_checks = [], []
    for result in results:
        blocklist = lists[result.zone]
        key = (result.target, blocklist.pk)
        listing = open_listings.get(key)
        check = checks.get(key)
        state = PairState(listing is not None, check.clean_streak if check else 0)
        state, action = transition(state, result.verdict, blocklist.clean_to_close)
        _act(action, run, result, blocklist, listing, pools, now)
        if result.verdict.status == dnsbl.UNKNOWN:
            continue
        if check is None:
            new_checks.append(_new_check(result, blocklist, state, now))
        else:
            _update_check(check, result, state, now)
            changed_checks.append(check)
    AddressCheck.objects.bulk_create(new_checks)
    AddressCheck.objects.bulk_update(
        changed_checks, ["status", "codes", "clean_streak", "checked", "fresh_until"]
    )


def _fresh_until(verdict: dnsbl.Verdict, now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=min(max(verdict.ttl, MIN_FRESH), MAX_FRESH))


def _new_check(
    result: Result, blocklist: Blocklist, state: PairState, now: dt.datetime
) -> AddressCheck:
    return AddressCheck(
        address=result.target,
        blocklist=blocklist,
        status=result.verdict.status,
        codes=list(result.verdict.codes),
        clean_streak=state.clean_streak,
        checked=now,
        fresh_until=_fresh_until(result.verdict, now),
    )


def _update_check(check: AddressCheck, result: Result, state: PairState, now: dt.datetime) -> None:
    check.status, check.codes = result.verdict.status, list(result.verdict.codes)
    check.clean_streak, check.checked = state.clean_streak, now
    check.fresh_until = _fresh_until(result.verdict, now)


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
        wanted = (list(verdict.codes), list(verdict.meanings), verdict.reason)
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


def _count(run: CheckRun, outcome: SweepOutcome) -> None:
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
    if locked.chunks_done >= locked.chunks and locked.finished is None:
        locked.finished = timezone.now()
    locked.save(update_fields=["errors", "misbehaving", "finished"])
    _use(outcome)


def _use(outcome: SweepOutcome) -> None:
    """Count every datagram sent to each list (self-tests, TXT, retries) against its cap."""
    per_zone = outcome.queries_by_zone
    today = timezone.localdate()
    for blocklist in Blocklist.objects.filter(zone__in=per_zone):
        usage, _ = QueryUsage.objects.get_or_create(blocklist=blocklist, day=today)
        QueryUsage.objects.filter(pk=usage.pk).update(
            queries=F("queries") + per_zone[blocklist.zone]
        )


def refresh_rotation(pools: dict[str, str]) -> int:
    """Set `listed` on the given addresses: open listing on an enabled major list, in a pool
    that takes listed addresses out. Returns how many addresses changed."""
    listings: dict[str, list[Listing]] = {}
    major = Listing.objects.filter(
        address__in=list(pools),
        closed__isnull=True,
        blocklist__weight=Blocklist.Weight.MAJOR,
        blocklist__enabled=True,
    ).select_related("blocklist")
    for listing in major:
        listings.setdefault(listing.address, []).append(listing)
    changed = []
    # Targets also hold HELO names (for domain lists): an address column can't compare those.
    addresses = [target for target in pools if dnsbl.ip_or_none(target)]
    for address in PoolAddress.objects.filter(address__in=addresses).select_related("pool"):
        found = listings.get(address.address, []) if address.pool.take_listed_out else []
        reason = "; ".join(f"{x.blocklist.zone} {', '.join(x.codes)}" for x in found)[:300]
        if (address.listed, address.listed_reason) != (bool(found), reason):
            address.listed, address.listed_reason = bool(found), reason
            changed.append(address)
    PoolAddress.objects.bulk_update(changed, ["listed", "listed_reason"])
    events.rotation_changed(changed)
    if changed:
        _routing_changed()
    return len(changed)


def _routing_changed() -> None:
    engine.invalidate_policy()
