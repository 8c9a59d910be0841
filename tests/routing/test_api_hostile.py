"""POST /api/v1/route under hostile input: a decision or a 4xx within a second, never a 500,
and every API error JSON whatever DEBUG says (issue 14)."""

from __future__ import annotations

import json
import time

import pytest
from django.middleware.common import CommonMiddleware
from django.test import Client
from hypothesis import HealthCheck, given, settings

from routing import tokens, views
from routing.message import MAX_DEPTH, MAX_PARTS
from tests.routing import hostile

pytestmark = [pytest.mark.django_db, pytest.mark.integration]

URL = "/api/v1/route"
SENDER = "bounces@both.test"


@pytest.fixture
def token(engine):
    tokens.forget()
    return tokens.issue("mta-1")[1]


def post(client, body, token: str, path: str = URL):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    return client.post(path, data, content_type="application/json", **headers)


def timed_post(client, body, token: str):
    """The answer to `body` and its time, after a request that loads the token, the policy
    and the engine: only the hostile request is timed."""
    post(client, {"mail_from": SENDER}, token)
    data = body if isinstance(body, str) else json.dumps(body)
    start = time.perf_counter()
    response = post(client, data, token)
    return response, time.perf_counter() - start


@pytest.mark.parametrize(
    ("message", "problem"),
    [
        (hostile.nested_multipart_report(1000), f"MIME nested deeper than {MAX_DEPTH} levels"),
        (hostile.nested_rfc822_report(1000), f"MIME nested deeper than {MAX_DEPTH} levels"),
        (hostile.many_parts_report(100_000), f"more than {MAX_PARTS} MIME parts"),
        (hostile.many_recipients_report(50_000), f"more than {MAX_PARTS} MIME parts"),
    ],
    ids=["multipart-1000-deep", "rfc822-1000-deep", "100000-parts", "50000-recipients"],
)
def test_hostile_messages_get_a_decision_within_a_second(client, token, message, problem):
    response, seconds = timed_post(client, {"mail_from": "", "message": message}, token)
    assert response.status_code == 200 and seconds < 1
    assert response.json()["is_dsn"] is True
    assert any(p.startswith(problem) for p in response.json()["problems"])


def test_json_nested_a_hundred_thousand_levels_gets_400(client, token):
    response, seconds = timed_post(client, hostile.nested_json(100_000), token)
    assert response.status_code == 400 and seconds < 1
    assert response.json() == {"error": "body nests deeper than 400 levels"}


def test_json_nesting_is_refused_only_past_the_limit(client, token):
    at_limit = post(client, hostile.nested_json(views.MAX_JSON_DEPTH - 1), token)
    assert at_limit.json() == {"error": "rcpt_to must be a list of strings"}
    past = post(client, hostile.nested_json(views.MAX_JSON_DEPTH), token)
    assert past.json() == {"error": "body nests deeper than 400 levels"}


@pytest.mark.parametrize("text", ["[" * 1000, '\\"' + "{" * 1000, "\\\\" + "[" * 1000])
def test_brackets_inside_strings_do_not_count_as_nesting(client, token, text):
    response = post(client, {"mail_from": SENDER, "source": text}, token)
    assert response.status_code == 200


@pytest.mark.parametrize(
    "score", ["1e308", "-1e308", "1000.001", "-1001", "NaN", "Infinity", "1" + "0" * 400]
)
def test_a_score_beyond_a_thousand_gets_400(client, token, score):
    response = post(client, f'{{"mail_from": "{SENDER}", "spam_score": {score}}}', token)
    assert response.status_code == 400
    assert response.json() == {"error": "spam_score must be within ±1000"}


def test_a_score_of_a_thousand_is_decided(client, token):
    response = post(client, {"mail_from": SENDER, "spam_score": -1000}, token)
    assert response.status_code == 200 and response.json()["spam_score"] == -1000.0


