"""Fixtures for the outage tests: proxies in front of PostgreSQL and Redis, and a stack of
real processes (gunicorn, policyd, the milter under a real Postfix, a Celery worker) that
reaches them only through the proxies. Module-scoped: started once, stopped cleanly."""

from __future__ import annotations

import logging

import pytest

from tests.postfix_instance import POSTFIX, PostfixInstance, Sink
from tests.reliability.stack import POSTGRES, REDIS, Stack, postgres_answers
from tests.support import free_port, redis_answers, require_tool, skip_missing
from tests.tcp_proxy import TcpProxy

REFRESH = "2"  # POOLWARDEN_POLICY_REFRESH: an outage shows in decisions within seconds
FLUSH = "1"  # POOLWARDEN_FLUSH_INTERVAL: counts reach the database soon after it is back


@pytest.fixture(scope="module")
def db_proxy():
    if not postgres_answers():
        skip_missing(
            "postgresql", "no PostgreSQL on 127.0.0.1:5432 (trust, user postgres)", ".ci/run"
        )
    proxy = TcpProxy(POSTGRES).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def redis_proxy():
    if not redis_answers(f"redis://{REDIS[0]}:{REDIS[1]}"):
        skip_missing("redis", "no Redis on 127.0.0.1:6379", ".ci/run")
    proxy = TcpProxy(REDIS).start()
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def stack(db_proxy, redis_proxy, dns_server):
    from django.conf import settings

    from tests.support import delete_redis_namespace

    require_tool("postfix", POSTFIX, "/usr/sbin/smtp-source", install="apt-get install postfix")
    namespace = settings.NAMESPACE
    stack = Stack(
        database=namespace.replace("-", "_"),
        db_proxy=db_proxy.address,
        cache_url=f"redis://{redis_proxy.address}/2",
        nameserver=dns_server.nameserver,
        settings="tests.reliability.settings",
        POOLWARDEN_POLICY_REFRESH=REFRESH,
        POOLWARDEN_FLUSH_INTERVAL=FLUSH,
    )
    try:
        stack.create()
        yield stack
    finally:
        stack.cleanup()
        delete_redis_namespace(f"redis://{REDIS[0]}:{REDIS[1]}/2", namespace)


@pytest.fixture(scope="module")
def sink():
    # aiosmtpd logs every SMTP command at INFO: thousands of lines that bury a failure.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    port = free_port()
    with Sink(port) as handler:
        handler.port = port
        yield handler


@pytest.fixture(scope="module")
def milter_postfix(stack, sink):
    """A Postfix whose milter is the stack's, configured by `postfix_config`."""
    milter_port = stack.start_milter()
    instance = PostfixInstance(relay_port=sink.port, smtpd_port=free_port())
    args = ["--milter", f"127.0.0.1:{milter_port}", "--nexthop", f"[127.0.0.1]:{sink.port}"]
    args += ["--header-checks", str(instance.base / "header_checks")]
    sections = {
        section: stack.manage("postfix_config", "--section", section, *args)
        for section in ("main", "master", "header-checks")
    }
    instance.configure(main=sections["main"], master=sections["master"])
    instance.files["header_checks"] = sections["header-checks"]
    instance.start()
    yield instance
    instance.cleanup()
