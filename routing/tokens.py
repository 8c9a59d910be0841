"""API bearer tokens: generated once, stored as SHA-256 digests, and checked against the
digests in the routing snapshot (`routing.policy`), so a request never waits on the
database. A revoked token stops working when the snapshot is next reloaded (within
POOLWARDEN_POLICY_REFRESH seconds, 10 by default, while the database is up)."""

from __future__ import annotations

import hashlib
import secrets
import threading

from django.utils import timezone

from routing.models import ApiToken
from routing.policy import PolicySnapshot

_used: set[str] = set()  # digests used since `save_last_used()` last ran
_lock = threading.Lock()


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def issue(name: str) -> tuple[ApiToken, str]:
    """Create a token; returns the row and the token, which is never shown again."""
    token = "pw_" + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(name=name, prefix=token[:10], digest=digest(token))
    return row, token


def authenticate(token: str, snapshot: PolicySnapshot) -> bool:
    """True when `token` is valid and unrevoked in `snapshot`; no I/O."""
    key = digest(token)
    if key not in snapshot.tokens:
        return False
    if key not in _used:
        with _lock:
            _used.add(key)
    return True


def save_last_used() -> None:
    """Write `last_used` of the tokens used since the last call (the policy refresher runs
    it after each reload); on failure they are kept for the next call."""
    with _lock:
        used = set(_used)
        _used.clear()
    if not used:
        return
    try:
        ApiToken.objects.filter(digest__in=used).update(last_used=timezone.now())
    except Exception:
        with _lock:
            _used.update(used)
        raise


def forget() -> None:
    with _lock:
        _used.clear()
