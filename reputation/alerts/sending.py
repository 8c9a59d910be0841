"""Sending alerts: events become one notification per interested channel, and each channel's
due notifications are claimed by one worker and sent as one message (a digest).

`run_once()` is one step of the loop (the `reputation.send_alerts` task and the
`send_alerts` command call it): collect events, queue notifications, deliver. Claims are
conditional UPDATEs with a lease, so two workers never send the same notification, and a
worker that dies mid-send leaves a claim that expires. A temporary failure is retried with
exponential backoff; a permanent one disables the channel and keeps its notifications as
failed until an admin re-enables it.

A disabled channel's notifications are queued as held; when it is enabled again, the
MISSED_MAX most recent of the last MISSED_WINDOW go out (one digest) and the others are
counted in one summary alert in the same message.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.html import escape

from reputation.alerts import events as event_source
from reputation.alerts import transports
from reputation.alerts.transports import Message, TransportError
from reputation.models.alerts import SEVERITY_RANK, Channel, Event, Notification

log = logging.getLogger(__name__)
LEASE = dt.timedelta(minutes=5)
RENEW_EVERY = LEASE / 5  # while a send runs, its claim is pushed a whole LEASE ahead this often
FIRST_RETRY, MAX_RETRY = 60, 3600  # seconds of backoff: 1 min doubling up to 1 h
PENDING, SENT, FAILED = (
    Notification.Status.PENDING,
    Notification.Status.SENT,
    Notification.Status.FAILED,
)
HELD, SUMMARISED = Notification.Status.HELD, Notification.Status.SUMMARISED
MISSED_MAX = 50  # alerts held while a channel was disabled and then sent one by one
MISSED_WINDOW = dt.timedelta(hours=24)  # ... if raised this long before it was enabled


@dataclass
class RunReport:
    events: int = 0
    queued: int = 0
    sent: list[int] = field(default_factory=list)  # notification ids
    failed: list[str] = field(default_factory=list)  # "channel: error"


def run_once(*, worker: str, now: dt.datetime | None = None) -> RunReport:
    """Collect new events, queue their notifications, send every channel's due ones."""
    now = now or timezone.now()
    report = RunReport(events=event_source.collect(now))
    report.queued = fan_out(now) + release_held(now)
    for channel in channels_due(now):
        claimed = claim(channel, worker=worker, now=now)
        if claimed:
            send_batch(channel, claimed, now, report)
    return report


# --- queueing ---------------------------------------------------------------------------------


@transaction.atomic
def fan_out(now: dt.datetime) -> int:
    """Queue one notification per unprocessed event and interested channel (held for a
    disabled channel); returns how many."""
    events = list(Event.objects.select_for_update().filter(processed__isnull=True))
    if not events:
        return 0
    channels = list(Channel.objects.all())
    queued = [
        Notification(
            event=event,
            channel=channel,
            status=HELD if channel.disabled else PENDING,
            next_attempt=now + dt.timedelta(seconds=channel.digest_seconds),
            created=now,
        )
        for event in events
        if not event.suppressed
        for channel in channels
        if channel.wants(event)
    ]
    Notification.objects.bulk_create(queued, ignore_conflicts=True)
    Event.objects.filter(pk__in=[e.pk for e in events]).update(processed=now)
    return len(queued)


def release_held(now: dt.datetime) -> int:
    """Queue what enabled channels missed while they were disabled; returns how many."""
    held = Notification.objects.filter(status=HELD).values("channel")
    return sum(release(c, now) for c in Channel.objects.filter(disabled=False, pk__in=held))


