"""POST /api/v1/route: authentication, bad requests, and decisions against a real DNS
server on loopback."""

from __future__ import annotations

import json
import uuid

import pytest

from routing import tokens
from routing.models import ApiToken, RoutingCount, RoutingPolicy

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

URL = "/api/v1/route"


@pytest.fixture
def token(engine):
    tokens.forget()
    return tokens.issue("mta-1")[1]


def post(client, body, token: str | None = None, **extra):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, data, content_type="application/json", **headers, **extra)


def test_without_a_token_the_answer_is_401(client, engine):
    response = post(client, {"mail_from": "a@both.test"})
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"
    assert response.json() == {"error": "a valid bearer token is required"}


def test_a_wrong_or_revoked_token_is_refused(client, token):
    assert post(client, {"mail_from": "a@both.test"}, token + "x").status_code == 401
    row = ApiToken.objects.get()
    row.revoked = True
    row.save()  # as the admin does: this process reloads its snapshot at once
    assert post(client, {"mail_from": "a@both.test"}, token).status_code == 401


def test_a_revocation_elsewhere_applies_at_the_next_snapshot_reload(client, token, engine):
    assert post(client, {"mail_from": "a@both.test"}, token).status_code == 200
    ApiToken.objects.update(revoked=True)  # another process: no signal here
    assert post(client, {"mail_from": "a@both.test"}, token).status_code == 200
    engine.snapshots.loaded_at -= engine.snapshots.refresh  # POOLWARDEN_POLICY_REFRESH later
    assert post(client, {"mail_from": "a@both.test"}, token).status_code == 401


def test_a_token_in_use_gets_its_last_use_written_off_the_request_path(client, token):
    assert post(client, {"mail_from": "a@both.test"}, token).status_code == 200
    assert ApiToken.objects.get().last_used is None
    tokens.save_last_used()  # the policy refresher does this after each reload
    assert ApiToken.objects.get().last_used is not None


def test_only_the_token_digest_is_stored(token):
    row = ApiToken.objects.get()
    assert token not in (row.digest, row.prefix) and row.digest == tokens.digest(token)


def test_get_is_not_allowed(client, token):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{not json", "body is not JSON"),
        ("[1, 2]", "body must be a JSON object"),
        ({}, "give mail_from, message, or both"),
        ({"mail_from": 5}, "mail_from must be a string"),
        ({"mail_from": "a@b.test", "rcpt_to": "x@y.test"}, "rcpt_to must be a list"),
        ({"mail_from": "a@b.test", "spam_score": "high"}, "spam_score must be a number"),
        ({"mail_from": "a@b.test", "spam_score": True}, "spam_score must be a number"),
        ({"mail_from": "a@b.test", "colour": "red"}, "unknown field(s): colour"),
        ({"message": 42}, "message must be a string"),
    ],
)
def test_malformed_requests_get_400_with_a_json_error(client, token, body, message):
    response = post(client, body, token)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_oversize_body_gets_413(client, token, settings):
    settings.POOLWARDEN_API_MAX_BYTES = 1000
    response = post(client, {"mail_from": "a@both.test", "message": "x" * 2000}, token)
    assert response.status_code == 413


def test_domain_with_records_goes_normal(client, token):
    body = post(client, {"mail_from": "alice@both.test", "rcpt_to": ["b@x.test"]}, token).json()
    assert (body["pool"], body["reasons"], body["sender_domain"]) == ("normal", [], "both.test")
    assert body["source_ip"].startswith("192.0.2.")
    for key in ("pool", "reasons", "source_ip", "spam_score", "is_dsn", "sender_domain"):
        assert key in body


@pytest.mark.parametrize(
    ("sender", "pool", "reasons"),
    [
        ("a@a-only.test", "normal", []),
        ("a@aaaa-only.test", "normal", []),
        ("a@mx-only.test", "normal", []),
        ("a@neither.test", "high-risk", ["no-a-mx"]),
        ("a@nullmx.test", "high-risk", ["no-a-mx"]),
        ("a@nullmx-with-a.test", "normal", []),
        ("a@missing.test", "high-risk", ["no-a-mx"]),
        ("a@deep.name.nx.test", "high-risk", ["no-a-mx"]),
        ("a@bücher.test", "normal", []),
    ],
)
def test_sender_domain_rule_against_real_dns(client, token, sender, pool, reasons):
    body = post(client, {"mail_from": sender}, token).json()
    assert (body["pool"], body["reasons"]) == (pool, reasons), body


def test_spam_score_from_the_caller(client, token):
    body = post(client, {"mail_from": "a@both.test", "spam_score": 7.5}, token).json()
    assert (body["pool"], body["reasons"], body["spam_score"]) == (
        "high-risk",
        ["spam-score"],
        7.5,
    )


def test_spam_score_from_a_trusted_header_in_the_message(client, token):
    message = "From: a@both.test\r\nX-Spam-Status: Yes, score=12.0 required=5.0\r\n\r\nbuy\r\n"
    body = post(client, {"mail_from": "a@both.test", "message": message}, token).json()
    assert body["reasons"] == ["spam-score"]
    assert body["score_source"] == "header:X-Spam-Status"


def test_null_sender_is_a_dsn(client, token):
    body = post(client, {"mail_from": "", "rcpt_to": ["victim@both.test"]}, token).json()
    assert (body["pool"], body["reasons"], body["is_dsn"]) == ("high-risk", ["dsn"], True)


def test_a_delivery_report_gives_each_recipient_its_status_and_refined_class(client, token):
    from tests.support import DSN_SAMPLES

    message = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_text()
    body = post(client, {"mail_from": "", "rcpt_to": ["a@both.test"], "message": message}, token)
    recipient = body.json()["dsn"]["recipients"][0]
    assert set(recipient) == {"final_recipient", "action", "status", "refined_class"}
    assert (recipient["status"], recipient["refined_class"]) == ("5.1.1", "unknown-user")


def test_threshold_change_in_the_policy_applies_to_the_next_request(client, token):
    assert post(client, {"mail_from": "a@both.test", "spam_score": 3}, token).json()["pool"] == (
        "normal"
    )
    policy = RoutingPolicy.load()
    policy.spam_threshold = 2.0
    policy.save()
    assert post(client, {"mail_from": "a@both.test", "spam_score": 3}, token).json()["pool"] == (
        "high-risk"
    )


def test_timeout_is_dns_unknown_and_routes_by_the_other_rules(client, token, settings, dns_server):
    from routing.engine import reset_engine

    settings.POOLWARDEN_NAMESERVERS = [dns_server.silent_nameserver]
    settings.POOLWARDEN_DNS_TIMEOUT = 1.0
    reset_engine()
    domain = f"t{uuid.uuid4().hex[:12]}.test"  # not in any cache, shared (Redis) or local
    body = post(client, {"mail_from": f"a@{domain}"}, token).json()
    assert (body["pool"], body["reasons"]) == ("normal", ["dns-unknown"])
    assert f"DNS lookup for {domain} failed: timeout" in body["problems"]


def test_decisions_are_counted_and_flushed(client, token, engine):
    for _ in range(3):
        post(client, {"mail_from": "a@both.test", "source": "sasl:cust1"}, token)
    assert not RoutingCount.objects.exists()  # nothing per message on the hot path
    engine.counters.flush()
    row = RoutingCount.objects.get()
    assert (row.pool, row.reasons, row.source, row.count) == ("normal", "none", "sasl:cust1", 3)
