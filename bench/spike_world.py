"""A synthetic DSN world for bench/spikes.py's accuracy figures: weeks of DSNs from a few dozen
customers with a daily and weekly rhythm and day-to-day noise, with incidents of each cause
injected at several sizes, and the detector replayed over it every 5 minutes.

Poolwarden's own detection code judges the world: `baseline.evaluate` and `season` for every
series, `incidents.group` and `incidents.advance` for incidents, `causes.likely_cause` for the
cause. What this module adds is the world and the evidence it would hold (the DSN rows of a
window, a sample of their recipients, the sources' routed mail), in memory instead of the
database, so that eleven weeks replay in a minute.

The world (5-minute bins; minute 0 is a Monday 00:00):
- customers `c0..c59`, each an MTA `mx.cN.example` for its domain `cN.example`, bouncing
  inbound mail (unknown users, full mailboxes) to remote senders; our relay
  `relay.our.example` bouncing the customers' outbound mail (unknown users, full mailboxes,
  policy blocks, timeouts) back to them;
- office-hours rhythm, weekends at 40%, Mondays 08:00-10:00 at twice a weekday, and
  day-to-day noise (the whole service ±15%, each customer ±30%, log-normal);
- every customer routes mail (about 2% of it high-risk), which the spam-attack rule reads.

Incidents (one at a time, 40-90 minutes, at random times of day and week):
- directory-harvest at one customer (its MTA bounces probes to unknown users of its domain);
- backscatter: forged senders at one victim domain, bounced by five customers;
- spam-attack: a customer's leaked login sends spam (70% of its mail high-risk) and its MTA
  bounces part of it;
- rogue-server: a client never seen before, naming a reporting MTA never seen before;
- blocked-at-receiver: our relay bounces policy rejections ("blocked using
  zen.spamhaus.org") from one big receiver.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from reputation.spikes.baseline import Thresholds, Verdict, season
from reputation.spikes.causes import DSNSampleFacts, Evidence, likely_cause
from reputation.spikes.incidents import ROW_DIMENSIONS, Incident, advance, group

BIN = 5  # minutes
BINS_PER_DAY = 1440 // BIN
EPOCH = datetime(2026, 1, 5)  # a Monday
CUSTOMERS = 60
REMOTES = [f"remote{i}.example" for i in range(39)] + ["outlook.example"]
RELAY = "relay.our.example"
STATUS_CLASS = {
    "5.1.1": "unknown-user",
    "5.2.2": "mailbox-full",
    "5.7.1": "blocked",
    "4.4.7": "other",
    "5.7.1s": "spam",
}
CAUSES = ("directory-harvest", "backscatter", "spam-attack", "rogue-server", "blocked-at-receiver")


def poisson(rng: random.Random, rate: float) -> int:
    if rate <= 0:
        return 0
    if rate > 30:
        return max(0, round(rng.gauss(rate, math.sqrt(rate))))
    limit, k, p = math.exp(-rate), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def rhythm(b: int) -> float:
    """Office hours, quieter weekends, a Monday 08-10 peak at twice a weekday."""
    day, minute = divmod(b * BIN, 1440)
    hour = minute / 60
    level = 0.15 + math.exp(-((hour - 14) ** 2) / 18)
    weekday = day % 7
    if weekday >= 5:
        level *= 0.4
    if weekday == 0 and 8 <= hour < 10:
        level *= 2.0
    return level


@dataclass
class Injected:
    cause: str
    size: int  # DSNs per 15-minute window
    start: int  # bin
    end: int  # bin (exclusive)
    target: str  # the customer, victim domain or client


@dataclass
class World:
    """Per-bin DSN rows and per-source routed mail, with prefix sums per series."""

    bins: int
    rows: list[Counter] = field(default_factory=list)  # per bin: row tuple + kind -> DSNs
    routed: dict[str, array] = field(default_factory=dict)  # source -> messages per bin
    risky: dict[str, array] = field(default_factory=dict)  # source -> high-risk per bin
    prefix: dict[tuple, array] = field(default_factory=dict)  # series -> prefix sums
    first_seen: dict[str, int] = field(default_factory=dict)  # source or MTA -> first bin
    injected: list[Injected] = field(default_factory=list)

    def total(self, key: tuple, end: int, width: int) -> int:
        """DSNs of a series in the `width` bins before `end`."""
        prefix = self.prefix.get(key)
        if prefix is None or end <= 0:
            return 0
        end = min(end, self.bins)
        return prefix[end] - prefix[max(0, end - width)]

    def routed_in(self, source: str, end: int, width: int) -> tuple[int, int]:
        total, risky = self.routed.get(source), self.risky.get(source)
        if total is None:
            return 0, 0
        lo = max(0, end - width)
        return sum(total[lo:end]), sum(risky[lo:end])


def build(weeks: int, learn_weeks: int, seed: int, sizes=(30, 75, 300)) -> World:
    rng = random.Random(seed)
    bins = weeks * 7 * BINS_PER_DAY
    world = World(bins)
    days = weeks * 7
    service_noise = [math.exp(rng.gauss(0, 0.15)) for _ in range(days)]
    customer_noise = [[math.exp(rng.gauss(0, 0.3)) for _ in range(days)] for _ in range(CUSTOMERS)]
    rates = [rng.uniform(0.02, 0.6) for _ in range(CUSTOMERS)]  # DSNs per bin at the daily peak
    mail = [rng.uniform(5, 60) for _ in range(CUSTOMERS)]  # routed messages per bin at the peak
    for c in range(CUSTOMERS):
        world.routed[f"mx.c{c}.example"] = array("l", bytes(8 * bins))
        world.risky[f"mx.c{c}.example"] = array("l", bytes(8 * bins))
    plan = schedule(rng, weeks, learn_weeks, sizes)
    world.injected = plan
    active = {b: inj for inj in plan for b in range(inj.start, inj.end)}
    for b in range(bins):
        day = b // BINS_PER_DAY
        level = rhythm(b) * service_noise[day]
        rows: Counter = Counter()
        for c in range(CUSTOMERS):
            noise = customer_noise[c][day]
            mx, domain = f"mx.c{c}.example", f"c{c}.example"
            sent = poisson(rng, mail[c] * level * noise)
            world.routed[mx][b] = sent
            world.risky[mx][b] = sum(1 for _ in range(sent) if rng.random() < 0.02)
            for _ in range(poisson(rng, rates[c] * level * noise)):
                status = "5.1.1" if rng.random() < 0.7 else "5.2.2"
                remote = rng.choice(REMOTES)
                rows[("high-risk", mx, remote, domain, status, mx, "inbound")] += 1
            for _ in range(poisson(rng, rates[c] * level * noise * 0.7)):
                status = rng.choices(("5.1.1", "5.2.2", "5.7.1", "4.4.7"), (5, 2, 1.5, 1.5))[0]
                remote = rng.choice(REMOTES)
                rows[("high-risk", RELAY, domain, remote, status, RELAY, "outbound")] += 1
        inj = active.get(b)
        if inj:
            inject(rng, world, inj, b, rows)
        world.rows.append(rows)
    index(world)
    return world


def schedule(rng: random.Random, weeks: int, learn_weeks: int, sizes) -> list[Injected]:
    """Incidents in the measured weeks, one every 10-20 hours, each cause and size in turn."""
    plan, b = [], learn_weeks * 7 * BINS_PER_DAY + rng.randrange(BINS_PER_DAY)
    kinds = [(cause, size) for size in sizes for cause in CAUSES]
    i = 0
    while True:
        length = rng.randrange(8, 19)  # 40-90 minutes
        if b + length >= weeks * 7 * BINS_PER_DAY:
            break
        cause, size = kinds[i % len(kinds)]
        target = {
            "directory-harvest": f"c{rng.randrange(CUSTOMERS)}",
            "backscatter": f"victim{i}.example",
            "spam-attack": f"c{rng.randrange(CUSTOMERS)}",
            "rogue-server": f"rogue{i}.example",
            "blocked-at-receiver": "outlook.example",
        }[cause]
        plan.append(Injected(cause, size, b, b + length, target))
        b += length + rng.randrange(10 * 12, 20 * 12)
        i += 1
    return plan


def inject(rng: random.Random, world: World, inj: Injected, b: int, rows: Counter) -> None:
    n = poisson(rng, inj.size / 3)  # per 5-minute bin
    if inj.cause == "directory-harvest":
        mx, domain = f"mx.{inj.target}.example", f"{inj.target}.example"
        for _ in range(n):
            rows[("high-risk", mx, "probe.example", domain, "5.1.1", mx, "harvest")] += 1
    elif inj.cause == "backscatter":
        for _ in range(n):
            c = rng.randrange(5) * 7 % CUSTOMERS
            mx, domain = f"mx.c{c}.example", f"c{c}.example"
            status = "5.1.1" if rng.random() < 0.7 else "5.2.2"
            rows[("high-risk", mx, inj.target, domain, status, mx, "backscatter")] += 1
    elif inj.cause == "spam-attack":
        mx, domain = f"mx.{inj.target}.example", f"{inj.target}.example"
        spam = poisson(rng, inj.size * 2)
        world.routed[mx][b] += spam
        world.risky[mx][b] += round(spam * 0.7)
        for _ in range(n):
            status = rng.choices(("5.7.1s", "5.1.1", "4.4.7"), (4, 4, 2))[0]
            rows[("high-risk", mx, domain, rng.choice(REMOTES), status, mx, "spam")] += 1
    elif inj.cause == "rogue-server":
        for _ in range(n):
            status = rng.choice(("5.1.1", "5.2.2", "4.4.7"))
            remote, other = rng.choice(REMOTES), rng.choice(REMOTES)
            rows[("high-risk", inj.target, remote, other, status, inj.target, "rogue")] += 1
    elif inj.cause == "blocked-at-receiver":
        for _ in range(n):
            domain = f"c{rng.randrange(CUSTOMERS)}.example"
            rows[("high-risk", RELAY, domain, inj.target, "5.7.1", RELAY, "blocked")] += 1


def row_mapping(row: tuple) -> dict:
    status = row[4]
    return {
        "pool": row[0],
        "source": row[1],
        "recipient_domain": row[2],
        "original_domain": row[3],
        "status": status.rstrip("s"),
        "reporting_mta": row[5],
        "refined_class": STATUS_CLASS[status],
    }


def index(world: World) -> None:
    """Prefix sums per series, and when each source and reporting MTA was first seen."""
    per_bin: dict[tuple, dict[int, int]] = defaultdict(dict)
    for b, rows in enumerate(world.rows):
        for row, n in rows.items():
            mapping = row_mapping(row)
            world.first_seen.setdefault(mapping["source"], b)
            world.first_seen.setdefault(mapping["reporting_mta"], b)
            for dimension, read in ROW_DIMENSIONS.items():
                key = (dimension, read(mapping))
                cell = per_bin[key]
                cell[b] = cell.get(b, 0) + n
    for source, routed in world.routed.items():
        first = next((b for b, n in enumerate(routed) if n), None)
        if first is not None:
            world.first_seen[source] = min(world.first_seen.get(source, first), first)
    for key, cells in per_bin.items():
        prefix = array("l", bytes(8 * (world.bins + 1)))
        running = 0
        for b in range(world.bins):
            running += cells.get(b, 0)
            prefix[b + 1] = running
        world.prefix[key] = prefix


# --- replaying a detector ---------------------------------------------------------------------


@dataclass
class Alert:
    opened: int  # bin of the evaluation that opened it
    cause: str
    lead: tuple
    closed: int | None = None


def verdicts_at(world: World, end: int, thresholds: Thresholds) -> dict[tuple, Verdict]:
    """Every series' verdict for the window ending at bin `end` (Poolwarden's baseline)."""
    width = thresholds.window_minutes // BIN
    the_season = season(timedelta(minutes=(end - width) * BIN), thresholds.window, thresholds.days)
    back = [offset // timedelta(minutes=BIN) for offset in the_season.all_offsets]
    found = {}
    for key in world.prefix:
        count = world.total(key, end, width)
        if count < thresholds.min_count:
            continue  # cannot be elevated; an open incident's series count as calm
        past = [world.total(key, end - k, width) for k in back]
        found[key] = the_season.judge(count, past, thresholds)
    return found


def window_rows(world: World, end: int, width: int) -> list[tuple[dict, int]]:
    merged: Counter = Counter()
    for b in range(max(0, end - width), end):
        merged.update(world.rows[b])
    return [(row_mapping(row) | {"kind": row[6]}, n) for row, n in merged.items()]


def evidence_for(
    world: World, lead: tuple, end: int, width: int, before: int, rng: random.Random, days: int
) -> Evidence:
    """What the database would hold about the lead series' window: counts per dimension, a
    sample of its recipients, the top source's routed mail, the clients and MTAs known."""
    dimension, value = lead
    rows = [
        (row, n)
        for row, n in window_rows(world, end, width)
        if ROW_DIMENSIONS[dimension](row) == value
    ]
    ev = Evidence(total=sum(n for _, n in rows))
    expanded = []
    for row, n in rows:
        ev.statuses[row["status"]] += n
        ev.sources[row["source"]] += n
        ev.recipient_domains[row["recipient_domain"]] += n
        ev.original_domains[row["original_domain"]] += n
        ev.reporting_mtas[row["reporting_mta"]] += n
        ev.refined[row["refined_class"]] += n
        expanded += [row] * n
    for row in rng.sample(expanded, min(len(expanded), 300)):
        ev.samples.append(sample_of(row, rng))
    top = [source for source, _ in ev.sources.most_common(10)]
    ev.source_baselines = {
        s: sum(
            world.total(("source", s), end - d * BINS_PER_DAY, width) for d in range(1, days + 1)
        )
        / days
        for s in top
    }
    if top:
        ev.routed, ev.high_risk = world.routed_in(top[0], end, width)
        ev.high_risk_share = ev.high_risk / ev.routed if ev.routed else 0.0
        before_total = before_risky = 0
        for d in range(1, days + 1):
            t, r = world.routed_in(top[0], end - d * BINS_PER_DAY, width)
            before_total, before_risky = before_total + t, before_risky + r
        ev.high_risk_share_before = before_risky / before_total if before_total else 0.0
    ev.known_sources = frozenset(s for s in top if world.first_seen.get(s, before) < before)
    ev.known_mtas = frozenset(
        m for m in ev.reporting_mtas if m and world.first_seen.get(m, before) < before
    )
    return ev


