"""The environment readers map URLs to Django settings."""

from __future__ import annotations

import pytest

from config import env


def test_postgres_url_becomes_a_postgresql_database(monkeypatch, tmp_path):
    monkeypatch.setenv("DATABASE_URL", "postgres://pw:secret@127.0.0.1:5432/poolwarden")
    config = env.database("DATABASE_URL", tmp_path / "x.db")
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["NAME"], config["HOST"], config["PORT"]) == ("poolwarden", "127.0.0.1", 5432)


def test_missing_database_url_means_sqlite_file_with_wal(monkeypatch, tmp_path):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = env.database("DATABASE_URL", tmp_path / "x.db")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "x.db")
    assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]


def test_redis_cache_url_uses_djangos_redis_backend(monkeypatch):
    monkeypatch.setenv("CACHE_URL", "redis://127.0.0.1:6379/3")
    assert env.cache("CACHE_URL") == {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/3",
        "OPTIONS": {"socket_connect_timeout": 1.0, "socket_timeout": 1.0},
    }


def test_email_url_sets_host_port_and_tls(monkeypatch):
    monkeypatch.setenv("EMAIL_URL", "smtp+tls://alerts:pw@smtp.example.net:587")
    config = env.email("EMAIL_URL")
    assert config["EMAIL_HOST"] == "smtp.example.net"
    assert config["EMAIL_PORT"] == 587
    assert config["EMAIL_USE_TLS"] is True


@pytest.mark.parametrize("value", ["1", "true", "YES", "on"])
def test_truthy_values(monkeypatch, value):
    monkeypatch.setenv("X_FLAG", value)
    assert env.get_bool("X_FLAG", False) is True


def test_list_ignores_blanks(monkeypatch):
    monkeypatch.setenv("X_LIST", " a.example, ,b.example ")
    assert env.get_list("X_LIST") == ["a.example", "b.example"]
