"""The settings audit trail: every change made in admin is a SettingChange row (who, when,
old → new), secrets are recorded as changed but never by value, and the trail is read-only."""

from __future__ import annotations

import json

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from reputation.models import Blocklist
from reputation.models.alerts import Channel
from routing import changes
from routing.models import Pool, PoolAddress, RoutingPolicy, SettingChange
from tests.routing.test_admin import pool_form

POLICY_FORM = {
    "trusted_score_headers": '["X-Spam-Score", "X-Spam-Status"]',
    "on_dns_failure": "ignore",
    "fallback": "high-risk",
    "spamd_address": "127.0.0.1:783",
    "spamd_timeout": "5.0",
    "spamd_max_bytes": "524288",
    "internal_domains": "[]",
    "sender_identity": "auto",
    "on_limit_store_failure": "deliver",
}
KEY = "abcdefghijklmnopqrstuvwxyz"
HOOK_URL = "https://hooks.example.org/services/T0/B0/tok123"


def rows(**filters) -> list[SettingChange]:
    return list(SettingChange.objects.filter(**filters).order_by("id"))


def every_value() -> str:
    return json.dumps(list(SettingChange.objects.values()), default=str)


def policy_url() -> str:
    return f"/admin/routing/routingpolicy/{RoutingPolicy.load().pk}/change/"


def post_policy(client, threshold: str, **fields):
    policy = RoutingPolicy.load()
    policy.trusted_score_headers = json.loads(POLICY_FORM["trusted_score_headers"])
    policy.save()
    return client.post(policy_url(), {**POLICY_FORM, "spam_threshold": threshold, **fields})


def blocklist_form(blocklist: Blocklist | None = None, **fields) -> dict:
    data = {
        "zone": blocklist.zone if blocklist else "bl.example.org",
        "kind": "ip",
        "weight": "minor",
        "enabled": "on",
        "ipv4": "on",
        "ipv6": "",
        "description": "",
        "codes": '{"127.0.0.2": "listed"}',
        "error_codes": "[]",
        "not_listing_codes": "[]",
        "delist_url": "",
        "max_in_flight": "20",
        "max_qps": "50",
        "max_per_day": "0",
        "clean_to_close": "2",
        "requires_key": "",
    }
    return {**data, **fields}


def channel_form(**fields) -> dict:
    return {
        "name": "chat",
        "kind": "slack",
        "url": HOOK_URL,
        "recipients": "",
        "new_secret": "",
        "min_severity": "warning",
        "pool_names": "",
        "digest_seconds": "60",
        **fields,
    }


def task_form(task: PeriodicTask, **fields) -> dict:
    data = {
        "name": task.name,
        "regtask": "",
        "task": task.task,
        "enabled": "on" if task.enabled else "",
        "description": task.description,
        "interval": str(task.interval_id or ""),
        "crontab": "",
        "solar": "",
        "clocked": "",
        "start_time_0": "",
        "start_time_1": "",
        "one_off": "",
        "args": task.args,
        "kwargs": task.kwargs,
        "expires_0": "",
        "expires_1": "",
        "expire_seconds": "",
        "queue": "",
        "exchange": "",
        "routing_key": "",
        "priority": "",
        "headers": task.headers or "{}",
    }
    return {**data, **fields}


@pytest.mark.django_db
def test_operator_changing_the_spam_threshold_records_who_and_old_to_new(client, operator):
    client.force_login(operator)
    assert post_policy(client, "5").status_code == 302
    SettingChange.objects.all().delete()
    response = post_policy(client, "3")
    assert response.status_code == 302, response.content.decode()[:2000]
    [row] = rows()
    assert (row.user, row.username, row.action) == (operator, "olivia", "changed")
    assert (row.model, row.object_id) == ("routing.routingpolicy", str(RoutingPolicy.load().pk))
    assert (row.field, row.old, row.new) == ("spam_threshold", "5.0", "3.0")


