"""Alerts end to end: sweeps against rbldnsd raise events, which reach a real SMTP server and
a real HTTP server on loopback, once per event and channel."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
from django.utils import timezone

from reputation.alerts import events, sending
from reputation.blocklists import runs
from reputation.models import Spike
from reputation.models.alerts import Channel, Event, KnownAddress, Notification
from routing.models import PoolAddress
from tests.reputation.alerts.servers import HookServer, SMTPServer
from tests.reputation.conftest import dynamic_listing

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


@pytest.fixture
def smtp(settings):
    with SMTPServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        yield server.mailbox


@pytest.fixture
def hook():
    with HookServer() as server:
        yield server


def know_all() -> None:
    """Every pool address was checked before: its listings alert one by one."""
    addresses = PoolAddress.objects.values_list("address", flat=True)
    KnownAddress.objects.bulk_create(
        [KnownAddress(address=a) for a in addresses], ignore_conflicts=True
    )


def run(minutes: float = 0) -> sending.RunReport:
    return sending.run_once(worker="test", now=timezone.now() + dt.timedelta(minutes=minutes))


def webhook(hook: HookServer, path: str = "/hook", **values) -> Channel:
    values = {"kind": "webhook", "digest_seconds": 0, **values}
    config = {"url": hook.url + path, **values.pop("config", {})}
    return Channel.objects.create(name=path.strip("/") or "hook", config=config, **values)


def test_listing_alert_reaches_the_smtp_server_in_text_and_html(catalogue, smtp):
    know_all()
    from routing.models import AddressCount

    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    AddressCount.objects.create(hour=hour - dt.timedelta(hours=2), address="192.0.2.5", count=40)
    AddressCount.objects.create(hour=hour, address="192.0.2.5", count=2)
    AddressCount.objects.create(hour=hour - dt.timedelta(days=2), address="192.0.2.5", count=900)
    Channel.objects.create(name="ops", kind="email", config={"to": ["ops@example.org"]})
    Channel.objects.filter(name="ops").update(digest_seconds=0)
    runs.run_now(zones=["zen.test"])
    run()
    assert len(smtp.messages) == 1
    mail = smtp.messages[0]
    assert mail["To"] == "ops@example.org"
    assert mail["Subject"].startswith("[Poolwarden CRITICAL]")
    text = mail.get_body(("plain",)).get_content()
    html = mail.get_body(("html",)).get_content()
    assert "192.0.2.5 listed on zen.test" in text and "192.0.2.5 listed on zen.test" in html
    assert "127.0.0.2 SBL" in text
    assert "delisting: https://zen.test/remove" in text
    assert "http://127.0.0.1:8000/admin/reputation/listing/" in text
    assert "mail sent by its pool in the last 24 h" in text
    assert "mail sent from this address in the last 24 h: 42" in text
    assert "198.51.100.3" not in text  # high-risk pool: info, below the default warning
    run()
    assert len(smtp.messages) == 1  # sent once
    sent = Notification.objects.filter(status="sent")
    assert sent.exists() and all(n.recipients == "ops@example.org" for n in sent)


def test_webhook_body_follows_the_schema_and_is_signed(catalogue, hook):
    know_all()
    webhook(hook, config={"secret": "s3cret"})
    runs.run_now(zones=["zen.test"])
    run()
    [request] = hook.requests
    expected = "sha256=" + hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Poolwarden-Signature"] == expected
    document = request.json()
    assert document["version"] == 1 and document["severity"] == "critical"
    keys = {
        "id", "kind", "severity", "subject", "pool", "address", "zone", "codes", "meanings",
        "reason", "delist_url", "pool_sent_24h", "address_sent_24h", "details", "dashboard_url",
        "created", "spike",
    }  # fmt: skip
    assert all(set(e) == keys for e in document["events"])
    listed = {e["address"] for e in document["events"] if e["kind"] == "listing-opened"}
    assert listed == {"192.0.2.5", "192.0.2.7", "2001:db8::25"}
    out = {e["address"] for e in document["events"] if e["kind"] == "rotation-out"}
    assert out == {"192.0.2.5", "192.0.2.7", "2001:db8::25"}
    first = next(e for e in document["events"] if e["address"] == "192.0.2.5")
    assert (first["codes"], first["meanings"], first["zone"]) == (
        ["127.0.0.2"],
        ["SBL"],
        "zen.test",
    )
    assert first["delist_url"] == "https://zen.test/remove"


def test_a_digest_subject_names_the_most_severe_address_and_list():
    def event(kind, severity, subject, **values) -> Event:
        return Event(
            kind=kind, severity=severity, subject=subject, created=timezone.now(), **values
        )

    rotation = event("rotation-out", "critical", "192.0.2.5 taken out of rotation", address="x")
    minor = event(
        "listing-opened", "warning", "192.0.2.9 listed on minor.test", address="y", zone="m"
    )
    major = event(
        "listing-opened", "critical", "192.0.2.5 listed on zen.test", address="x", zone="z"
    )
    assert sending.render([rotation, minor, major]).subject == (
        "[Poolwarden CRITICAL] 192.0.2.5 listed on zen.test and 2 more alerts"
    )
    assert sending.render([minor, rotation]).subject == (
        "[Poolwarden CRITICAL] 192.0.2.5 taken out of rotation and 1 more alert"
    )
    assert sending.render([minor]).subject == "[Poolwarden WARNING] 192.0.2.9 listed on minor.test"


def test_channel_that_fails_retries_with_backoff_and_recovers(catalogue, hook):
    know_all()
    channel = webhook(hook)
    hook.state.statuses = [500, 502, 503]  # one run's three tries
    runs.run_now(zones=["zen.test"])
    report = run()
    assert report.failed and not report.sent
    pending = Notification.objects.filter(channel=channel, status="pending")
    assert pending.exists() and all(n.error == "HTTP 503 Service Unavailable" for n in pending)
    channel.refresh_from_db()
    assert not channel.disabled and "503" in channel.last_error
    assert not run().sent  # backoff: not due yet
    assert run(minutes=2).sent
    assert len(hook.requests) == 4
    channel.refresh_from_db()
    assert channel.last_error == ""
    assert not Notification.objects.exclude(status="sent").exists()


def test_permanent_error_disables_the_channel_until_re_enabled(catalogue, hook):
    know_all()
    channel = webhook(hook)
    hook.state.statuses = [404]
    runs.run_now(zones=["zen.test"])
    run()
    channel.refresh_from_db()
    assert channel.disabled and channel.last_error == "HTTP 404 Not Found"
    assert len(hook.requests) == 1  # a 4xx is not retried
    assert Notification.objects.filter(status="failed").exists()
    assert not run(minutes=120).sent
    Channel.objects.filter(pk=channel.pk).update(disabled=False)
    assert sending.reenable(channel) > 0
    assert run().sent and len(hook.requests) == 2


def test_a_channel_enabled_again_receives_the_alerts_it_missed(catalogue, hook):
    know_all()
    channel = webhook(hook, disabled=True)
    runs.run_now(zones=["zen.test"])
    run()
    assert hook.requests == [] and Notification.objects.filter(status="held").exists()
    Channel.objects.filter(pk=channel.pk).update(disabled=False)  # as config_import does
    run()
    [request] = hook.requests
    listed = {e["address"] for e in request.json()["events"] if e["kind"] == "listing-opened"}
    assert listed == {"192.0.2.5", "192.0.2.7", "2001:db8::25"}
    assert not run(minutes=5).sent and len(hook.requests) == 1
    assert not Notification.objects.exclude(status="sent").exists()


def test_missed_alerts_beyond_the_bound_are_counted_in_one_summary(hook, monkeypatch):
    monkeypatch.setattr(sending, "MISSED_MAX", 2)
    channel = webhook(hook, disabled=True)
    now = timezone.now()
    for n, hours in enumerate([30, 26, 3, 2, 1]):
        Event.objects.create(
            kind="listing-opened",
            severity="critical" if n == 0 else "warning",
            source=f"old:{n}",
            address=f"192.0.2.{n + 1}",
            zone="zen.test",
            subject=f"192.0.2.{n + 1} listed on zen.test",
            created=now - dt.timedelta(hours=hours),
        )
    run()
    assert Notification.objects.filter(status="held").count() == 5
    Channel.objects.filter(pk=channel.pk).update(disabled=False)
    assert sending.reenable(channel) == 3  # as the admin does
    run()
    [request] = hook.requests
    document = request.json()
    subjects = [e["subject"] for e in document["events"]]
    assert subjects == [
        "192.0.2.4 listed on zen.test",
        "192.0.2.5 listed on zen.test",
        "3 older alerts missed while hook was disabled",
    ]
    assert document["events"][2]["severity"] == "critical"
    assert document["subject"] == (
        "[Poolwarden CRITICAL] 3 older alerts missed while hook was disabled and 2 more alerts"
    )
    assert Notification.objects.filter(status="summarised").count() == 3
    assert not run(minutes=5).sent


def test_refused_recipient_disables_an_email_channel(catalogue, smtp):
    know_all()
    smtp.refuse.add("gone@example.org")
    channel = Channel.objects.create(
        name="ops", kind="email", config={"to": ["gone@example.org"]}, digest_seconds=0
    )
    runs.run_now(zones=["zen.test"])
    run()
    channel.refresh_from_db()
    assert channel.disabled and "gone@example.org" in channel.last_error
    assert smtp.messages == []


def test_alerts_in_the_digest_window_go_out_as_one_message(catalogue, hook):
    know_all()
    webhook(hook, digest_seconds=300)
    runs.run_now()
    assert not run().sent and hook.requests == []
    run(minutes=6)
    [request] = hook.requests
    listed = [e for e in request.json()["events"] if e["kind"] == "listing-opened"]
    assert len(listed) == 6  # every listing but the high-risk one, in one message


def test_flapping_listing_does_not_alert_again(catalogue, hook, rbldnsd):
    know_all()
    webhook(hook)
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.4"))
    runs.run_now(zones=["dynamic.test"])
    run()
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    runs.run_now(zones=["dynamic.test"])
    runs.run_now(zones=["dynamic.test"])
    run()
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.4"))
    runs.run_now(zones=["dynamic.test"])
    run()
    kinds = [e["kind"] for r in hook.requests for e in r.json()["events"]]
    assert sorted(kinds) == sorted(
        ["listing-opened", "rotation-out", "listing-closed", "rotation-in"]
    )
    reopened = Event.objects.filter(kind="listing-opened").order_by("created").last()
    assert reopened.suppressed.startswith("flapping")
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    runs.run_now(zones=["dynamic.test"])
    runs.run_now(zones=["dynamic.test"])
    run()
    assert len(hook.requests) == 2  # nor is its closing
    assert Event.objects.filter(kind="listing-closed").exclude(suppressed="").count() == 1


def test_a_relisting_that_outlasts_the_flap_window_is_alerted_once(catalogue, hook, rbldnsd):
    know_all()
    webhook(hook)
    for listed in (["192.0.2.4"], [], [], ["192.0.2.4"]):  # listed, delisted, relisted
        rbldnsd.write_zone("dynamic.zone", dynamic_listing(*listed))
        runs.run_now(zones=["dynamic.test"])
        run()
    assert len(hook.requests) == 2  # the relisting is flapping: quiet for now
    assert not run(minutes=5 * 60).sent  # within the 6 h window: still quiet
    run(minutes=6 * 60 + 1)
    [late] = hook.requests[2:]
    subjects = sorted(e["subject"] for e in late.json()["events"])
    assert subjects == [
        "192.0.2.4 still listed on dynamic.test 6 h 1 min after it was relisted",
        "192.0.2.4 still out of rotation 6 h 1 min after it was taken out again",
    ]
    assert not run(minutes=8 * 60).sent  # once
    rbldnsd.write_zone("dynamic.zone", dynamic_listing())
    runs.run_now(zones=["dynamic.test"])
    runs.run_now(zones=["dynamic.test"])
    run(minutes=9 * 60)
    [closed] = hook.requests[3:]  # its end is alerted too, having been alerted
    kinds = sorted(e["kind"] for e in closed.json()["events"])
    assert kinds == ["listing-closed", "rotation-in"]
    delisted = next(e for e in closed.json()["events"] if e["kind"] == "listing-closed")
    assert delisted["subject"].startswith("192.0.2.4 delisted from dynamic.test (listed for ")


def test_durations_read_as_people_say_them():
    assert events.duration_text(dt.timedelta(hours=3, minutes=20, seconds=40)) == "3 h 20 min"
    assert events.duration_text(dt.timedelta(days=2, hours=5)) == "2 d 5 h"
    assert events.duration_text(dt.timedelta(minutes=45)) == "45 min"
    assert events.duration_text(dt.timedelta(hours=6)) == "6 h"
    assert events.duration_text(dt.timedelta(seconds=20)) == "under a minute"


def test_first_sweep_of_new_addresses_is_one_summary(catalogue, hook):
    webhook(hook)
    runs.run_now()
    run()
    [request] = hook.requests
    [summary] = request.json()["events"]
    assert summary["kind"] == "initial-state" and summary["severity"] == "critical"
    assert len(summary["details"]) == 7  # every listing, high-risk ones too
    assert KnownAddress.objects.filter(address="192.0.2.1").exists()  # clean, checked: known


def test_high_risk_listing_is_info_and_reaches_only_channels_that_ask(catalogue, hook):
    know_all()
    webhook(hook, path="/all", min_severity="info", pools=["high-risk"])
    webhook(hook, path="/default")
    runs.run_now(zones=["zen.test"])
    run()
    by_path = {r.path: r.json()["events"] for r in hook.requests}
    assert [e["address"] for e in by_path["/all"]] == ["198.51.100.3"]
    assert by_path["/all"][0]["severity"] == "info"
    assert "198.51.100.3" not in {e["address"] for e in by_path["/default"]}


def test_slack_and_teams_get_their_formats(catalogue, hook):
    know_all()
    webhook(hook, path="/slack", kind="slack")
    webhook(hook, path="/teams", kind="teams")
    runs.run_now(zones=["zen.test"])
    run()
    by_path = {r.path: r.json() for r in hook.requests}
    assert set(by_path["/slack"]) == {"text"} and "192.0.2.5" in by_path["/slack"]["text"]
    assert by_path["/teams"]["@type"] == "MessageCard"
    assert by_path["/teams"]["themeColor"] == "D32F2F"
    assert "192.0.2.5" in by_path["/teams"]["text"]


def test_spikes_alert_when_they_open_and_close(hook):
    webhook(hook)
    now = timezone.now()
    spike = Spike.objects.create(
        dimension="pool", value="normal", started=now, peak=400, baseline=20.0,
        cause="blocked-at-receiver", confidence=0.8, evidence={"summary": ["550 5.7.1 x 300"]},
    )  # fmt: skip
    run()
    Spike.objects.filter(pk=spike.pk).update(ended=timezone.now() + dt.timedelta(seconds=1))
    run()
    opened, closed = (r.json()["events"][0] for r in hook.requests)
    assert (opened["kind"], opened["severity"], opened["pool"]) == (
        "spike-opened",
        "critical",
        "normal",
    )
    assert opened["dashboard_url"].endswith(f"/admin/reputation/spike/{spike.pk}/change/")
    assert closed["kind"] == "spike-closed"
    run()
    assert len(hook.requests) == 2


def test_an_incident_is_one_alert_with_its_series_and_top_keys(hook, smtp):
    """However many series moved, one incident is one event: the webhook gets the cause,
    confidence, peak, baseline, lead, series and top keys as fields; the mail names the lead
    and the other series."""
    webhook(hook)
    Channel.objects.create(name="ops", kind="email", config={"to": ["ops@example.org"]})
    Channel.objects.filter(name="ops").update(digest_seconds=0)
    series = [
        {"dimension": "source", "value": "mx.c.example", "peak": 300, "baseline": 2.0},
        {"dimension": "original_domain", "value": "c.example", "peak": 290, "baseline": 1.0},
        {"dimension": "pool", "value": "risky", "peak": 400, "baseline": 90.0},
    ] + [
        {"dimension": "status", "value": f"5.1.{i}", "peak": 30, "baseline": 1.0} for i in range(30)
    ]
    Spike.objects.create(
        dimension="source", value="mx.c.example", started=timezone.now(), peak=300,
        baseline=2.0, cause="directory-harvest", confidence=0.9, series=series,
        evidence={"summary": ["98% unknown users"], "top_sources": [["mx.c.example", 300]],
                  "top_statuses": [["5.1.1", 296], ["5.2.2", 4]]},
    )  # fmt: skip
    run()
    [request] = hook.requests
    [event] = request.json()["events"]
    incident = event["spike"]
    assert (incident["cause"], incident["confidence"], incident["peak"]) == (
        "directory-harvest",
        0.9,
        300,
    )
    assert incident["lead"] == {"dimension": "source", "value": "mx.c.example"}
    assert len(incident["series"]) == 20 and incident["series_count"] == 33
    assert incident["dimensions"] == ["original_domain", "pool", "source", "status"]
    assert incident["top_statuses"] == [["5.1.1", 296], ["5.2.2", 4]]
    assert event["pool"] == "risky"
    assert "and 32 related series" in event["subject"]
    [mail] = smtp.messages
    text = mail.get_body(("plain",)).get_content()
    assert "series involved: source mx.c.example, original_domain c.example" in text
    assert "and 25 more" in text


def test_spike_severity_follows_size_and_cause():
    small = Spike(peak=50, baseline=20.0, cause="content")
    assert events.spike_severity(small) == "warning"
    assert events.spike_severity(Spike(peak=200, baseline=20.0, cause="content")) == "critical"
    assert events.spike_severity(Spike(peak=30, baseline=20.0, cause="blocked-at-receiver")) == (
        "critical"
    )


def test_listing_severity_by_pool_kind_and_list_weight():
    assert events.listing_severity("normal", "major", opened=True) == "critical"
    assert events.listing_severity("normal", "minor", opened=True) == "warning"
    assert events.listing_severity("high-risk", "major", opened=True) == "info"
    assert events.listing_severity("normal", "major", opened=False) == "warning"


def test_address_checked_clean_before_alerts_one_by_one_when_listed(catalogue, hook, rbldnsd):
    webhook(hook)
    runs.run_now(zones=["dynamic.test"])  # every address clean: nothing to report
    run()
    assert hook.requests == []
    rbldnsd.write_zone("dynamic.zone", dynamic_listing("192.0.2.4"))
    runs.run_now(zones=["dynamic.test"])
    run()
    kinds = sorted(e["kind"] for e in hook.requests[0].json()["events"])
    assert kinds == ["listing-opened", "rotation-out"]


def test_stuck_and_missing_sweeps_are_reported_once(hook, settings):
    from reputation.models import CheckRun

    webhook(hook)
    long_ago = timezone.now() - dt.timedelta(hours=5)
    CheckRun.objects.create(trigger="schedule", started=long_ago)  # never finished
    settings.POOLWARDEN_SWEEP_INTERVAL = 1800
    run()
    run()
    [request] = hook.requests
    subjects = sorted(e["subject"] for e in request.json()["events"])
    assert [e["kind"] for e in request.json()["events"]] == ["sweep-failed"] * 2
    assert subjects[0].startswith("Blocklist sweep of") and subjects[1].startswith("No blocklist")
