"""Alert channels in admin (write-only secret, test alert, re-enabling), the alert history,
the send_alerts command and the channels' part of the configuration document."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from reputation.models.alerts import Channel, Event, Notification
from routing.configdoc import DocumentError, apply_plan, export_document, plan_document
from tests.reputation.alerts.servers import HookServer

pytestmark = pytest.mark.django_db
SECRET = "hmac-secret-4711"


@pytest.fixture
def hook():
    with HookServer() as server:
        yield server


def channel_form(**fields) -> dict:
    return {
        "name": "ops-hook",
        "kind": "webhook",
        "url": "http://127.0.0.1:9/hook",
        "recipients": "",
        "new_secret": "",
        "min_severity": "warning",
        "pool_names": "",
        "digest_seconds": "60",
        **fields,
    }


def test_operator_adds_a_webhook_whose_secret_is_never_shown(client, operator):
    client.force_login(operator)
    response = client.post("/admin/reputation/channel/add/", channel_form(new_secret=SECRET))
    assert response.status_code == 302, response.content.decode()
    channel = Channel.objects.get(name="ops-hook")
    assert channel.config == {"url": "http://127.0.0.1:9/hook", "secret": SECRET}
    change = f"/admin/reputation/channel/{channel.pk}/change/"
    assert SECRET not in client.get(change).content.decode()
    assert SECRET not in client.get("/admin/reputation/channel/").content.decode()
    client.post(change, channel_form(pool_names="normal, high-risk"))  # empty: keep it
    channel.refresh_from_db()
    assert channel.config["secret"] == SECRET and channel.pools == ["high-risk", "normal"]
    assert SECRET not in export_document()


def test_bad_recipients_are_refused_with_a_message(client, operator):
    client.force_login(operator)
    form = channel_form(kind="email", recipients="ops@example.org\nnot-an-address", url="")
    page = client.post("/admin/reputation/channel/add/", form).content.decode()
    assert "Not an email address" in page and not Channel.objects.exists()


def test_send_test_alert_reports_success_and_failure(client, operator, hook):
    client.force_login(operator)
    good = Channel.objects.create(name="good", kind="slack", config={"url": hook.url + "/ok"})
    bad = Channel.objects.create(name="bad", kind="webhook", config={"url": hook.url + "/no"})
    hook.state.statuses = []
    action = {"action": "send_test_alert", "_selected_action": [good.pk]}
    page = client.post("/admin/reputation/channel/", action, follow=True).content.decode()
    assert "Good: test alert sent to 127.0.0.1:" in page
    assert "Test alert for channel good" in hook.requests[0].json()["text"]
    hook.state.statuses = [410]
    action["_selected_action"] = [bad.pk]
    page = client.post("/admin/reputation/channel/", action, follow=True).content.decode()
    assert "Bad: test alert failed: HTTP 410 Gone" in page
    bad.refresh_from_db()
    assert bad.last_error == "HTTP 410 Gone"


def test_re_enabling_a_channel_in_admin_queues_its_failed_alerts(client, operator):
    client.force_login(operator)
    channel = Channel.objects.create(
        name="ops-hook", kind="webhook", config={"url": "http://127.0.0.1:9/hook"}, disabled=True
    )
    event = Event.objects.create(kind="test", severity="warning", source="x", subject="x")
    Notification.objects.create(event=event, channel=channel, status="failed", error="HTTP 404")
    client.post(f"/admin/reputation/channel/{channel.pk}/change/", channel_form())
    assert Notification.objects.get().status == "pending"
    assert client.get("/admin/reputation/notification/").status_code == 200
    assert client.get("/admin/reputation/event/").status_code == 200


def test_send_alerts_command_runs_once_and_refuses_bad_options():
    call_command("send_alerts", "--once")
    with pytest.raises(CommandError) as error:
        call_command("send_alerts", "--interval", "0")
    assert error.value.returncode == 2


def test_channels_round_trip_through_the_configuration_document_without_secrets():
    doc = (
        "[[alert_channels]]\nname = 'mail'\nkind = 'email'\nto = ['ops@example.org']\n"
        "[[alert_channels]]\nname = 'chat'\nkind = 'slack'\nmin_severity = 'critical'\n"
    )
    apply_plan(plan_document(doc))
    chat = Channel.objects.get(name="chat")
    assert chat.disabled and "Set the webhook URL in admin" in chat.last_error
    chat.config = {"url": "https://hooks.example.org/services/T0/B0/token"}
    chat.disabled = False
    chat.save()
    exported = export_document()
    assert "token" not in exported and "ops@example.org" in exported
    assert plan_document(exported).changes == []
    with pytest.raises(DocumentError) as error:
        plan_document("[[alert_channels]]\nname = 'x'\nkind = 'pager'\n")
    assert "kind: one of" in str(error.value)


def test_send_alerts_task_runs_one_round():
    from reputation.tasks import send_alerts

    assert send_alerts() == {"events": 0, "sent": 0, "failed": []}


def test_migration_schedules_the_alert_task_every_minute():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="reputation.send_alerts")
    assert (task.interval.every, task.interval.period) == (1, "minutes")


def test_viewer_reads_channels_and_history_but_sends_no_test_alert(client, viewer):
    client.force_login(viewer)
    channel = Channel.objects.create(
        name="ops-hook", kind="webhook", config={"url": "http://127.0.0.1:9/x", "secret": SECRET}
    )
    page = client.get(f"/admin/reputation/channel/{channel.pk}/change/")
    assert page.status_code == 200 and SECRET not in page.content.decode()
    assert client.get("/admin/reputation/notification/").status_code == 200
    action = {"action": "send_test_alert", "_selected_action": [channel.pk]}
    client.post("/admin/reputation/channel/", action)
    channel.refresh_from_db()
    assert channel.last_error == ""  # the action did not run


def test_chat_webhook_url_is_write_only(client, operator):
    client.force_login(operator)
    url = "https://hooks.example.org/services/T0/B0/tok123"
    client.post("/admin/reputation/channel/add/", channel_form(name="chat", kind="slack", url=url))
    channel = Channel.objects.get(name="chat")
    change = f"/admin/reputation/channel/{channel.pk}/change/"
    assert "tok123" not in client.get(change).content.decode()
    client.post(change, channel_form(name="chat", kind="slack", url="", min_severity="critical"))
    channel.refresh_from_db()
    assert channel.config == {"url": url} and channel.min_severity == "critical"
