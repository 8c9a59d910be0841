"""Sender limits on a real Postfix: SASL-authenticated submission (a small Dovecot-protocol
authentication server, tests/sasl_server.py), two milter processes behind two Postfix
instances sharing one Redis, and the policy service behind a third. Each test uses logins of
its own, so the windows of one do not touch another's."""

from __future__ import annotations

import json
import smtplib
import time
import uuid

import pytest

from tests.e2e.conftest import CONFIG, Daemon, configured_postfix, make_site
from tests.e2e.test_postfix import delivered, message, pool_headers
from tests.postfix_instance import HIGH_RISK, NORMAL
from tests.sasl_server import SaslServer, password_for
from tests.support import free_port, redis_answers, skip_missing

pytestmark = pytest.mark.integration

REDIS = "redis://127.0.0.1:6379/7"
LIMITS = """
[[sender_limits]]
match = "*"
external_per_hour = 20
action = "block-today"

[[sender_limits]]
match = "blocky-*"
external_per_hour = 2
action = "block"

[[sender_limits]]
match = "risky-*"
external_per_hour = 2
action = "high-risk"
"""


@pytest.fixture(scope="module")
def limits_site(site_template, tmp_path_factory, dns_server):
    if not redis_answers(REDIS):
        skip_missing("redis", f"no Redis answers at {REDIS}", "apt-get install redis-server")
    config = CONFIG.replace("[routing]\n", '[routing]\ninternal_domains = ["example.com"]\n')
    site = make_site(
        site_template, tmp_path_factory.mktemp("limits-site"), dns_server, None, config + LIMITS
    )
    site.env["CACHE_URL"] = REDIS  # the processes share the windows there
    site.env["POOLWARDEN_FLUSH_INTERVAL"] = "1"  # restrictions reach the database at once
    yield site
    import redis

    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match="*pw:limit:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(scope="module")
def sasl():
    with SaslServer(free_port()) as server:
        yield server


@pytest.fixture(scope="module")
def two_milters(limits_site, sink, sasl):
    """Two milter processes, each behind a Postfix of its own: (port A, port B)."""
    daemons = [Daemon(limits_site, "milter") for _ in range(2)]
    instances = []
    for daemon in daemons:
        daemon.start()
        instances.append(
            configured_postfix(
                limits_site, sink, "--milter", f"127.0.0.1:{daemon.port}", main=sasl.main_cf()
            )
        )
    yield [i.smtpd_port for i in instances]
    for instance in instances:
        instance.cleanup()
    for daemon in daemons:
        daemon.stop()


@pytest.fixture(scope="module")
def policyd_port(limits_site, sink, sasl):
    daemon = Daemon(limits_site, "policyd", "--nexthop", f"[127.0.0.1]:{sink.port}")
    daemon.start()
    instance = configured_postfix(
        limits_site,
        sink,
        "--adapter",
        "policyd",
        "--policyd",
        f"127.0.0.1:{daemon.port}",
        main=sasl.main_cf(),
    )
    yield instance.smtpd_port
    instance.cleanup()
    daemon.stop()


def login(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit(port: int, user: str, rcpt: str = "bob@sink.test") -> str:
    """Send one message as SASL user `user`; its text (raises SMTPDataError on a reject)."""
    text = message(f"{user}@both.test")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.login(user, password_for(user))
        client.sendmail(f"{user}@both.test", [rcpt], text.encode())
    return text


def rejected(port: int, user: str) -> str:
    with pytest.raises(smtplib.SMTPDataError) as error:
        submit(port, user)
    code, text = error.value.smtp_code, error.value.smtp_error.decode()
    # Postfix puts "<DATA>: Data command rejected:" before a policy service's text.
    assert code == 550 and text.startswith("5.7.1 "), (code, text)
    assert "Poolwarden: sender " in text
    return text


def senders(site) -> list[dict]:
    result = site.manage("senders", "--restricted", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["senders"]


def wait_restricted(site, user: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [s for s in senders(site) if s["sender"] == user]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"{user} not listed as restricted")


def test_the_21st_external_recipient_is_rejected_across_two_milters(two_milters, sink):
    alice, bob = login("alice"), login("bob")
    texts = [submit(two_milters[i % 2], alice) for i in range(20)]
    text = rejected(two_milters[0], alice)
    assert f"sender {alice} reached its limit of 20 external recipients per hour" in text
    assert rejected(two_milters[1], alice)  # the other process holds it too
    assert delivered(sink, texts[-1]).source in NORMAL
    assert delivered(sink, submit(two_milters[1], bob)).source in NORMAL  # another user


def test_block_holds_until_released_and_then_mail_flows(two_milters, limits_site, sink):
    import redis

    user = login("blocky")
    submit(two_milters[0], user)
    submit(two_milters[1], user)
    assert "until an administrator releases it" in rejected(two_milters[0], user)
    listed = wait_restricted(limits_site, user)
    restriction = listed["restrictions"][0]
    assert restriction["limit"] == {
        "name": "external_per_hour",
        "count": 2,
        "window": 3600,
        "maximum": 2,
    }
    assert restriction["action"] == "block" and restriction["until"] is None
    client = redis.Redis.from_url(REDIS)
    [key] = client.keys(f"*pw:limit:{user}:hold")  # under the site's cache key prefix
    assert client.pttl(key) == -1  # no expiry: it outlasts the hour
    result = limits_site.manage("senders", "--release", user, "--note", "e2e")
    assert result.returncode == 0, result.stderr
    assert delivered(sink, submit(two_milters[1], user)).source in NORMAL


def test_high_risk_moves_the_rest_of_the_hour_to_the_high_risk_pool(two_milters, sink):
    user = login("risky")
    first = delivered(sink, submit(two_milters[0], user))
    delivered(sink, submit(two_milters[1], user))
    moved = [delivered(sink, submit(two_milters[i % 2], user)) for i in range(2)]
    assert first.source in NORMAL
    assert all(d.source == HIGH_RISK for d in moved)
    assert "sender-limit" in pool_headers(moved[0])[1]


def test_policyd_rejects_the_21st_external_recipient(policyd_port, sink):
    carol, dave = login("carol"), login("dave")
    texts = [submit(policyd_port, carol) for _ in range(20)]
    assert f"sender {carol} reached its limit of 20" in rejected(policyd_port, carol)
    assert delivered(sink, texts[-1]).source in NORMAL
    assert delivered(sink, submit(policyd_port, dave)).source in NORMAL


def test_internal_recipients_do_not_count_against_the_external_limit(policyd_port, sink):
    user = login("blocky")  # 2 external recipients an hour
    for _ in range(3):
        submit(policyd_port, user, rcpt="colleague@example.com")
    submit(policyd_port, user)
    submit(policyd_port, user)
    rejected(policyd_port, user)


def test_the_milter_counts_every_recipient_of_a_message(two_milters, sink):
    user = login("blocky")  # 2 external recipients an hour
    text = message(f"{user}@both.test")
    with smtplib.SMTP("127.0.0.1", two_milters[0], timeout=30) as client:
        client.login(user, password_for(user))
        client.sendmail(f"{user}@both.test", ["a@sink.test", "b@sink.test"], text.encode())
    delivered(sink, text)
    rejected(two_milters[1], user)  # a third recipient
