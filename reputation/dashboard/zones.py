"""The dashboard's clock: every time it shows is in the current time zone, `TIME_ZONE` unless
the viewer chose another (the `pw_tz` cookie, set by the zone selector), and says which.

`ZoneMiddleware` activates the chosen zone for each request, so Django's `date` filter and
`timezone.localtime` follow it; the charts convert with `figures.local` and label their axes
and hover text with `label`.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

COOKIE = "pw_tz"


@lru_cache(maxsize=1)
def _known() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def chosen(request: HttpRequest) -> str | None:
    """The zone the request's cookie names, or None (none, or not a known zone)."""
    name = request.COOKIES.get(COOKIE, "")
    return name if name in _known() else None


class ZoneMiddleware:
    """Activates the viewer's chosen time zone for the request (else `TIME_ZONE`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        name = chosen(request)
        if name:
            timezone.activate(zoneinfo.ZoneInfo(name))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()


def label(*moments: datetime) -> str:
    """The current zone's abbreviation at those moments (now if none): "CET", or "CET/CEST"
    for a range across a change of offset; the zone's name where it has no abbreviation."""
    zone = timezone.get_current_timezone()
    names = []
    for at in moments or (timezone.now(),):
        name = at.astimezone(zone).tzname() or ""
        if not name or name[0] in "+-":  # e.g. "+0530": no abbreviation
            name = timezone.get_current_timezone_name()
        if name not in names:
            names.append(name)
    return "/".join(names)


def choices(request: HttpRequest) -> dict:
    """The zone selector: the zone shown, its label and the choices (the server's zone, UTC
    and the one chosen; the script adds the browser's own)."""
    current = chosen(request) or ""
    options = [("", f"{settings.TIME_ZONE} (server)")]
    for name in ("UTC", current):
        if name and name != settings.TIME_ZONE and name not in dict(options):
            options.append((name, name))
    return {
        "name": timezone.get_current_timezone_name(),
        "label": label(),
        "current": current,
        "options": options,
    }