def sample_of(row: dict, rng: random.Random) -> DSNSampleFacts:
    """One DSN recipient of a row, with the addresses its kind would have."""
    kind = row["kind"]
    user = rng.randrange(100_000)
    sender = {
        "harvest": f"probe{user % 3}@probe.example",
        "backscatter": f"forged{user}@{row['recipient_domain']}",
    }.get(kind, f"u{user % 500}@{row['recipient_domain']}")
    original = (
        f"{'x' if kind == 'harvest' else 'u'}{user % (100_000 if kind == 'harvest' else 300)}"
    )
    diagnostic = {
        "blocked": "554 5.7.1 Service unavailable; Client host [192.0.2.5] blocked using "
        "zen.spamhaus.org",
    }.get(kind, "550 rejected")
    routed = kind in ("outbound", "spam", "blocked")
    return DSNSampleFacts(
        row["source"],
        sender,
        f"{original}@{row['original_domain']}",
        row["status"],
        diagnostic,
        row["reporting_mta"],
        routed,
        row["refined_class"],
    )


def replay_poolwarden(world: World, start: int, thresholds: Thresholds, seed: int) -> list[Alert]:
    """Poolwarden's detector every 5 minutes from bin `start`: one alert per incident."""
    rng = random.Random(seed)
    width = thresholds.window_minutes // BIN
    quiet = timedelta(minutes=thresholds.quiet_minutes)
    incidents: list[Incident] = []
    alerts: dict[int, Alert] = {}
    for end in range(start, world.bins + 1):
        verdicts = verdicts_at(world, end, thresholds)
        elevated = [k for k, v in verdicts.items() if v.elevated]
        groups = group(elevated, window_rows(world, end, width)) if elevated else []
        now = EPOCH + timedelta(minutes=end * BIN)
        changes = advance(incidents, verdicts, groups, now, quiet)
        for incident in changes.opened:
            ev = evidence_for(world, incident.lead, end, width, end - width, rng, thresholds.days)
            incident.ref = len(alerts)
            alerts[incident.ref] = Alert(end, likely_cause(ev)[0].name, incident.lead)
        for incident in changes.closed:
            alerts[incident.ref].closed = end
    return sorted(alerts.values(), key=lambda a: a.opened)


