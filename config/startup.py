"""Turn a configuration error at start-up into one line on stderr and exit status 2."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from config.env import ConfigError


@contextmanager
def config_errors_exit() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        print(f"poolwarden: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


@contextmanager
def database_errors_exit() -> Iterator[None]:
    """A command that cannot reach its database, or finds it unmigrated, says so in a line."""
    from django.db import DatabaseError

    try:
        yield
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = (
            " (run `python manage.py migrate`?)"
            if "no such table" in first or ("does not exist" in first and "relation" in first)
            else ""
        )
        print(f"poolwarden: database error: {first}{hint}", file=sys.stderr)
        raise SystemExit(1) from None
