"""API bearer tokens: generated once, stored as SHA-256 digests, checked with a short
in-process cache so the API's hot path does not hit the database per request."""

from __future__ import annotations

import hashlib
import secrets
import time

from django.utils import timezone

from routing.models import ApiToken

CACHE_SECONDS = 30.0
_valid: dict[str, tuple[float, int]] = {}  # digest -> (checked at, token id)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def issue(name: str) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the token, which is never shown again."""
    token = "pw_" + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(name=name, prefix=token[:10], digest=digest(token))
    return row, token


def authenticate(token: str) -> bool:
    """True when `token` is a valid, unrevoked token (revocations apply within 30 s)."""
    key = digest(token)
    now = time.monotonic()
    hit = _valid.get(key)
    if hit and now - hit[0] < CACHE_SECONDS:
        return True
    row = ApiToken.objects.filter(digest=key, revoked=False).only("id").first()
    if row is None:
        _valid.pop(key, None)
        return False
    _valid[key] = (now, row.id)
    ApiToken.objects.filter(id=row.id).update(last_used=timezone.now())  # once per 30 s
    return True


def forget() -> None:
    _valid.clear()