@transaction.atomic
def release(channel: Channel, now: dt.datetime) -> int:
    """Queue the channel's held notifications: the MISSED_MAX most recent of the last
    MISSED_WINDOW, and one summary alert counting the others; returns how many."""
    held = Notification.objects.select_for_update().filter(channel=channel, status=HELD)
    rows = list(held.select_related("event").order_by("-event__created", "-event_id"))
    recent = [n for n in rows if n.event.created >= now - MISSED_WINDOW][:MISSED_MAX]
    older = [n for n in rows if n not in recent]
    queue = {"status": PENDING, "next_attempt": now, "claimed_until": None}
    Notification.objects.filter(pk__in=[n.pk for n in recent]).update(**queue)
    if not older:
        return len(recent)
    Notification.objects.filter(pk__in=[n.pk for n in older]).update(status=SUMMARISED)
    summary = missed_summary(channel, [n.event for n in older], now)
    Notification.objects.get_or_create(
        event=summary, channel=channel, defaults={"next_attempt": now, "created": now}
    )
    return len(recent) + 1


def missed_summary(channel: Channel, missed: list[Event], now: dt.datetime) -> Event:
    """One event counting the alerts a channel missed while disabled (for that channel only:
    it is born processed)."""
    worst = max((e.severity for e in missed), key=SEVERITY_RANK.__getitem__)
    kinds = Counter(e.get_kind_display().lower() for e in missed)
    first, last = min(e.created for e in missed), max(e.created for e in missed)
    event, _ = Event.objects.get_or_create(
        source=f"missed:{channel.pk}:{min(e.pk for e in missed)}-{max(e.pk for e in missed)}",
        defaults={
            "kind": Event.Kind.MISSED,
            "severity": worst,
            "subject": f"{len(missed)} older alerts missed while {channel.name} was disabled",
            "data": {
                "detail": ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()),
                "reason": f"Raised from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M %Z}, "
                f"older than {MISSED_WINDOW.total_seconds() / 3600:g} h or beyond the "
                f"{MISSED_MAX} most recent: see Reputation → Events.",
            },
            "created": now,
            "processed": now,
        },
    )
    return event


def _claimable(channel: Channel, now: dt.datetime):
    return Notification.objects.filter(channel=channel, status=PENDING).filter(
        Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    )


def channels_due(now: dt.datetime) -> list[Channel]:
    """Enabled channels with at least one notification due now."""
    due = Notification.objects.filter(status=PENDING, next_attempt__lte=now)
    return list(Channel.objects.filter(disabled=False, pk__in=due.values("channel")))


def claim(channel: Channel, *, worker: str, now: dt.datetime) -> list[Notification]:
    """Claim the channel's pending notifications (the due ones and the new ones waiting in the
    digest window) for this worker with one conditional UPDATE; [] if another worker has them."""
    token = f"{worker}:{uuid.uuid4().hex[:12]}"[:100]
    waiting = _claimable(channel, now)
    if not waiting.filter(next_attempt__lte=now).exists():
        return []
    waiting.filter(Q(next_attempt__lte=now) | Q(attempts=0)).update(
        claimed_by=token, claimed_until=now + LEASE
    )
    return list(
        Notification.objects.filter(claimed_by=token, status=PENDING)
        .select_related("event")
        .order_by("event__created", "event_id")
    )


# --- sending ----------------------------------------------------------------------------------


def send_batch(
    channel: Channel, batch: list[Notification], now: dt.datetime, report: RunReport
) -> None:
    """Send the claimed notifications as one message and record the outcome."""
    ids = [n.pk for n in batch]
    claimed = Notification.objects.filter(pk__in=ids, claimed_by=batch[0].claimed_by)
    try:
        to = deliver(channel, render([n.event for n in batch]), claimed, now)
    except TransportError as exc:
        _failed(channel, claimed, exc, now, batch[0].attempts)
        report.failed.append(f"{channel.name}: {exc}")
        return
    claimed.update(
        status=SENT,
        sent=timezone.now(),
        recipients=to[:500],
        attempts=F("attempts") + 1,
        error="",
        claimed_until=None,
    )
    if channel.last_error:
        Channel.objects.filter(pk=channel.pk).update(last_error="")
    report.sent += ids


