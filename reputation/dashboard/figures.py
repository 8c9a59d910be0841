"""What every dashboard chart shares: Plotly figure dicts (no plotly.graph_objects, whose
validation costs more than the queries), the time axis of a range, and the markers that show
when an admin changed a setting.

A figure is `{"data": [trace, ...], "layout": {...}}`, JSON-serializable; the browser draws it
with plotly.js (`Plotly.react`). plotly.js has no time zones (it drops an offset and draws the
wall-clock time), so times are ISO 8601 local times without offset in the current time zone
(`reputation.dashboard.zones`), and every time axis and hover text says which zone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone
from django.utils.http import RFC3986_SUBDELIMS

from reputation.dashboard import zones
from reputation.dashboard.timerange import TimeRange
from routing.models import SettingChange

COLOURS = {
    "normal": "#2f7ed8",
    "high-risk": "#d9534f",
    "listed-major": "#c0392b",
    "listed-minor": "#f0ad4e",
    "clean": "#5cb85c",
    "unknown": "#999999",
    "marker": "#7f5ab6",
}
# Reasons in the order they are stacked; a message with several reasons counts under the first.
REASON_ORDER = ("dsn", "no-a-mx", "spam-score", "dns-unknown", "fallback", "none")


def detail_url(name: str) -> Callable[[object], str]:
    """The URL maker of a dashboard detail page ("address", "blocklist", "spike"): a path the
    charts link to. The key is quoted as reverse() quotes it."""
    urlconf = get_urlconf() or settings.ROOT_URLCONF
    head, tail = _detail_pattern(name, urlconf, get_script_prefix())
    return lambda key: head + quote(str(key), safe=URL_SAFE) + tail


URL_SAFE = RFC3986_SUBDELIMS + "/~:@"
_MARKER = "987654321"  # a valid int and str path argument


@lru_cache(maxsize=64)
def _detail_pattern(name: str, urlconf: str, prefix: str) -> tuple[str, str]:
    # reverse() once, not once per point or row: it costs ~60 µs, and the heat map links a
    # thousand rows.
    head, tail = reverse(f"dashboard:{name}", urlconf=urlconf, args=[_MARKER]).split(_MARKER)
    return head, tail


def iso(at: datetime) -> str:
    """`at` as plotly.js reads it: the wall-clock time in the current zone, no offset."""
    return at.astimezone(timezone.get_current_timezone()).strftime("%Y-%m-%dT%H:%M:%S")


def local_text(at: datetime) -> str:
    """`at` for hover text: "2026-11-27 15:37 CET" in the current zone."""
    local = at.astimezone(timezone.get_current_timezone())
    return f"{local:%Y-%m-%d %H:%M} {zones.label(at)}"


def time_axis(rng: TimeRange) -> dict:
    """A date axis showing exactly the range, titled and hovered with the time zone."""
    zone = zones.label(rng.start, rng.end)
    return {
        "type": "date",
        "range": [iso(rng.start), iso(rng.end)],
        "title": {"text": f"time ({zone})", "font": {"size": 11}, "standoff": 4},
        "hoverformat": f"%Y-%m-%d %H:%M {zone}",
    }


def layout(rng: TimeRange, **extra) -> dict:
    """A time-series layout showing exactly the range."""
    base = {
        "margin": {"l": 50, "r": 20, "t": 10, "b": 50},
        "height": 320,
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": -0.25},
        "xaxis": time_axis(rng),
        "yaxis": {"rangemode": "tozero"},
    }
    return base | extra


def figure(data: list[dict], layout_: dict) -> dict:
    return {"data": data, "layout": layout_}


def shade(
    rng: TimeRange, start: datetime, end: datetime | None, colour: str, opacity: float
) -> dict:
    """A layout shape shading the period from `start` to `end` (None: still going), clipped
    to the range: a listing, a spike."""
    return {
        "type": "rect",
        "xref": "x",
        "yref": "paper",
        "x0": iso(max(start, rng.start)),
        "x1": iso(min(end or rng.end, rng.end)),
        "y0": 0,
        "y1": 1,
        "fillcolor": colour,
        "opacity": opacity,
        "layer": "below",
        "line": {"width": 0},
    }


def change_markers(rng: TimeRange, *, fields: tuple[str, ...] = (), y: float = 0) -> dict:
    """A scatter trace with one marker per setting change in the range (hover: who, when,
    what, old → new). `fields` keeps only changes of those fields (e.g. spam_threshold)."""
    changes = SettingChange.objects.filter(created__gte=rng.start, created__lt=rng.end)
    if fields:
        changes = changes.filter(field__in=fields)
    changes = list(changes.order_by("created")[:500])
    return {
        "type": "scatter",
        "mode": "markers",
        "name": "setting changes",
        "x": [iso(c.created) for c in changes],
        "y": [y] * len(changes),
        "text": [f"{local_text(c.created)} {c}" for c in changes],
        "hoverinfo": "text",
        "marker": {"symbol": "triangle-up", "size": 11, "color": COLOURS["marker"]},
        "showlegend": bool(changes),
    }
