"""Postfix delivery attempts read from its log, on plain text.

One `smtp` delivery attempt is one log line:

    Dec  2 14:00:01 mx1 postfix/pw-192-0-2-5/smtp[4242]: 3F2A1C0D5: to=<bob@example.org>,
        relay=mx.example.org[203.0.113.9]:25, delay=1.2, delays=0.1/0/0.5/0.6, dsn=4.7.0,
        status=deferred (host mx.example.org[203.0.113.9] said: 421 4.7.0 Try again later
        (in reply to end of DATA command))

(one line in the log). The classic syslog timestamp (`Dec  2 14:00:01`, no year, local time)
and RFC 3339 (`2026-12-02T14:00:01.123456+01:00`, from rsyslog's high-precision template or
Postfix's `maillog_file` with `maillog_file_rfc3339 = yes`) are both read.

**Attribution.** `postfix_config` gives each pool address its own transport, logging under
`syslog_name=postfix/pw-<address with dashes>` (routing/mta/postfix.py), so the program name of
the line names the source address: no queue-ID bookkeeping. Attempts by any other transport are
*unattributed* (address "").
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from functools import lru_cache

MONTHS = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
    "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}  # fmt: skip
_CLASSIC = re.compile(
    r"(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d)(?:\.\d+)? (?P<host>\S+) "
)
_RFC3339 = re.compile(
    r"(?P<stamp>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d)) (?P<host>\S+) "
)
_PROGRAM = re.compile(r"(?P<program>[\w./-]+)/(?P<service>smtp|lmtp)\[\d+\]: (?P<rest>.*)")
_DELIVERY = re.compile(
    r"(?P<queue>[0-9A-Za-z]+): to=<(?P<to>[^>]*)>,(?: orig_to=<[^>]*>,)? relay=(?P<relay>[^,]*),"
    r".*? dsn=(?P<dsn>\d\.\d{1,3}\.\d{1,3}), status=(?P<status>\w+)(?: \((?P<text>.*)\))?\s*$"
)
_RELAY = re.compile(r"(?P<host>[^\[\s]+)(?:\[(?P<ip>[^\]]*)\])?(?::\d+)?")
TRANSPORT_PREFIX = "pw-"


@dataclass(frozen=True)
class Attempt:
    """One delivery attempt as the log gives it."""

    at: datetime  # UTC
    address: str  # the source address, from the transport's syslog name; "" unattributed
    queue_id: str
    recipient_domain: str
    relay_host: str  # the receiving MX host name ("none" when no connection was made)
    relay_ip: str
    dsn: str  # "4.7.0"
    status: str  # sent, deferred, bounced, expired, ...
    text: str  # what Postfix wrote in parentheses: the reply, or why no reply

    @property
    def reply(self) -> str:
        """The receiver's reply when it answered ("421 4.7.0 Try again later"), else the text."""
        said = re.search(r"\bsaid: (.*?)(?: \(in reply to [^)]*\))?$", self.text)
        return said.group(1) if said else self.text


@lru_cache(maxsize=8192)
def address_of(program: str) -> str:
    """The source address a `postfix/pw-…` program name stands for ("" if none)."""
    name = program.rsplit("/", 1)[-1]
    if not name.startswith(TRANSPORT_PREFIX):
        return ""
    body = name[len(TRANSPORT_PREFIX) :]
    parts = body.split("-")
    candidates = [".".join(parts)] if len(parts) == 4 else []
    candidates.append(body.replace("-", ":"))
    for candidate in candidates:
        try:
            return ipaddress.ip_address(candidate).compressed
        except ValueError:
            continue
    return ""


def parse(line: str, *, now: datetime | None = None, zone: tzinfo = UTC) -> Attempt | None:
    """The delivery attempt on `line`, or None for any other line (never raises). Classic
    timestamps have no year: the year that puts the line not after `now` (+1 day) is taken,
    in `zone` (the host's local time)."""
    try:
        return _parse(line, now or datetime.now(UTC), zone)
    except (ValueError, KeyError, OverflowError):
        return None


def _parse(line: str, now: datetime, zone: tzinfo) -> Attempt | None:
    if "status=" not in line or " to=<" not in line:
        return None
    head = _RFC3339.match(line)
    if head:
        at = datetime.fromisoformat(head["stamp"].replace("Z", "+00:00")).astimezone(UTC)
    else:
        head = _CLASSIC.match(line)
        if not head:
            return None
        at = _classic_time(head, now, zone)
    program = _PROGRAM.match(line, head.end())
    if not program:
        return None
    delivery = _DELIVERY.match(program["rest"])
    if not delivery:
        return None
    relay = _RELAY.match(delivery["relay"].strip()) if delivery["relay"].strip() else None
    return Attempt(
        at=at,
        address=address_of(program["program"]),
        queue_id=delivery["queue"],
        recipient_domain=delivery["to"].rpartition("@")[2].lower()[:255],
        relay_host=(relay["host"] if relay else "").lower().rstrip(".")[:255],
        relay_ip=(relay["ip"] or "") if relay else "",
        dsn=delivery["dsn"],
        status=delivery["status"],
        text=(delivery["text"] or "")[:1000],
    )


def _classic_time(head: re.Match, now: datetime, zone: tzinfo) -> datetime:
    local_now = now.astimezone(zone)
    return _stamp(
        head["mon"], int(head["day"]), head["time"], local_now.year, local_now.date(), zone
    )


@lru_cache(maxsize=4096)
def _stamp(mon: str, day: int, clock: str, year: int, today, zone: tzinfo) -> datetime:
    """A classic timestamp in UTC (cached: a busy log repeats each second many times)."""
    hour, minute, second = (int(x) for x in clock.split(":"))
    month = MONTHS[mon]
    at = datetime(year, month, day, hour, minute, second, tzinfo=zone)
    if at.date() > today + timedelta(days=1):  # December's lines read in January
        at = at.replace(year=year - 1)
    return at.astimezone(UTC)
