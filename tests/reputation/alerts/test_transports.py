"""The alert transports and their one HTTP wrapper, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from reputation.alerts.transports import Message, TransportError, for_kind, http, teams, webhook
from tests.reputation.alerts.servers import HookServer
from tests.support import free_port

MESSAGE = Message(
    "[Poolwarden CRITICAL] x", "line one\nline two", "<p>x</p>", [{"kind": "t"}], "critical"
)


@pytest.fixture
def hook(monkeypatch):
    monkeypatch.setattr(http, "PAUSE", 0.01)
    with HookServer() as server:
        yield server


def test_client_errors_are_permanent_and_not_retried(hook):
    hook.state.statuses = [400]
    with pytest.raises(TransportError) as error:
        http.post(hook.url, b"{}")
    assert error.value.permanent and str(error.value) == "HTTP 400 Bad Request"
    assert len(hook.requests) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_server_errors_and_throttling_are_retried_then_temporary(hook, status):
    hook.state.statuses = [status] * 3
    with pytest.raises(TransportError) as error:
        http.post(hook.url, b"{}")
    assert not error.value.permanent and len(hook.requests) == 3


def test_a_retry_that_succeeds_returns_the_status(hook):
    hook.state.statuses = [503]
    assert http.post(hook.url, b"{}") == 200 and len(hook.requests) == 2


def test_unreachable_webhook_is_a_temporary_error(monkeypatch):
    monkeypatch.setattr(http, "PAUSE", 0.01)
    with pytest.raises(TransportError) as error:
        http.post(f"http://127.0.0.1:{free_port()}/", b"{}", timeout=1)
    assert not error.value.permanent and "cannot reach the webhook" in str(error.value)


def test_webhook_signs_the_exact_body_it_sends(hook):
    to = for_kind("webhook")({"url": hook.url + "/x", "secret": "k"}).notify(MESSAGE)
    [request] = hook.requests
    assert to == hook.url.removeprefix("http://")
    assert request.headers["X-Poolwarden-Signature"] == webhook.signature("k", request.body)
    assert request.headers["X-Poolwarden-Signature"] == (
        "sha256=" + hmac.new(b"k", request.body, hashlib.sha256).hexdigest()
    )
    assert request.json() == {
        "version": 1,
        "subject": MESSAGE.subject,
        "severity": "critical",
        "events": [{"kind": "t"}],
    }


def test_webhook_without_secret_sends_no_signature(hook):
    for_kind("webhook")({"url": hook.url}).notify(MESSAGE)
    assert "X-Poolwarden-Signature" not in hook.requests[0].headers


def test_teams_card_and_slack_text():
    card = teams.card(MESSAGE)
    assert card["@type"] == "MessageCard" and card["title"] == MESSAGE.subject
    assert json.dumps(card)  # serialisable
    with pytest.raises(KeyError):
        for_kind("pager")
