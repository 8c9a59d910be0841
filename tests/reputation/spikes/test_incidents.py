"""Elevated series grouped into incidents, and incidents followed over runs (plain data)."""

from __future__ import annotations

from datetime import datetime, timedelta

from reputation.spikes.baseline import Verdict
from reputation.spikes.incidents import advance, group, lead_of

NOW = datetime(2026, 12, 1, 9, 0)
QUIET = timedelta(minutes=30)


def row(source, rdomain, odomain, status="5.1.1", pool="high-risk", mta=""):
    return {
        "pool": pool,
        "source": source,
        "recipient_domain": rdomain,
        "original_domain": odomain,
        "status": status,
        "reporting_mta": mta or source,
        "refined_class": "unknown-user" if status == "5.1.1" else "other",
    }


def up(count, baseline=2.0):
    return Verdict(count, baseline, 2.0, True, baseline + 10)


def calm(count=1, baseline=2.0):
    return Verdict(count, baseline, 2.0, False, baseline + 10)


def test_series_moved_by_one_harvest_are_one_group_with_the_broad_ones():
    rows = [(row("mx.a", f"r{i}.example", "a.example"), 3) for i in range(40)]
    rows += [(row(f"mx.bg{i}", "far.example", f"bg{i}.example", "5.2.2"), 1) for i in range(30)]
    elevated = [
        ("source", "mx.a"),
        ("original_domain", "a.example"),
        ("reporting_mta", "mx.a"),
        ("status", "5.1.1"),
        ("all", ""),
        ("pool", "high-risk"),
    ]
    assert group(elevated, rows) == [set(elevated)]


def test_two_campaigns_at_the_same_time_are_two_groups_even_with_shared_background():
    rows = [(row("mx.a", f"r{i}.example", "a.example"), 2) for i in range(50)]
    rows += [(row(f"mx.x{i}", "victim.example", f"o{i}.example", "5.7.1"), 2) for i in range(60)]
    rows += [(row("mx.a", "victim.example", "a.example"), 3)]  # a few DSNs in both
    elevated = [
        ("source", "mx.a"),
        ("original_domain", "a.example"),
        ("recipient_domain", "victim.example"),
        ("all", ""),
    ]
    groups = group(elevated, rows)
    assert {frozenset(g) for g in groups} == {
        frozenset({("source", "mx.a"), ("original_domain", "a.example")}),
        frozenset({("recipient_domain", "victim.example"), ("all", "")}),  # the bigger one
    }


def test_broad_series_alone_are_one_group():
    assert group([("all", ""), ("status_class", "5")], []) == [{("all", ""), ("status_class", "5")}]


def test_lead_is_the_specific_series_with_most_excess_else_the_narrowest_broad():
    from reputation.spikes.incidents import Member

    members = {
        ("all", ""): Member(400, 100, 150, True, 400),
        ("source", "mx.a"): Member(250, 2, 20, True, 250),
        ("original_domain", "a.example"): Member(240, 1, 20, True, 240),
    }
    assert lead_of(members) == ("source", "mx.a")
    broad = {
        ("all", ""): Member(400, 100, 150, True, 400),
        ("status", "5.1.1"): Member(300, 60, 100, True, 300),
    }
    assert lead_of(broad) == ("status", "5.1.1")


def test_one_incident_opens_follows_and_closes_with_one_row_of_changes():
    incidents = []
    keys = [("source", "mx.a"), ("all", "")]
    verdicts = {keys[0]: up(80), keys[1]: up(300, 100)}
    changes = advance(incidents, verdicts, [set(keys)], NOW, QUIET)
    assert len(changes.opened) == 1 and len(incidents) == 1
    incident = incidents[0]
    assert incident.lead == ("source", "mx.a") and incident.peak == 80

    # Next run: only the source is still elevated, higher: a new peak, the same incident.
    later = NOW + timedelta(minutes=5)
    verdicts = {keys[0]: up(120), keys[1]: calm(150, 100)}
    changes = advance(incidents, verdicts, [{keys[0]}], later, QUIET)
    assert changes.opened == [] and changes.peaked == [incident]
    assert incident.peak == 120 and incident.members[keys[1]].peak == 300

    # A new series that moved with it joins the open incident, not a new one.
    verdicts = {keys[0]: up(110), ("original_domain", "a.example"): up(100, 1)}
    changes = advance(incidents, verdicts, [set(verdicts)], later + timedelta(minutes=5), QUIET)
    assert changes.opened == [] and ("original_domain", "a.example") in incident.members

    # Quiet for 30 minutes: closed.
    at = later + timedelta(minutes=10)
    for _ in range(7):
        at += timedelta(minutes=5)
        changes = advance(incidents, {}, [], at, QUIET)
    assert changes.closed == [incident] and incidents == [] and incident.ended == at


def test_an_unrelated_group_during_an_incident_opens_a_second_one():
    incidents = []
    advance(incidents, {("source", "mx.a"): up(80)}, [{("source", "mx.a")}], NOW, QUIET)
    verdicts = {("source", "mx.a"): up(80), ("recipient_domain", "victim.example"): up(90)}
    groups = [{("source", "mx.a")}, {("recipient_domain", "victim.example")}]
    changes = advance(incidents, verdicts, groups, NOW + timedelta(minutes=5), QUIET)
    assert len(changes.opened) == 1 and len(incidents) == 2