def test_a_score_header_beyond_a_thousand_is_clamped_with_a_problem(client, token):
    message = f"From: a@both.test\nX-Spam-Score: {'9' * 400}\n\nhi\n"  # a trusted default
    response = post(client, {"mail_from": SENDER, "message": message}, token)
    assert response.status_code == 200 and response.json()["spam_score"] == 1000.0
    assert any(p.endswith("beyond ±1000, clamped") for p in response.json()["problems"])


@pytest.mark.parametrize(
    "body",
    [
        {"mail_from": "\ud800@both.test"},
        {"mail_from": SENDER, "rcpt_to": ["a@b\udfff.test"]},
        {"mail_from": SENDER, "source": "sasl:\udc80"},
        {"mail_from": SENDER, "source": "sasl:\x00"},
    ],
)
def test_nul_and_lone_surrogates_in_the_envelope_get_400(client, token, body):
    response = post(client, body, token)  # json.dumps writes them as \\u escapes
    assert response.status_code == 400
    assert "no NUL, no lone surrogate" in response.json()["error"]


def test_a_message_with_a_lone_surrogate_is_decided(client, token):
    body = '{"mail_from": "' + SENDER + '", "message": "From: a@both.test\\n\\n\\ud800"}'
    assert post(client, body, token).status_code == 200


def test_the_counts_of_hostile_requests_reach_the_database(client, token, engine):
    """A hostile request must not leave counts that no flush can write (they would be
    kept, and fail, forever)."""
    bodies = [
        {"mail_from": "", "message": hostile.many_recipients_report(2000), "source": "x" * 999},
        {"mail_from": SENDER, "spam_score": 1000, "rcpt_to": ["\u00e9@\u00e9.test"]},
        {"mail_from": SENDER, "message": "From: a@both.test\nX-Spam-Score: 1e999\n\n\ud800"},
    ]
    for body in bodies:
        assert post(client, body, token).status_code == 200
    engine.counters.flush()
    assert engine.counters.pending() == 0


# --- JSON errors whatever DEBUG says -------------------------------------------------------


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


def test_an_unknown_api_path_is_a_json_404(client, token, debug):
    response = post(client, {}, token, path="/api/v1/nothing")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_a_wrong_method_is_a_json_405_that_says_what_is_allowed(client, token, debug):
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 405 and response["Allow"] == "POST"
    assert response.json() == {"error": "method not allowed"}


def test_a_crash_in_the_api_is_a_logged_json_500(client, token, debug, monkeypatch, caplog):
    def crash(raw):
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "parse_request", crash)
    response = post(client, {"mail_from": SENDER}, token)
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}
    assert "RuntimeError: boom" in caplog.text


def test_a_crash_in_other_middleware_is_a_json_500_too(token, debug, monkeypatch, caplog):
    def crash(self, request):
        raise RuntimeError("boom")

    monkeypatch.setattr(CommonMiddleware, "process_request", crash)
    client = Client(raise_request_exception=False)
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 500
    assert response.json() == {"error": "internal server error"}
    assert "RuntimeError: boom" in caplog.text


def test_a_bad_host_is_a_json_400(client, debug):
    response = client.get("/metrics", HTTP_HOST="bad host")
    assert response.status_code == 400
    assert response.json() == {"error": "bad request"}


def test_pages_outside_the_api_keep_their_html_errors(client, debug):
    response = client.get("/no-such-page")
    assert response.status_code == 404 and "text/html" in response["Content-Type"]


# --- fuzzing -------------------------------------------------------------------------------


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(hostile.BODY)
def test_fuzzed_requests_never_get_a_5xx_nor_counts_that_cannot_be_written(
    client, token, engine, body
):
    assert post(client, body, token).status_code < 500
    engine.counters.flush()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(hostile.RAW_BODY)
def test_fuzzed_raw_bodies_never_get_a_5xx(client, token, body):
    assert post(client, body, token).status_code < 500
