"""Fuzz POST /api/v1/route for a while and count the answers by status class (issue 14: no 5xx
in a minute). The strategies are the suite's (tests/routing/hostile.py): valid-typed extreme
values, hostile messages, random JSON and random bodies.

    .venv/bin/python bench/fuzz_api.py               # 60 s
    .venv/bin/python bench/fuzz_api.py --seconds 10

Requests go through Django's test client in this process (no server: the figures are the
application's), on a fresh SQLite database, with DEBUG=1 as under `make run`, and sender
domains resolved by unbound on loopback (Debian package `unbound`). Exit status 1 on any 5xx, or
counts that cannot be written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
WORK = Path(tempfile.mkdtemp(prefix="pw-fuzz-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
os.environ["POOLWARDEN_VAR_DIR"] = str(WORK / "var")
os.environ["DEBUG"] = "1"
for name in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"):
    os.environ.pop(name, None)

from hypothesis import HealthCheck, Phase, Verbosity, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.routing import hostile  # noqa: E402

STRATEGIES = {
    "valid-typed": hostile.VALID_TYPED,
    "any JSON": hostile.ANY_JSON,
    "raw": hostile.RAW_BODY,
}


class TimeUp(Exception):
    pass


def fuzz(client, token: str, seconds: float) -> tuple[Counter, Counter, list[str]]:
    """(answers by kind and status class, by status code, the first 5xx bodies)."""
    classes, codes, failures = Counter(), Counter(), []
    end = time.monotonic() + seconds

    @settings(
        max_examples=10**9,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(
        st.sampled_from(sorted(STRATEGIES)).flatmap(lambda k: st.tuples(st.just(k), STRATEGIES[k]))
    )
    def one(case):
        if time.monotonic() > end:
            raise TimeUp
        kind, body = case
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        response = client.post(
            "/api/v1/route",
            data,
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token}",
        )
        classes[(kind, f"{response.status_code // 100}xx")] += 1
        codes[response.status_code] += 1
        if response.status_code >= 500 and len(failures) < 5:
            failures.append(f"{response.status_code} {response.content[:300]!r} for {data[:300]!r}")

    with contextlib.suppress(TimeUp):
        one()
    return classes, codes, failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    from tests.dns_server import serve

    (WORK / "dns").mkdir()
    with serve(WORK / "dns") as dns:
        os.environ["POOLWARDEN_NAMESERVERS"] = dns.nameserver
        import django

        django.setup()
        from django.core.management import call_command
        from django.test import Client

        from routing import tokens
        from routing.engine import get_engine, stop_engine

        call_command("migrate", verbosity=0)
        logging.getLogger("django.request").setLevel(logging.ERROR)  # 4xx are the point
        token = tokens.issue("fuzz")[1]
        start = time.monotonic()
        classes, codes, failures = fuzz(Client(HTTP_HOST="127.0.0.1"), token, args.seconds)
        elapsed = time.monotonic() - start
        try:
            get_engine().counters.flush()
            flushed = "flushed"
        except Exception as exc:
            flushed = f"NOT FLUSHED: {exc}"
        stop_engine()
    total = sum(codes.values())
    rate = total / elapsed
    print(f"fuzzed POST /api/v1/route for {elapsed:.0f} s: {total:,} requests ({rate:,.0f}/s)")
    for kind in sorted(STRATEGIES):
        counts = "  ".join(f"{c} {classes[(kind, c)]:>6,}" for c in ("2xx", "4xx", "5xx"))
        print(f"  {kind:<12} {counts}")
    print("  by status:  " + "  ".join(f"{code} {n:,}" for code, n in sorted(codes.items())))
    print(f"  counters:   {flushed}")
    for failure in failures:
        print("  5xx:", failure)
    sys.exit(1 if any(code >= 500 for code in codes) or flushed != "flushed" else 0)


if __name__ == "__main__":
    main()
