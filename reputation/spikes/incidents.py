"""From elevated series to incidents, on plain data.

One cause moves several series at once: a directory harvest at one customer raises that
customer's source, its domain as original-recipient domain, status 5.1.1, the pool and the
total. Each is judged on its own baseline (`reputation.spikes.baseline`), then the series that
moved *together* become one incident: one spike with one cause, one alert.

**Together** means sharing DSNs in the current window. Two specific series (a source, a
domain, a reporting MTA) belong together when at least `LINK` of the smaller one's DSNs are
also the other's; linked series form a group. Broad series (everything, a pool, a status,
a status class, a refined class) overlap with every group, so they never link groups: each
joins the group it shares most DSNs with. Two campaigns at two customers at the same time are
two incidents; background DSNs that happen to fall in both never merge them, unless a quarter
of one's DSNs do.

**Incidents** live while any of their series is elevated and close after `quiet` without.
A series belongs to one open incident at a time; a group joins the open incident that already
holds one of its specific series (else one of its broad ones; a group of broad series alone
joins the oldest open incident), or opens a new one. The
incident's *lead* is the series that best describes it: the specific series with the largest
excess over its baseline, else the narrowest broad one. Evidence and cause are read on the lead
series, so background DSNs in the same window do not blur the cause.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import combinations
from typing import Any

from reputation.spikes.baseline import Verdict

Key = tuple[str, str]  # (dimension, value)

# How each dimension's value is read from a DSN row (a mapping of DSNDimensions fields).
ROW_DIMENSIONS: dict[str, Any] = {
    "all": lambda row: "",
    "pool": lambda row: row["pool"],
    "source": lambda row: row["source"],
    "recipient_domain": lambda row: row["recipient_domain"],
    "original_domain": lambda row: row["original_domain"],
    "status": lambda row: row["status"],
    "status_class": lambda row: row["status"][:1],
    "refined_class": lambda row: row.get("refined_class", ""),
    "reporting_mta": lambda row: row["reporting_mta"],
}
BROAD = frozenset({"all", "pool", "status", "status_class", "refined_class"})
# Broad dimensions from the narrowest: the lead when no specific series moved.
BROAD_ORDER = ("status", "refined_class", "pool", "status_class", "all")
LINK = 0.25


def is_broad(key: Key) -> bool:
    return key[0] in BROAD


def group(elevated: Iterable[Key], rows: Iterable[tuple[Mapping[str, str], int]]) -> list[set]:
    """The elevated series that moved together, from the current window's DSN rows
    ((dimension values, count) pairs). Every elevated series is in exactly one group.
    Linear in the rows: a 50,000-DSN burst is tens of thousands of rows."""
    elevated = set(elevated)
    by_dimension: dict[str, set[str]] = defaultdict(set)
    for dimension, value in elevated:
        by_dimension[dimension].add(value)
    readers = [(d, ROW_DIMENSIONS[d], values) for d, values in sorted(by_dimension.items())]
    specific_readers = [r for r in readers if r[0] not in BROAD]
    broad_readers = [r for r in readers if r[0] in BROAD]
    totals: Counter = Counter()
    pairs: Counter = Counter()
    together: Counter = Counter()  # (specific keys of a row, broad keys of a row) -> DSNs
    for row, n in rows:
        specific = tuple(
            (d, v) for d, read, values in specific_readers if (v := read(row)) in values
        )
        if not specific:
            continue
        for key in specific:
            totals[key] += n
        if len(specific) > 1:
            for pair in combinations(specific, 2):
                pairs[pair] += n
        broad = tuple((d, v) for d, read, values in broad_readers if (v := read(row)) in values)
        if broad:
            together[(specific, broad)] += n
    parent = {key: key for key in elevated if not is_broad(key)}

    def root(key: Key) -> Key:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for (a, b), shared in pairs.items():
        if shared > 0 and shared >= LINK * min(totals[a], totals[b]):
            parent[root(a)] = root(b)
    roots = {key: root(key) for key in parent}
    groups: dict[Key, set] = defaultdict(set)
    for key, group_root in roots.items():
        groups[group_root].add(key)
    shared_with: dict[Key, Counter] = defaultdict(Counter)  # broad key -> group root -> DSNs
    for (specific, broad), n in together.items():
        for group_root in {roots[k] for k in specific}:
            for key in broad:
                shared_with[key][group_root] += n
    loose: set = set()
    for key in sorted(k for k in elevated if is_broad(k)):
        best = max(shared_with[key].items(), key=lambda item: (item[1], item[0]), default=None)
        if best and best[1] > 0:
            groups[best[0]].add(key)
        else:
            loose.add(key)
    found = sorted(groups.values(), key=lambda g: sorted(g))
    if loose:
        found.append(loose)
    return found


# --- incidents ----------------------------------------------------------------------------------


@dataclass
class Member:
    """One series of an incident: its latest window and its peak."""

    count: int
    baseline: float
    threshold: float
    elevated: bool
    peak: int

    def as_dict(self) -> dict:
        return {
            "count": self.count,
            "baseline": round(self.baseline, 1),
            "threshold": round(self.threshold, 1),
            "elevated": self.elevated,
            "peak": self.peak,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Member:
        return cls(
            int(data.get("count", 0)),
            float(data.get("baseline", 0.0)),
            float(data.get("threshold", 0.0)),
            bool(data.get("elevated", False)),
            int(data.get("peak", 0)),
        )


@dataclass
class Incident:
    """What the tracker knows of one incident. `ref` is the caller's (a row's primary key)."""

    started: datetime
    members: dict[Key, Member]
    lead: Key
    peak: int  # the lead's count at the incident's peak
    baseline: float  # the lead's baseline then
    calm_since: datetime | None = None
    ref: Any = None
    ended: datetime | None = None

    def elevated(self) -> bool:
        return any(m.elevated for m in self.members.values())


@dataclass
class Changes:
    opened: list[Incident] = field(default_factory=list)
    peaked: list[Incident] = field(default_factory=list)  # a new peak or a new lead: re-judge
    followed: list[Incident] = field(default_factory=list)  # every other open incident
    closed: list[Incident] = field(default_factory=list)


def lead_of(members: Mapping[Key, Member]) -> Key:
    """The series that best describes an incident (see the module's doc)."""
    elevated = {k: m for k, m in members.items() if m.elevated} or dict(members)
    specific = [k for k in elevated if not is_broad(k)]
    if specific:
        return max(specific, key=lambda k: (elevated[k].count - elevated[k].baseline, k))
    rank = {d: i for i, d in enumerate(BROAD_ORDER)}
    return min(elevated, key=lambda k: (rank.get(k[0], 99), -elevated[k].count, k))


def next_lead(incident: Incident) -> Key:
    """The lead changes when a specific series takes over from a broad one, or when another
    series' excess is half as large again: a lead that flips every run would re-read the
    evidence every run."""
    candidate, current = lead_of(incident.members), incident.members.get(incident.lead)
    if candidate == incident.lead or current is None or not current.elevated:
        return candidate
    if is_broad(incident.lead) and not is_broad(candidate):
        return candidate
    new = incident.members[candidate]
    if new.count - new.baseline > 1.5 * (current.count - current.baseline):
        return candidate
    return incident.lead


def advance(
    incidents: list[Incident],
    verdicts: Mapping[Key, Verdict],
    groups: list[set],
    now: datetime,
    quiet: timedelta,
) -> Changes:
    """One detection run: `verdicts` of every series judged (a series not in it counted 0
    and was not elevated), `groups` of the elevated ones. Updates `incidents` (the open ones)
    in place and says what changed; closed incidents get `ended`."""
    changes = Changes()
    owner = {key: incident for incident in incidents for key in incident.members}
    for members in groups:
        specific = sorted(k for k in members if not is_broad(k))
        broad = sorted(k for k in members if is_broad(k))
        target = next((owner[k] for k in specific if k in owner), None)
        target = target or next((owner[k] for k in broad if k in owner), None)
        if target is None and not specific and incidents:
            target = incidents[0]  # broad series alone move with whatever is going on
        new = [k for k in members if k not in owner]
        if target is None:
            target = Incident(now, {}, ("", ""), 0, 0.0)
            incidents.append(target)
            changes.opened.append(target)
        for key in new:
            verdict = verdicts[key]
            target.members[key] = Member(
                verdict.count, verdict.baseline, verdict.threshold, True, verdict.count
            )
            owner[key] = target
    for incident in list(incidents):
        for key, member in incident.members.items():
            verdict = verdicts.get(key)
            member.count = verdict.count if verdict else 0
            member.elevated = bool(verdict and verdict.elevated)
            if verdict:
                member.baseline, member.threshold = verdict.baseline, verdict.threshold
            member.peak = max(member.peak, member.count)
        if incident in changes.opened:
            incident.lead = lead_of(incident.members)
            incident.peak = incident.members[incident.lead].count
            incident.baseline = incident.members[incident.lead].baseline
            continue
        if incident.elevated():
            incident.calm_since = None
            lead = next_lead(incident)
            member = incident.members[lead]
            if lead != incident.lead or member.count > incident.peak:
                incident.lead, incident.peak = lead, member.peak
                incident.baseline = member.baseline
                changes.peaked.append(incident)
                continue
        else:
            incident.calm_since = incident.calm_since or now
            if now - incident.calm_since >= quiet:
                incident.ended = now
                incidents.remove(incident)
                changes.closed.append(incident)
                continue
        changes.followed.append(incident)
    return changes