def replay_yesterday(world: World, start: int, thresholds: Thresholds, seed: int) -> list[Alert]:
    """The peer: every series alerts on its own when its window holds more than twice the
    same window yesterday and at least `min_count` DSNs, and is quiet again after
    `quiet_minutes`; its cause is judged like Poolwarden's, on the alerting series."""
    rng = random.Random(seed)
    width = thresholds.window_minutes // BIN
    quiet = thresholds.quiet_minutes // BIN
    open_since: dict[tuple, Alert] = {}
    calm: dict[tuple, int] = {}
    alerts = []
    for end in range(start, world.bins + 1):
        for key in world.prefix:
            count = world.total(key, end, width)
            high = count >= thresholds.min_count and count > 2 * world.total(
                key, end - BINS_PER_DAY, width
            )
            if key in open_since:
                calm[key] = 0 if high else calm.get(key, 0) + 1
                if calm[key] >= quiet:
                    open_since.pop(key).closed = end
                continue
            if high:
                ev = evidence_for(world, key, end, width, end - width, rng, thresholds.days)
                alert = Alert(end, likely_cause(ev)[0].name, key)
                open_since[key], calm[key] = alert, 0
                alerts.append(alert)
    return alerts


@dataclass
class Score:
    weeks: float
    false_alarms: int = 0
    alerts: int = 0
    found: Counter = field(default_factory=Counter)  # cause -> incidents found in 15 minutes
    right: Counter = field(default_factory=Counter)  # cause -> found with the right cause
    total: Counter = field(default_factory=Counter)  # cause -> injected
    per_incident: list[int] = field(default_factory=list)  # alerts per found incident
    by_size: Counter = field(default_factory=Counter)  # (cause, size) -> found
    size_total: Counter = field(default_factory=Counter)


def score(world: World, alerts: list[Alert], start: int, within: int = 3) -> Score:
    """Match alerts to injected incidents: found when an alert opened within `within` bins
    (15 minutes) of the incident's start while it ran; an alert overlapping no incident
    (nor the 30 minutes after one) is a false alarm."""
    result = Score(weeks=(world.bins - start) / (7 * BINS_PER_DAY))
    result.alerts = len(alerts)
    matched: set[int] = set()
    for inj in world.injected:
        result.total[inj.cause] += 1
        result.size_total[(inj.cause, inj.size)] += 1
        mine = [i for i, a in enumerate(alerts) if inj.start <= a.opened <= inj.end + 6]
        matched.update(mine)
        first = min((alerts[i] for i in mine), key=lambda a: a.opened, default=None)
        if first and first.opened <= inj.start + within:
            result.found[inj.cause] += 1
            result.by_size[(inj.cause, inj.size)] += 1
            result.right[inj.cause] += first.cause == inj.cause
            result.per_incident.append(len(mine))
    result.false_alarms = len(alerts) - len(matched)
    return result
