"""Typed readers for the environment variables that configure Poolwarden.

Every reader raises `ConfigError` with a one-line message that names the variable,
so a bad value stops start-up with a clear error instead of a traceback
(`manage.py`, `config.wsgi` and `config.celery` print it and exit with status 2).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path
from urllib.parse import urlsplit

import environ
from django.core.exceptions import ImproperlyConfigured

TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}

DATABASE_SCHEMES = {"sqlite", "postgres", "postgresql", "pgsql"}
CACHE_SCHEMES = {"locmem", "redis", "rediss", "dummy"}
BROKER_SCHEMES = {"filesystem", "memory", "redis", "rediss", "amqp", "amqps", "pyamqp"}
EMAIL_SCHEMES = {"smtp", "smtps", "smtp+tls", "smtp+ssl", "consolemail", "filemail", "memorymail"}


class ConfigError(ImproperlyConfigured):
    """A configuration variable is missing or has a value Poolwarden cannot use."""


def get_str(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value.strip() == "" else value.strip()


def get_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    if value.strip().lower() in TRUE:
        return True
    if value.strip().lower() in FALSE:
        return False
    raise ConfigError(f"{name}: expected a boolean (1/0, true/false, yes/no), got {value!r}")


def get_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = get_str(name)
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ConfigError(f"{name}: expected at least {minimum}, got {value!r}")
    return number


def get_float(name: str, default: float) -> float:
    value = get_str(name)
    if value is None:
        return default
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not (number > 0 and number != float("inf")):
        raise ConfigError(f"{name}: expected a positive number, got {value!r}")
    return number


def split_nameserver(entry: str) -> tuple[str, int]:
    """`host`, `host:port`, `[v6]:port` or a bare IPv6 address as (host, port); ValueError
    for a port that is not a number."""
    if entry.startswith("["):
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else 53
    if entry.count(":") == 1:
        host, port = entry.split(":")
        return host, int(port)
    return entry, 53


def nameservers(name: str) -> list[str]:
    """Resolvers as `host`, `host:port` or `[v6]:port`, validated."""
    entries = get_list(name)
    for entry in entries:
        try:
            host, port = split_nameserver(entry)
            ipaddress.ip_address(host)
            if not 0 < port < 65536:
                raise ValueError
        except ValueError:
            raise ConfigError(
                f"{name}: {entry!r} is not an IP address with an optional :port"
            ) from None
    return entries


def get_list(name: str, default: list[str] | None = None) -> list[str]:
    value = get_str(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def checked_url(name: str, value: str, schemes: set[str]) -> str:
    """Return `value` if it is a URL with one of `schemes` and a valid port, else raise."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{name}: cannot parse {redact(value)!r}: {exc}") from None
    if not parts.scheme or "://" not in value:
        raise ConfigError(f"{name}: not a URL: {redact(value)!r}")
    if parts.scheme not in schemes:
        known = ", ".join(f"{s}://" for s in sorted(schemes))
        raise ConfigError(f"{name}: unsupported scheme {parts.scheme!r} (use one of {known})")
    return value


def redact(url: str) -> str:
    """Hide the password of a URL so that error messages never print secrets."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable>"
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def writable_dir(path: Path, *, why: str, variable: str = "POOLWARDEN_VAR_DIR") -> Path:
    """`path`, created if missing; a one-line `ConfigError` naming it and the fix when this
    user cannot create it or write in it (an empty var/ owned by root, a read-only mount)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        problem = None if os.access(path, os.W_OK | os.X_OK) else "permission denied"
    except OSError as exc:
        problem = (exc.strerror or type(exc).__name__).lower()
    if problem:
        raise ConfigError(
            f"{variable}: cannot write {path} ({problem}), needed for {why}; "
            f"make it writable by this user, or set {variable} to a folder that is"
        )
    return path


def database(name: str, default_path: Path) -> dict:
    """DATABASE_URL as a Django DATABASES entry; SQLite at `default_path` when unset."""
    url = get_str(name)
    if url is None:
        writable_dir(default_path.parent, why="the SQLite database (DATABASE_URL unset)")
        return sqlite_config(default_path)
    checked_url(name, url, DATABASE_SCHEMES)
    config = environ.Env.db_url_config(url)
    if config["ENGINE"].endswith("sqlite3"):
        if not config["NAME"]:
            raise ConfigError(f"{name}: a sqlite URL needs a file path (sqlite:////abs/path.db)")
        return sqlite_config(Path(config["NAME"]))
    if not config["NAME"]:
        raise ConfigError(f"{name}: the URL names no database (postgres://user@host:5432/NAME)")
    config["CONN_MAX_AGE"] = get_int("DATABASE_CONN_MAX_AGE", 60)
    config["CONN_HEALTH_CHECKS"] = True
    # PostgreSQL's JIT spends 100-250 ms compiling a dashboard aggregate that runs in 50 ms
    # without it (bench/dashboard.py); off, unless the URL passes options of its own.
    options = config.setdefault("OPTIONS", {})
    options.setdefault("options", "-c jit=off")
    # Bounded waits (libpq parameters): a database that is down answers in seconds, and one
    # that stops answering mid-query (a hung network, a blackholed address) is given up on
    # instead of holding a worker or the policy refresher forever.
    options.setdefault("connect_timeout", get_int("DATABASE_CONNECT_TIMEOUT", 5, minimum=1))
    options.setdefault("keepalives", 1)
    options.setdefault("keepalives_idle", 10)
    options.setdefault("keepalives_interval", 3)
    options.setdefault("keepalives_count", 3)
    options.setdefault("tcp_user_timeout", 20_000)  # ms unacknowledged before giving up
    return config


def sqlite_config(path: Path) -> dict:
    # WAL and IMMEDIATE transactions let the web server, the worker and beat share one file
    # without "database is locked" errors under normal load.
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": str(path),
        "OPTIONS": {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }


def cache(name: str) -> dict:
    """CACHE_URL as a Django CACHES entry; local memory when unset."""
    url = get_str(name, "locmem://")
    parts = urlsplit(checked_url(name, url, CACHE_SCHEMES))
    if parts.scheme == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "pw"}
    if parts.scheme == "dummy":
        return {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
    # Bounded waits: a Redis that is down or hangs costs a request at most a second (and the
    # routing engine then stops asking it for a while, see routing.dns.DomainChecker).
    return {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": url,
        "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
    }


def broker(name: str) -> str | None:
    """CELERY_BROKER_URL, validated; None when unset (the caller picks the embedded broker)."""
    url = get_str(name)
    return None if url is None else checked_url(name, url, BROKER_SCHEMES)


def email(name: str) -> dict:
    """EMAIL_URL as Django EMAIL_* settings; {} when unset (Django's EMAIL_* defaults apply)."""
    url = get_str(name)
    if url is None:
        return {}
    checked_url(name, url, EMAIL_SCHEMES)
    config = environ.Env.email_url_config(url)
    return {key: value for key, value in config.items() if value not in (None, "")}
