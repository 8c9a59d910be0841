"""What an MTA and an API client see of a sender limit: the milter's 550 5.7.1 over a real
socket, policyd's reject action, the API's and `route --json`'s action and limit."""

from __future__ import annotations

import dataclasses
import json

import pytest

from routing.limits.checker import LimitChecker
from routing.limits.rules import LimitPolicy, LimitRule, ordered
from routing.limits.store import RedisStore
from routing.mta import milter_protocol as mp
from routing.mta.policyd import answer
from tests.routing.mta.test_milter import POLICY, offline_engine, pool_milter

LIMITED = dataclasses.replace(
    POLICY,
    limits=LimitPolicy(rules=ordered([LimitRule("*", external_per_hour=2, action="block")])),
)
RAW = b"From: a@both.test\nSubject: offer\n\nbody\n"


@pytest.fixture
def engine(shared):
    engine = offline_engine(LIMITED)
    engine.limits = LimitChecker(RedisStore(shared))
    return engine


def test_the_milter_rejects_past_the_limit_with_550_5_7_1_and_others_pass(engine):
    with pool_milter(engine) as mta:
        for _ in range(2):
            _, replies = mta.message(RAW, "a@both.test", "x@example.test", auth_authen="alice")
            assert replies[-1] == (mp.CONTINUE, b"")
        _, replies = mta.message(RAW, "a@both.test", "x@example.test", auth_authen="alice")
        code, text = replies[-1]
        assert code == mp.REPLYCODE
        assert text.startswith(b"550 5.7.1 Poolwarden: sender alice reached its limit of 2 ")
        assert b"external recipients per hour" in text and b"releases it" in text
        _, replies = mta.message(RAW, "a@both.test", "x@example.test", auth_authen="bob")
        assert replies[-1] == (mp.CONTINUE, b"")
    rejected = sum(engine.counters.counts.limits.rejected.values())
    assert rejected == 1 and not any(k[1] == "" for k in engine.counters.counts.routing)


def test_policyd_answers_a_reject_action_with_550_5_7_1(engine):
    request = {
        "request": "smtpd_access_policy",
        "sender": "a@both.test",
        "recipient": "x@example.test",
        "sasl_username": "alice",
        "client_address": "192.0.2.9",
    }
    for _ in range(2):
        assert answer(request, engine).startswith(b"action=FILTER ")
    assert answer(request, engine).startswith(b"action=550 5.7.1 Poolwarden: sender alice ")
    other = request | {"sasl_username": "bob"}
    assert answer(other, engine).startswith(b"action=FILTER ")


def test_policyd_defers_when_the_store_is_down_and_asked_to(engine):
    from config.shared_redis import SharedRedis

    engine.limits = LimitChecker(RedisStore(SharedRedis("redis://127.0.0.1:1/0")))
    limits = dataclasses.replace(LIMITED.limits, on_store_failure="defer")
    engine.snapshots.current = dataclasses.replace(LIMITED, limits=limits)
    request = {"request": "smtpd_access_policy", "sender": "a@both.test", "sasl_username": "a"}
    assert answer(request, engine).startswith(b"action=451 4.3.0 ")


@pytest.mark.django_db
@pytest.mark.integration
def test_the_api_gives_action_and_limit(client, engine, settings, shared):
    from routing import engine as engine_module
    from routing import tokens
    from routing.models import SenderLimit

    SenderLimit.objects.create(match="*", external_per_hour=1, action="block-today")
    real = engine_module.get_engine(flush_in_background=False)
    real.limits = LimitChecker(RedisStore(shared))
    tokens.forget()
    token = tokens.issue("mta")[1]

    def post():
        body = {"mail_from": "a@both.test", "rcpt_to": ["x@else.test"], "source": "carol"}
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
        return client.post(
            "/api/v1/route", json.dumps(body), content_type="application/json", **headers
        ).json()

    assert post()["action"] == "deliver"
    data = post()
    assert (data["action"], data["pool"], data["source_ip"]) == ("reject", "", None)
    assert data["limit"]["name"] == "external_per_hour"
    assert (data["limit"]["count"], data["limit"]["window"]) == (1, 3600)
    assert data["limit"]["sender"] == "carol" and "sender-limit" in data["reasons"]
