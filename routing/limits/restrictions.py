"""Restricted senders as rows: written when the counters flush (never on the mail path), each
new one an alert event and an audit entry; released by an operator with a note.

`Notes` is what a process has seen of limited senders since its last flush: per hold, the
messages rejected and samples of the last messages; `write()` adds them to the
`SenderRestriction` rows (created here when the store is Redis) and `SenderRejectedCount`.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.db import transaction
from django.db.models import F

from routing.facts import REJECT, Decision, LimitHit, MessageFacts
from routing.limits import rules
from routing.limits.store import Hold, Unavailable, default_store
from routing.models import SenderRestriction, SettingChange

logger = logging.getLogger(__name__)
SAMPLES = 10  # the last messages kept per restriction
SYSTEM = "poolwarden (sender limits)"  # the audit's username for what the limits did


@dataclass
class Note:
    hit: LimitHit
    rejected: int = 0
    samples: list[dict] = field(default_factory=list)


@dataclass
class Notes:
    holds: dict[tuple[str, str], Note] = field(default_factory=dict)  # (sender, since)
    rejected: Counter[tuple] = field(default_factory=Counter)  # (hour, sender, limit)

    def keys(self) -> int:
        return len(self.holds) + len(self.rejected)

    def add(self, other: Notes) -> None:
        for key, note in other.holds.items():
            mine = self.holds.setdefault(key, Note(note.hit))
            mine.rejected += note.rejected
            mine.samples = (mine.samples + note.samples)[-SAMPLES:]
        self.rejected.update(other.rejected)

    def record(self, facts: MessageFacts, decision: Decision, now: datetime) -> None:
        hit = decision.limit
        if hit is None:
            return
        note = self.holds.setdefault((hit.sender, hit.since), Note(hit))
        rejected = decision.action == REJECT
        if rejected:
            note.rejected += 1
            self.rejected[
                (now.replace(minute=0, second=0, microsecond=0), hit.sender, hit.name)
            ] += 1
        sample = {
            "at": now.isoformat(timespec="seconds"),
            "rcpt_to": list(facts.rcpt_to[:3]),
            "subject": facts.subject[:200],
            "action": decision.action if rejected else decision.pool_kind,
        }
        note.samples = [*note.samples[-(SAMPLES - 1) :], sample]


def hold_of(hit: LimitHit) -> Hold:
    return Hold(
        sender=hit.sender,
        limit=hit.name,
        action=hit.action,
        count=hit.count,
        maximum=hit.maximum,
        window=hit.window,
        since=datetime.fromisoformat(hit.since),
        until=datetime.fromisoformat(hit.until) if hit.until else None,
    )


def write(notes: Notes) -> None:
    """Add `notes` to the restriction rows (creating, alerting and auditing new ones) and to
    the rejected counts. Runs inside the counters' flush transaction."""
    from routing.counters import upsert

    for note in notes.holds.values():
        row, _ = SenderRestriction.start(hold_of(note.hit))
        restricted(row)
        SenderRestriction.objects.filter(pk=row.pk).update(
            rejected=F("rejected") + note.rejected,
        )
        row.refresh_from_db(fields=["samples"])
        row.samples = (row.samples + note.samples)[-SAMPLES:]
        row.save(update_fields=["samples"])
    # "limit" is an SQL keyword: quoted (SQLite and PostgreSQL alike).
    upsert("routing_senderrejectedcount", ("hour", "sender", '"limit"'), notes.rejected)


def restricted(row: SenderRestriction) -> None:
    """The event and audit entry of a new restriction (once: the event's source is unique)."""
    from reputation.alerts.events import SENDER_RESTRICTED

    until = f"until {row.until:%Y-%m-%d %H:%M} UTC" if row.until else "until released"
    what = {
        rules.ALERT: "reached",
        rules.HIGH_RISK: "moved to the high-risk pool",
        rules.BLOCK_TODAY: "blocked",
        rules.BLOCK: "blocked",
    }[row.action]
    subject = f"Sender {row.sender} {what}: {row.count} of {row.maximum} {row.limit} ({until})"
    if event(SENDER_RESTRICTED, f"sender-restricted:{row.pk}", row, subject[:300]):
        audit(row, username=SYSTEM, old="", new=f"{row.action} ({row.limit} {row.count})")