def deliver(channel: Channel, message: Message, claimed, now: dt.datetime) -> str:
    """Send through the channel's transport in a helper thread while this one renews the claim
    every RENEW_EVERY, so that no other worker takes it while its sender is alive (the
    transport's timeouts bound how long that is). Returns the recipients; raises
    TransportError."""
    transport = transports.for_kind(channel.kind)(channel.config)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-send") as pool:
        sending = pool.submit(transport.notify, message)
        while not wait([sending], timeout=RENEW_EVERY.total_seconds()).done:
            at = now + dt.timedelta(seconds=time.monotonic() - started)
            claimed.filter(status=PENDING).update(claimed_until=at + LEASE)
    return sending.result()


def backoff(attempts: int) -> dt.timedelta:
    """Delay before the next try after `attempts` failed ones (1 min doubling, at most 1 h)."""
    return dt.timedelta(seconds=min(FIRST_RETRY * 2 ** max(attempts - 1, 0), MAX_RETRY))


def _failed(channel: Channel, claimed, exc: TransportError, now: dt.datetime, tried: int) -> None:
    error = str(exc)[:1000]
    log.warning("alert channel %s failed (permanent=%s): %s", channel.name, exc.permanent, error)
    common = {"attempts": F("attempts") + 1, "error": error, "claimed_until": None}
    if exc.permanent:
        claimed.update(status=FAILED, **common)
        Channel.objects.filter(pk=channel.pk).update(disabled=True, last_error=error)
    else:
        claimed.update(next_attempt=now + backoff(tried + 1), **common)
        Channel.objects.filter(pk=channel.pk).update(last_error=error)


def reenable(channel: Channel) -> int:
    """Queue a re-enabled channel's failed notifications again, and what it missed while
    disabled (see `release`); returns how many."""
    now = timezone.now()
    failed = Notification.objects.filter(channel=channel, status=FAILED).update(
        status=PENDING, next_attempt=now, claimed_until=None
    )
    return failed + release(channel, now)


@dataclass(frozen=True)
class TestResult:
    ok: bool
    detail: str  # recipients on success, the error otherwise


def send_test(channel: Channel) -> TestResult:
    """Send a test alert now, whatever the channel's filters; records or clears last_error."""
    event = Event(
        kind=Event.Kind.TEST,
        severity="info",
        source="test",
        subject=f"Test alert for channel {channel.name}",
        data={"reason": "Sent from the admin to check this channel."},
        created=timezone.now(),
    )
    try:
        to = transports.for_kind(channel.kind)(channel.config).notify(render([event]))
    except TransportError as exc:
        Channel.objects.filter(pk=channel.pk).update(last_error=str(exc)[:1000])
        return TestResult(False, str(exc))
    Channel.objects.filter(pk=channel.pk).update(last_error="")
    return TestResult(True, to)


# --- rendering --------------------------------------------------------------------------------


def base_url() -> str:
    return settings.POOLWARDEN_BASE_URL.rstrip("/")


def dashboard_url(event: Event) -> str:
    """The admin page about the event: its listing, its spike, or the event itself."""
    data = event.data or {}
    if data.get("listing_id"):
        return f"{base_url()}/admin/reputation/listing/{data['listing_id']}/change/"
    if data.get("spike_id"):
        return f"{base_url()}/admin/reputation/spike/{data['spike_id']}/change/"
    if event.pk:
        return f"{base_url()}/admin/reputation/event/{event.pk}/change/"
    return f"{base_url()}/admin/"


def as_json(event: Event) -> dict:
    """One event in the webhook schema (docs/alerts.md)."""
    data = event.data or {}
    return {
        "id": event.pk,
        "kind": event.kind,
        "severity": event.severity,
        "subject": event.subject,
        "pool": event.pool,
        "address": event.address,
        "zone": event.zone,
        "codes": data.get("codes", []),
        "meanings": data.get("meanings", []),
        "reason": data.get("reason", ""),
        "delist_url": data.get("delist_url", ""),
        "pool_sent_24h": data.get("pool_sent_24h"),
        "address_sent_24h": data.get("address_sent_24h"),
        "details": data.get("listings", []),
        "dashboard_url": dashboard_url(event),
        "created": event.created.isoformat(),
        "spike": spike_json(event),
    }


