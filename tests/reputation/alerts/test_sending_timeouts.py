"""Slow and silent receivers: a send ends within its timeout, its claim is renewed while it
runs, and each alert is delivered exactly once."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.utils import timezone

from reputation.alerts import checks, sending
from reputation.alerts.transports import http
from reputation.alerts.transports.base import MAX_TIMEOUT
from reputation.alerts.transports.email import smtp_timeout
from reputation.models.alerts import Channel, Event, Notification
from tests.reputation.alerts.servers import HookServer, SilentRelay, SMTPServer

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def listing_event(address: str = "192.0.2.5") -> Event:
    return Event.objects.create(
        kind=Event.Kind.LISTING_OPENED,
        severity="critical",
        source=f"test:{address}",
        pool="normal",
        address=address,
        zone="zen.test",
        subject=f"{address} listed on zen.test",
    )


def run(minutes: float = 0) -> sending.RunReport:
    return sending.run_once(worker="test", now=timezone.now() + dt.timedelta(minutes=minutes))


@pytest.fixture
def relay(settings):
    """A silent relay in front of a real SMTP server; EMAIL_TIMEOUT 1 s."""
    with SMTPServer() as server, SilentRelay(server) as silent:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", silent.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.EMAIL_TIMEOUT = 1.0
        yield silent, server.mailbox


@pytest.fixture
def short_lease(monkeypatch):
    """A 1 s claim lease renewed every 0.2 s; `rivals` collects what another worker claims
    each time it tries while a send runs (just after each renewal)."""
    monkeypatch.setattr(sending, "LEASE", dt.timedelta(seconds=1))
    monkeypatch.setattr(sending, "RENEW_EVERY", dt.timedelta(seconds=0.2))
    rivals: list[list[Notification]] = []
    real_wait = sending.wait

    def wait_while_a_rival_tries(futures, timeout):
        for channel in Channel.objects.all():
            rivals.append(sending.claim(channel, worker="rival", now=timezone.now()))
        return real_wait(futures, timeout=timeout)

    monkeypatch.setattr(sending, "wait", wait_while_a_rival_tries)
    return rivals


def test_a_silent_smtp_relay_fails_the_send_at_email_timeout_and_the_alert_goes_once(relay):
    silent, mailbox = relay
    Channel.objects.create(
        name="ops", kind="email", config={"to": ["ops@example.org"]}, digest_seconds=0
    )
    listing_event()
    started = time.monotonic()
    report = run()
    assert time.monotonic() - started < 4  # the worker is free again after EMAIL_TIMEOUT
    assert report.failed and not report.sent
    [pending] = Notification.objects.filter(status="pending")
    assert "timed out" in pending.error and pending.claimed_until is None
    silent.silent = False
    assert not run().sent  # backoff
    assert run(minutes=2).sent
    assert not run(minutes=10).sent
    assert len(mailbox.messages) == 1


def test_a_slow_webhook_keeps_its_claim_while_it_answers_and_gets_one_request(short_lease):
    with HookServer() as hook:
        hook.state.delay = 2.5  # within the HTTP timeout, past the 1 s lease
        Channel.objects.create(
            name="hook", kind="webhook", config={"url": hook.url + "/hook"}, digest_seconds=0
        )
        listing_event()
        assert run().sent
        assert len(short_lease) >= 5 and not any(short_lease)  # never claimed twice
        assert not run(minutes=1).sent
        assert len(hook.requests) == 1
    [sent] = Notification.objects.all()
    assert sent.status == "sent" and sent.attempts == 1


def test_a_webhook_slower_than_the_timeout_is_asked_once_per_round(monkeypatch):
    monkeypatch.setattr(http, "TIMEOUT", 1.0)
    with HookServer() as hook:
        hook.state.delay = 3.0
        Channel.objects.create(
            name="hook", kind="webhook", config={"url": hook.url + "/hook"}, digest_seconds=0
        )
        listing_event()
        started = time.monotonic()
        report = run()
        elapsed = time.monotonic() - started
        assert report.failed == ["hook: the webhook did not answer within 1 s"]
        assert elapsed < 2.5  # not three tries of a request the receiver may have
        assert len(hook.requests) == 1


def test_an_email_timeout_above_a_fifth_of_the_lease_is_reported_and_clamped(settings):
    assert sending.LEASE.total_seconds() >= MAX_TIMEOUT * 5
    assert checks.timeouts_below_lease() == []
    assert smtp_timeout() == 30.0  # the default
    settings.EMAIL_TIMEOUT = 600
    [warning] = checks.timeouts_below_lease()
    assert warning.id == "reputation.W010" and "at most 60 s" in warning.hint
    assert smtp_timeout() == MAX_TIMEOUT
    settings.EMAIL_TIMEOUT = None
    assert smtp_timeout() == MAX_TIMEOUT
    assert http.longest() <= sending.LEASE.total_seconds() / 2