@pytest.mark.django_db
def test_choices_json_and_booleans_are_recorded_as_short_text(client, operator):
    client.force_login(operator)
    post_policy(client, "5")
    SettingChange.objects.all().delete()
    post_policy(
        client,
        "5",
        on_dns_failure="high-risk",
        trusted_score_headers='["X-Spam-Status"]',
        spamd_enabled="on",
    )
    found = {r.field: (r.old, r.new) for r in rows()}
    assert found == {
        "on_dns_failure": ("ignore", "high-risk"),
        "trusted_score_headers": ('["X-Spam-Score","X-Spam-Status"]', '["X-Spam-Status"]'),
        "spamd_enabled": ("no", "yes"),
    }


@pytest.mark.django_db
def test_saving_without_a_change_records_nothing(client, operator):
    client.force_login(operator)
    post_policy(client, "4.5")
    SettingChange.objects.all().delete()
    assert post_policy(client, "4.5").status_code == 302
    assert rows() == []


@pytest.mark.django_db
def test_access_key_change_is_recorded_as_secret_never_the_key(client, operator):
    client.force_login(operator)
    dq = Blocklist.objects.get(zone="zen.dq.spamhaus.net")
    url = f"/admin/reputation/blocklist/{dq.pk}/change/"
    form = blocklist_form(dq, requires_key="on", weight=dq.weight)
    client.post(url, form)
    SettingChange.objects.all().delete()
    assert client.post(url, {**form, "new_access_key": KEY}).status_code == 302
    client.post(url, {**form, "new_access_key": KEY[::-1]})
    client.post(url, {**form, "clear_access_key": "on"})
    found = [(r.field, r.old, r.new) for r in rows()]
    assert found == [
        ("access_key", "", "(secret)"),
        ("access_key", "(secret)", "(secret)"),
        ("access_key", "(secret)", ""),
    ]
    assert KEY not in every_value() and KEY[::-1] not in every_value()


@pytest.mark.django_db
def test_channel_webhook_url_change_is_recorded_without_the_url(client, operator):
    client.force_login(operator)
    assert client.post("/admin/reputation/channel/add/", channel_form()).status_code == 302
    channel = Channel.objects.get(name="chat")
    change = f"/admin/reputation/channel/{channel.pk}/change/"
    new_url = "https://hooks.example.org/services/T0/B0/tok456"
    assert client.post(change, channel_form(url=new_url)).status_code == 302
    assert [(r.action, r.field) for r in rows()] == [("added", ""), ("changed", "config")]
    config = rows(field="config")[0]
    assert config.old == config.new == '{"url":"(secret)"}'
    assert "tok123" not in every_value() and "tok456" not in every_value()


@pytest.mark.django_db
def test_email_recipients_stay_readable(client, operator):
    client.force_login(operator)
    email = channel_form(name="ops", kind="email", url="", recipients="a@example.org")
    client.post("/admin/reputation/channel/add/", email)
    channel = Channel.objects.get(name="ops")
    change = f"/admin/reputation/channel/{channel.pk}/change/"
    client.post(change, {**email, "recipients": "a@example.org\nb@example.org"})
    [row] = rows(field="config")
    assert row.old == '{"to":["a@example.org"]}'
    assert row.new == '{"to":["a@example.org","b@example.org"]}'


@pytest.mark.django_db
def test_adding_and_deleting_blocklists_records_added_and_deleted(client, operator):
    client.force_login(operator)
    response = client.post("/admin/reputation/blocklist/add/", blocklist_form())
    assert response.status_code == 302, response.content.decode()[:2000]
    added = Blocklist.objects.get(zone="bl.example.org")
    delete = f"/admin/reputation/blocklist/{added.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 302
    zen = Blocklist.objects.get(zone="zen.spamhaus.org")
    action = {"action": "delete_selected", "_selected_action": [zen.pk], "post": "yes"}
    assert client.post("/admin/reputation/blocklist/", action).status_code == 302
    assert not Blocklist.objects.filter(zone__in=["bl.example.org", "zen.spamhaus.org"]).exists()
    found = [(r.action, r.model, r.object_id, r.object_repr, r.field) for r in rows()]
    assert found == [
        ("added", "reputation.blocklist", str(added.pk), "bl.example.org", ""),
        ("deleted", "reputation.blocklist", str(added.pk), "bl.example.org", ""),
        ("deleted", "reputation.blocklist", str(zen.pk), "zen.spamhaus.org", ""),
    ]


