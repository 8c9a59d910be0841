"""Restricted senders: rows written by the counters' flush, each an alert event and an audit
entry; released by an operator (admin or command line) with a note; listed by `senders`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from reputation.alerts.events import SENDER_RELEASED, SENDER_RESTRICTED
from reputation.models.alerts import Event
from routing import configdoc
from routing.counters import Counters
from routing.facts import REJECT
from routing.limits.checker import LimitChecker
from routing.limits.rules import LimitRule
from routing.models import SenderLimit, SenderRejectedCount, SenderRestriction, SettingChange
from tests.routing.limits.test_checker import Clock, decide, message, policy

pytestmark = pytest.mark.django_db


def blocked_sender(store, *, action="block", rejected=2):
    """alice over a limit of 1 (one delivered, `rejected` refused), counted and flushed."""
    checker, snapshot = (
        LimitChecker(store, Clock()),
        policy(LimitRule("*", external_per_hour=1, action=action)),
    )
    counters = Counters()
    for _ in range(1 + rejected):
        facts = message()
        counters.record(facts, decide(checker, snapshot, facts))
    counters.flush()
    return counters


def test_a_restriction_is_a_row_an_event_and_an_audit_entry(new_store):
    blocked_sender(new_store())
    row = SenderRestriction.objects.get()
    assert (row.sender, row.limit, row.action, row.count, row.maximum) == (
        "alice",
        "external_per_hour",
        "block",
        1,
        1,
    )
    assert row.until is None and row.rejected == 2
    assert [s["subject"] for s in row.samples] == ["hello", "hello"]
    assert row.samples[-1]["rcpt_to"] == ["someone@elsewhere.test"]
    event = Event.objects.get(kind=SENDER_RESTRICTED)
    assert event.severity == "critical" and "alice" in event.subject
    assert SettingChange.objects.filter(field="restriction", object_id=str(row.pk)).count() == 1
    counts = SenderRejectedCount.objects.get()
    assert (counts.sender, counts.limit, counts.count) == ("alice", "external_per_hour", 2)


def test_later_flushes_add_to_the_same_restriction_without_a_second_alert(new_store):
    store = new_store()
    blocked_sender(store)
    blocked_sender(store, rejected=3)  # the hold stands: every message is rejected
    row = SenderRestriction.objects.get()
    assert row.rejected == 6
    assert Event.objects.filter(kind=SENDER_RESTRICTED).count() == 1


def test_the_senders_command_lists_the_restricted_sender_with_its_limit_and_count(new_store):
    from routing.limits import restrictions

    store = new_store()
    blocked_sender(store)
    found = restrictions.senders(store=store)
    assert found[0]["sender"] == "alice"
    restriction = found[0]["restrictions"][0]
    assert restriction["limit"] == {
        "name": "external_per_hour",
        "count": 1,
        "window": 3600,
        "maximum": 1,
    }
    assert restriction["action"] == "block" and restriction["rejected"] == 2


def test_senders_json_and_release_on_the_command_line():
    # The command's own store is the session's (Redis or the database).
    from routing.limits.store import default_store

    blocked_sender(default_store())
    out = StringIO()
    call_command("senders", "--restricted", "--json", stdout=out)
    data = json.loads(out.getvalue())
    assert data["senders"][0]["sender"] == "alice"
    assert data["senders"][0]["restrictions"][0]["limit"]["name"] == "external_per_hour"
    out = StringIO()
    call_command("senders", "--release", "alice", "--note", "password reset", stdout=out)
    assert "alice released" in out.getvalue()
    row = SenderRestriction.objects.get()
    assert row.released and (row.released_by, row.release_note) == (
        "command line",
        "password reset",
    )
    assert Event.objects.filter(kind=SENDER_RELEASED).count() == 1
    with pytest.raises(CommandError, match="no restriction in force"):
        call_command("senders", "--release", "alice")


def test_after_release_mail_flows(new_store):
    from routing.limits import restrictions

    store = new_store()
    blocked_sender(store)
    restrictions.release(sender="alice", note="ok", store=store)
    checker = LimitChecker(store, Clock())
    snapshot = policy(LimitRule("*", external_per_hour=1, action="block"))
    assert decide(checker, snapshot, message()).action != REJECT


def test_operators_release_in_the_admin_and_viewers_only_see(client, operator, viewer):
    from routing.limits.store import default_store

    blocked_sender(default_store())
    row = SenderRestriction.objects.get()
    url = f"/admin/routing/senderrestriction/{row.pk}/change/"
    client.force_login(viewer)
    page = client.get(url)
    assert page.status_code == 200 and b"alice" in page.content
    assert client.post(url, {"release": "on", "release_note": "x"}).status_code == 403
    client.force_login(operator)
    response = client.post(url, {"release": "on", "release_note": "customer called"})
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.released_by, row.release_note) == ("olivia", "customer called")
    audit = SettingChange.objects.filter(object_id=str(row.pk), username="olivia").get()
    assert audit.new == "released: customer called"


def test_operators_edit_limits_in_the_admin_and_the_change_is_audited(client, operator, viewer):
    form = {"match": "*@example.com", "external_per_hour": "20", "action": "block"}
    client.force_login(viewer)
    assert client.post("/admin/routing/senderlimit/add/", form).status_code == 403
    client.force_login(operator)
    assert client.post("/admin/routing/senderlimit/add/", form).status_code == 302
    limit = SenderLimit.objects.get()
    assert (limit.external_per_hour, limit.per_day, limit.action) == (20, None, "block")
    assert SettingChange.objects.filter(model="routing.senderlimit", action="added").exists()


DOCUMENT = """
[routing]
internal_domains = ["example.com"]
sender_identity = "auto"
on_limit_store_failure = "defer"

[[sender_limits]]
match = "*"
external_per_hour = 500
internal_per_hour = 1000
per_day = 1000
high_risk_per_hour = 20
action = "block-today"

[[sender_limits]]
match = "alice@example.com"
external_per_hour = 20
action = "block"
"""


def test_the_configuration_document_imports_and_exports_sender_limits():
    configdoc.apply_plan(configdoc.plan_document(DOCUMENT))
    assert SenderLimit.objects.get(match="alice@example.com").per_day is None
    exported = configdoc.export_document()
    assert 'internal_domains = [\n    "example.com",\n]' in exported or "example.com" in exported
    assert configdoc.plan_document(exported).changes == []
    data = configdoc.parse_document(exported)
    assert data["sender_limits"][0]["match"] == "*"
    assert data["routing"]["on_limit_store_failure"] == "defer"


def test_the_document_refuses_bad_sender_limits():
    bad = '[[sender_limits]]\nmatch = "*"\nper_day = -1\naction = "nuke"\n'
    with pytest.raises(configdoc.DocumentError) as error:
        configdoc.plan_document(bad)
    assert "sender_limits[0].per_day: expected a whole number of at least 0" in error.value.problems
    assert any("sender_limits[0].action" in p for p in error.value.problems)