def event(kind: str, source: str, row: SenderRestriction, subject: str, **data) -> bool:
    """Store an alert event; False when one with `source` exists already."""
    from reputation.models.alerts import Event, Severity

    severity = Severity.WARNING if row.action == rules.ALERT else Severity.CRITICAL
    details = {
        "sender": row.sender,
        "limit": row.limit,
        "action": row.action,
        "count": row.count,
        "maximum": row.maximum,
        "window": row.window,
        "restriction_id": row.pk,
        **data,
    }
    _, created = Event.objects.get_or_create(
        source=source,
        defaults={"kind": kind, "severity": severity, "subject": subject, "data": details},
    )
    return created


def audit(row: SenderRestriction, *, username: str, old: str, new: str, user=None) -> None:
    SettingChange.objects.create(
        user=user if user is not None and user.is_authenticated else None,
        username=username[:150],
        action=SettingChange.Action.CHANGED,
        model=row._meta.label_lower,
        object_id=str(row.pk),
        object_repr=str(row)[:200],
        field="restriction",
        old=old,
        new=new,
    )


class NotRestricted(LookupError):
    """The sender has no restriction in force."""


def release(*, sender: str, note: str = "", user=None, username: str = "", store=None) -> int:
    """End every restriction in force of `sender` (and empty its windows, so its mail flows
    at once); an event and an audit entry each. Returns how many were released; raises
    NotRestricted when there is none, Unavailable when the store cannot be reached (nothing
    is changed then)."""
    from reputation.alerts.events import SENDER_RELEASED

    now = datetime.now(UTC)
    sender = sender.strip().lower()
    rows = list(SenderRestriction.objects.active(now).filter(sender=sender))
    if not rows:
        raise NotRestricted(f"{sender} has no restriction in force")
    (store or default_store()).release(sender)
    who = username or (user.get_username() if user is not None else "") or "command line"
    with transaction.atomic():
        for row in rows:
            row.released, row.released_by, row.release_note = now, who[:150], note
            row.save(update_fields=["released", "released_by", "release_note"])
            subject = f"Sender {row.sender} released by {who}" + (f": {note}" if note else "")
            event(SENDER_RELEASED, f"sender-released:{row.pk}", row, subject[:300], note=note)
            audit(row, username=who, user=user, old=row.action, new=f"released: {note}"[:500])
    return len(rows)


def senders(*, restricted_only: bool = False, near: float = 0.8, store=None) -> list[dict]:
    """Senders near (`near` of a maximum) or over a limit, and every restriction in force:
    one dict each, restricted first, then by how close to a limit."""
    from routing.engine import get_engine

    now = datetime.now(UTC)
    policy = get_engine(flush_in_background=False).snapshots.get().limits
    found: dict[str, dict] = {}
    for row in SenderRestriction.objects.active(now):
        found.setdefault(row.sender, listed(row.sender))["restrictions"].append(as_json(row))
    if not restricted_only:
        try:
            counts = (store or default_store()).counts(now)
        except Unavailable as exc:
            counts = {}
            logger.warning("senders: the limit store cannot be reached: %s", exc)
        for sender, windows in counts.items():
            rule = policy.rule_for(sender)
            usage = windows_of(rule, windows)
            if sender in found or any(u["ratio"] >= near for u in usage):
                found.setdefault(sender, listed(sender))["usage"] = usage
    ranked = sorted(
        found.values(),
        key=lambda s: (not s["restrictions"], -max((u["ratio"] for u in s["usage"]), default=0)),
    )
    return ranked


def listed(sender: str) -> dict:
    return {"sender": sender, "restrictions": [], "usage": []}


def windows_of(rule, windows: dict[str, int]) -> list[dict]:
    usage = []
    for name, count in sorted(windows.items()):
        maximum = rule.maximum(name) if rule is not None else None
        ratio = count / maximum if maximum else 0.0
        usage.append({"limit": name, "count": count, "maximum": maximum, "ratio": round(ratio, 3)})
    return usage


def as_json(row: SenderRestriction) -> dict:
    return {
        "id": row.pk,
        "sender": row.sender,
        "limit": {
            "name": row.limit,
            "count": row.count,
            "window": row.window,
            "maximum": row.maximum,
        },
        "action": row.action,
        "since": row.since.isoformat(timespec="seconds"),
        "until": row.until.isoformat(timespec="seconds") if row.until else None,
        "rejected": row.rejected,
        "samples": row.samples,
    }