@pytest.mark.django_db
def test_range_added_inline_records_the_pools_ranges(client, operator):
    client.force_login(operator)
    normal = Pool.objects.get(name="normal")
    old = sorted(normal.ranges.values_list("cidr", flat=True))
    form = pool_form(normal, [*old, "203.0.113.0/29"])
    response = client.post(f"/admin/routing/pool/{normal.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    [row] = rows()
    assert (row.model, row.object_repr, row.field) == ("routing.pool", "normal", "ranges")
    assert row.old == ", ".join(old)
    assert row.new == ", ".join(sorted([*old, "203.0.113.0/29"]))


@pytest.mark.django_db
def test_rotation_actions_record_one_row_per_address_changed(client, operator):
    client.force_login(operator)
    picked = list(PoolAddress.objects.filter(address__in=["192.0.2.4", "192.0.2.5"]))
    PoolAddress.objects.filter(address="192.0.2.5").update(active=False, reason="broken")
    selected = [a.pk for a in picked]
    take_out = {"action": "take_out_of_rotation", "_selected_action": selected}
    assert client.post("/admin/routing/pooladdress/", take_out).status_code == 302
    found = [(r.model, r.object_repr, r.field, r.old, r.new) for r in rows()]
    assert found == [("routing.pooladdress", "192.0.2.4", "active", "yes", "no")]
    put_back = {"action": "put_back_into_rotation", "_selected_action": selected}
    client.post("/admin/routing/pooladdress/", put_back)
    back = sorted((r.object_repr, r.old, r.new) for r in rows()[1:])
    assert back == [("192.0.2.4", "no", "yes"), ("192.0.2.5", "no", "yes")]
    assert {r.username for r in rows()} == {"olivia"}


@pytest.mark.django_db
def test_address_edit_records_only_rotation_fields(client, operator):
    client.force_login(operator)
    address = PoolAddress.objects.get(address="192.0.2.4")
    form = {"active": "", "reason": "warming up", "hostname": "", "keep_in_rotation": ""}
    response = client.post(f"/admin/routing/pooladdress/{address.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    found = {r.field: (r.old, r.new) for r in rows()}
    assert found == {"active": ("yes", "no"), "reason": ("", "warming up")}


@pytest.mark.django_db
def test_periodic_task_interval_change_and_disabling_are_recorded(client, operator):
    client.force_login(operator)
    task = PeriodicTask.objects.get(task="reputation.sweep")
    old_interval = str(task.interval)
    hourly, _ = IntervalSchedule.objects.get_or_create(every=1, period="hours")
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/change/"
    response = client.post(url, task_form(task, interval=str(hourly.pk)))
    assert response.status_code == 302, response.content.decode()[:2000]
    [row] = rows()
    assert (row.model, row.field) == ("django_celery_beat.periodictask", "interval")
    assert (row.old, row.new) == (old_interval, "every hour")
    disable = {"action": "disable_tasks", "_selected_action": [task.pk]}
    assert client.post("/admin/django_celery_beat/periodictask/", disable).status_code == 302
    assert [(r.field, r.old, r.new) for r in rows()[1:]] == [("enabled", "yes", "no")]


@pytest.mark.django_db
def test_schedule_change_is_recorded(client, operator):
    client.force_login(operator)
    every = IntervalSchedule.objects.create(every=7, period="minutes")
    url = f"/admin/django_celery_beat/intervalschedule/{every.pk}/change/"
    form = {
        "every": "9",
        "period": "minutes",
        "periodictask_set-TOTAL_FORMS": "0",
        "periodictask_set-INITIAL_FORMS": "0",
        "periodictask_set-MIN_NUM_FORMS": "0",
        "periodictask_set-MAX_NUM_FORMS": "1000",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert [(r.field, r.old, r.new) for r in rows()] == [("every", "7", "9")]


@pytest.mark.django_db
def test_api_token_revocation_is_recorded_without_the_digest(client, operator):
    from routing.models import ApiToken

    client.force_login(operator)
    client.post("/admin/routing/apitoken/add/", {"name": "mx1"})
    token = ApiToken.objects.get(name="mx1")
    url = f"/admin/routing/apitoken/{token.pk}/change/"
    assert client.post(url, {"name": "mx1", "revoked": "on"}).status_code == 302
    found = [(r.action, r.field, r.old, r.new) for r in rows()]
    assert found == [("added", "", "", ""), ("changed", "revoked", "no", "yes")]
    assert token.digest not in every_value()


@pytest.mark.django_db
def test_viewer_cannot_change_and_nothing_is_recorded(client, viewer):
    client.force_login(viewer)
    assert post_policy(client, "1").status_code == 403
    dq = Blocklist.objects.get(zone="zen.dq.spamhaus.net")
    url = f"/admin/reputation/blocklist/{dq.pk}/change/"
    assert client.post(url, blocklist_form(dq, new_access_key=KEY)).status_code == 403
    assert RoutingPolicy.load().spam_threshold != 1
    assert rows() == []


@pytest.mark.django_db
def test_setting_change_admin_is_read_only_even_for_a_superuser(admin_client, client, viewer):
    row = changes.record(
        user=None, obj=RoutingPolicy.load(), field="spam_threshold", old="5.0", new="3.0"
    )
    base = "/admin/routing/settingchange/"
    page = admin_client.get(base)
    assert page.status_code == 200 and "spam_threshold" in page.content.decode()
    assert admin_client.get(f"{base}add/").status_code == 403
    detail = admin_client.get(f"{base}{row.pk}/change/")
    assert detail.status_code == 200 and b'name="_save"' not in detail.content
    assert admin_client.post(f"{base}{row.pk}/change/", {"old": "x"}).status_code == 403
    assert admin_client.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    admin_client.post(base, bulk)
    assert SettingChange.objects.filter(pk=row.pk, old="5.0").exists()
    client.force_login(viewer)
    assert client.get(base).status_code == 200


def test_readable_text_masks_secrets_at_any_depth():
    config = {"url": "https://x/tok", "nested": [{"secret": "s3"}], "to": ["a@example.org"]}
    text = changes.readable(config, secret_keys=("secret", "url"))
    assert text == '{"nested":[{"secret":"(secret)"}],"to":["a@example.org"],"url":"(secret)"}'
    assert changes.readable(None) == "(none)"
    assert changes.readable(False) == "no"
    assert changes.readable("x" * 600).endswith("…") and len(changes.readable("x" * 600)) == 500


@pytest.mark.django_db
def test_config_import_records_what_it_changed(tmp_path):
    """An import's changes are recorded too, the threshold as field, old and new, so that
    the charts mark it like a change made in the admin; a dry run records nothing."""
    import io

    from django.core.management import call_command

    path = tmp_path / "pw.toml"
    path.write_text(
        '[routing]\nspam_threshold = 3.5\n\n[[pools]]\nname = "extra"\n'
        'kind = "high-risk"\nranges = ["203.0.113.0/30"]\n'
    )
    call_command("config_import", str(path), "--dry-run", stdout=io.StringIO())
    assert not SettingChange.objects.exists()
    call_command("config_import", str(path), stdout=io.StringIO())
    threshold = SettingChange.objects.get(field="spam_threshold")
    assert (threshold.old, threshold.new) == ("5.0", "3.5")
    assert threshold.object_repr == "routing policy"
    assert threshold.username.startswith("config_import (")
    added = SettingChange.objects.get(action="added")
    assert added.object_repr.startswith("pool extra (high-risk")
