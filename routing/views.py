"""HTTP API: `POST /api/v1/route` decides one message. JSON in, JSON out, bearer tokens."""

from __future__ import annotations

import contextlib
import itertools
import json
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from routing import scores, tokens
from routing.engine import get_engine
from routing.facts import decision_json
from routing.policy import PolicyUnavailable

MAX_JSON_DEPTH = 400  # nesting of a request body: ours is 2; json.loads recurses per level
DEPTH_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
DEPTH_SLICE = 512  # characters whose nesting is bounded by counting, without a Python loop
# Valid JSON escapes ("\\u0000", "\\ud800"), but no database takes them as text (PostgreSQL
# refuses NUL, every driver a lone surrogate).
NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


class BadRequest(ValueError):
    pass


def error(status: int, message: str, **headers) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def bearer_token(request: HttpRequest) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


@csrf_exempt
@require_POST
def route(request: HttpRequest) -> JsonResponse:
    engine = get_engine()
    try:
        snapshot = engine.snapshots.get()
    except PolicyUnavailable as exc:  # never loaded since this process started
        return error(503, f"{exc}; try again later", Retry_After="10")
    token = bearer_token(request)
    if not token or not tokens.authenticate(token, snapshot):
        return error(401, "a valid bearer token is required", WWW_Authenticate="Bearer")
    length = int(request.META.get("CONTENT_LENGTH") or 0)
    if length > settings.POOLWARDEN_API_MAX_BYTES:
        return error(413, f"body larger than {settings.POOLWARDEN_API_MAX_BYTES} bytes")
    try:
        body = parse_request(request.body)
    except RequestDataTooBig:
        return error(413, f"body larger than {settings.POOLWARDEN_API_MAX_BYTES} bytes")
    except BadRequest as exc:
        return error(400, str(exc))
    if body["message"] is None:
        facts, decision = engine.route_envelope(**body["envelope"])
    else:
        raw = message_bytes(body["message"])
        facts, decision = engine.route_message(raw, **body["envelope"])
    return JsonResponse(decision_json(facts, decision))


def message_bytes(text: str) -> bytes:
    """The message as bytes: surrogate escapes back to their bytes, and any other lone
    surrogate (valid in JSON, not in text) replaced."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def too_deep(text: str) -> bool:
    """Whether the arrays and objects of JSON `text` nest deeper than MAX_JSON_DEPTH, found
    without recursing: json.loads recurses once per level and ends in RecursionError.

    Escaped backslashes and quotes go first, so the remaining quotes delimit strings and
    every other piece between them is outside any string. A slice is walked character by
    character only when counting its openers cannot rule the limit out.
    """
    if text.count("[") + text.count("{") <= MAX_JSON_DEPTH:
        return False
    outside = "".join(text.replace("\\\\", "").replace('\\"', "").split('"')[::2])
    depth = 0
    for start in range(0, len(outside), DEPTH_SLICE):
        piece = outside[start : start + DEPTH_SLICE]
        opens = piece.count("[") + piece.count("{")
        if depth + opens > MAX_JSON_DEPTH:
            steps = map(DEPTH_STEP.get, piece, itertools.repeat(0))
            if max(itertools.accumulate(steps, initial=depth)) > MAX_JSON_DEPTH:
                return True
        depth += opens - piece.count("]") - piece.count("}")
    return False


def load_json(raw: bytes) -> object:
    """The request body as JSON; BadRequest when it is not JSON or nests too deep."""
    try:
        text = raw.decode(json.detect_encoding(raw), "surrogatepass")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None
    if too_deep(text):
        raise BadRequest(f"body nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None


def spam_score(value: object) -> float | None:
    """The caller's score as a float; BadRequest unless it is a number within ±MAX_SCORE
    (NaN and the infinities, which json.loads accepts, fail the comparison too)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest("spam_score must be a number")
    if not -scores.MAX_SCORE <= value <= scores.MAX_SCORE:
        raise BadRequest(f"spam_score must be within ±{scores.MAX_SCORE:g}")
    return float(value)


def parse_request(raw: bytes) -> dict:
    data = load_json(raw)
    if not isinstance(data, dict):
        raise BadRequest("body must be a JSON object")
    unknown = set(data) - {"mail_from", "rcpt_to", "message", "spam_score", "source"}
    if unknown:
        raise BadRequest(f"unknown field(s): {', '.join(sorted(unknown))}")
    mail_from = data.get("mail_from")
    message = data.get("message")
    if mail_from is not None and not isinstance(mail_from, str):
        raise BadRequest('mail_from must be a string ("" for the null sender)')
    if mail_from is None and message is None:
        raise BadRequest("give mail_from, message, or both")
    rcpt_to = data.get("rcpt_to", [])
    if not isinstance(rcpt_to, list) or not all(isinstance(r, str) for r in rcpt_to):
        raise BadRequest("rcpt_to must be a list of strings")
    if message is not None and not isinstance(message, str):
        raise BadRequest("message must be a string (the RFC 5322 text)")
    score = spam_score(data.get("spam_score"))
    source = data.get("source", "")
    if not isinstance(source, str):
        raise BadRequest("source must be a string")
    if any(NOT_TEXT.search(text) for text in (mail_from or "", source, *rcpt_to)):
        # A count that no flush can write would be kept, and fail, forever.
        raise BadRequest("mail_from, rcpt_to and source must be text: no NUL, no lone surrogate")
    envelope = {
        "mail_from": mail_from,
        "rcpt_to": rcpt_to[:1000],
        "spam_score": score,
        "source": source[:255],
    }
    return {"envelope": envelope, "message": message}


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text; a bearer token (admin: API tokens) or a staff login is required.
    This process's routing gauges are served even while the database is down."""
    from django.db import DatabaseError
    from django.utils import timezone

    from reputation.metrics import render, routing_gauges

    engine = get_engine()
    token, snapshot = bearer_token(request), None
    with contextlib.suppress(PolicyUnavailable):
        snapshot = engine.snapshots.get()
    if token:
        allowed = snapshot is not None and tokens.authenticate(token, snapshot)
    else:
        allowed = request.user.is_authenticated and request.user.is_staff
    if not allowed:
        return error(401, "a valid bearer token is required", WWW_Authenticate="Bearer")
    text = routing_gauges(engine)
    try:
        text += render(timezone.now())
    except DatabaseError as exc:  # the gauges above say why; say it here too
        text += f"# database unreachable: {' '.join(str(exc).split())[:200]}\n"
    return HttpResponse(text, content_type="text/plain; version=0.0.4")
