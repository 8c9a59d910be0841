"""Spam scores from the headers that the operator's own filter adds.

Formats understood (header names are case-insensitive):
- `X-Spam-Score: 7.3` (also `7.3 (+++++++)`, SpamAssassin/amavis style)
- `X-Spam-Status: Yes, score=7.3 required=5.0 tests=...` (SpamAssassin; old `hits=7.3`)
- `X-Rspamd-Score: 7.30`
- `X-Spamd-Result: default: True [7.30 / 15.00]; ...` (rspamd)
Any other configured header: `score=N` if present, else a leading number.

A score outside ±MAX_SCORE is clamped to it, with a problem: no filter scores that far, and
the counters bin scores by value.

A client can send these headers too. The operator's filter adds its header at the top, so
only the topmost occurrence counts; the README explains how to strip client copies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from email.message import Message

MAX_SCORE = 1000.0  # SpamAssassin and rspamd scores stay within a few hundred either way
NUMBER = r"[-+]?\d+(?:\.\d+)?"
SCORE_EQUALS = re.compile(rf"\b(?:score|hits)\s*=\s*({NUMBER})", re.IGNORECASE)
LEADING = re.compile(rf"^\s*({NUMBER})")
BRACKETED = re.compile(rf"\[\s*({NUMBER})\s*/")
HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 field name: printable, no colon

PARSERS = {
    "x-spam-status": (SCORE_EQUALS,),
    "x-spamd-result": (BRACKETED,),
    "x-spam-score": (LEADING,),
    "x-rspamd-score": (LEADING,),
}
GENERIC = (SCORE_EQUALS, LEADING)


def parse_score(header: str, value: str) -> float | None:
    """The score in one header value, or None when the value holds none. Not clamped: a
    number too long for a float is ±inf."""
    for pattern in PARSERS.get(header.lower(), GENERIC):
        match = pattern.search(value or "")
        if match:
            return float(match.group(1))
    return None


def score_from_headers(msg: Message, trusted: Iterable[str]) -> tuple[float | None, str, list[str]]:
    """(score, "header:Name", problems) from the first trusted header present.

    Only the topmost copy of each header counts. An unparsable value is a problem, and the
    next trusted header is tried; a score outside ±MAX_SCORE is clamped, with a problem.
    """
    problems = []
    for header in trusted:
        values = msg.get_all(header) or []
        if not values:
            continue
        top = str(values[0])
        score = parse_score(header, top)
        if score is not None:
            if abs(score) > MAX_SCORE:
                problems.append(f"{header}: score {top[:40]!r} beyond ±{MAX_SCORE:g}, clamped")
                score = math.copysign(MAX_SCORE, score)
            return score, f"header:{header}", problems
        problems.append(f"{header}: no score in {top[:80]!r}")
    return None, "", problems


def header_list_problems(headers: object) -> list[str]:
    if not isinstance(headers, list):
        return ["expected a list of header names"]
    return [
        f"{name!r} is not a header name"
        for name in headers
        if not isinstance(name, str) or not HEADER_NAME.match(name)
    ]