SPIKE_FIELDS = ("spike_id", "cause", "confidence", "peak", "baseline", "lead", "series")
SPIKE_FIELDS += (
    "series_count",
    "dimensions",
    "started",
    "ended",
    "summary",
    *event_source.TOP_KEYS,
)


def spike_json(event: Event) -> dict | None:
    """A spike event's incident as structured fields: cause, confidence, peak, baseline, the
    lead series and every series involved, and the evidence's top keys ([key, DSNs] pairs)."""
    if event.kind not in (Event.Kind.SPIKE_OPENED, Event.Kind.SPIKE_CLOSED):
        return None
    data = event.data or {}
    return {key: data[key] for key in SPIKE_FIELDS if key in data}


def render(events: list[Event]) -> Message:
    """One message about the events: plain text, HTML and the webhook events[]."""
    lead = headline(events)
    worst = lead.severity
    title = lead.subject
    if len(events) > 1:
        title += f" and {len(events) - 1} more alert{'s' if len(events) > 2 else ''}"
    subject = f"[Poolwarden {worst.upper()}] {title}"[:250]
    blocks = [_lines(e) for e in events]
    text = "\n\n".join("\n".join(block) for block in blocks) + "\n"
    html = "".join(
        f"<p><strong>{escape(b[0])}</strong><br>" + "<br>".join(escape(x) for x in b[1:]) + "</p>"
        for b in blocks
    )
    return Message(subject, text, html, [as_json(e) for e in events], worst)


def headline(events: list[Event]) -> Event:
    """The event a digest's subject names: the most severe, one with an address and a list
    before one without, the earliest of equals."""
    return max(events, key=lambda e: (SEVERITY_RANK[e.severity], bool(e.zone), bool(e.address)))


def _lines(event: Event) -> list[str]:
    data = event.data or {}
    lines = [
        f"[{event.severity.upper()}] {event.subject}",
        f"when: {event.created:%Y-%m-%d %H:%M:%S %Z}",
    ]
    if event.pool:
        lines.append(f"pool: {event.pool}")
    lines += _listing_lines(data)
    for item in data.get("listings", []):
        lines.append(
            f"- {item['address']} ({item['pool'] or 'no pool'}) on {item['zone']}: {_codes(item)}"
        )
    if event.kind in (Event.Kind.SPIKE_OPENED, Event.Kind.SPIKE_CLOSED):
        lines.append(
            f"peak {data.get('peak')} DSNs in a window, baseline {data.get('baseline')}; "
            f"cause {data.get('cause')} ({data.get('confidence', 0):.0%})"
        )
        lines += [f"  {line}" for line in data.get("summary", [])]
        involved = [
            f"{x.get('dimension')} {x.get('value') or ''}".strip() for x in data.get("series", [])
        ]
        more = data.get("series_count", len(involved)) - min(len(involved), 8)
        if len(involved) > 1:
            lines.append(
                f"series involved: {', '.join(involved[:8])}"
                + (f" and {more} more" if more > 0 else "")
            )
    for key in ("detail", "reason"):
        if data.get(key) and not data.get("codes"):
            lines.append(f"{key}: {data[key]}")
    lines.append(f"details: {dashboard_url(event)}")
    return lines


def _codes(data: dict) -> str:
    pairs = zip(data.get("codes", []), data.get("meanings", []), strict=False)
    return ", ".join(f"{c} {m}".strip() for c, m in pairs) or "-"


def _listing_lines(data: dict) -> list[str]:
    if "codes" not in data or "weight" not in data:
        return []
    lines = [f"return codes: {_codes(data)} ({data['weight']} list)"]
    if data.get("reason"):
        lines.append(f"list's reason: {data['reason']}")
    if data.get("delist_url"):
        lines.append(f"delisting: {data['delist_url']}")
    if data.get("address_sent_24h") is not None:
        lines.append(f"mail sent from this address in the last 24 h: {data['address_sent_24h']}")
    if data.get("pool_sent_24h") is not None:
        lines.append(f"mail sent by its pool in the last 24 h: {data['pool_sent_24h']}")
    return lines
