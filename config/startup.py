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
