"""A real Postfix sends only from the address Poolwarden chose, with that address's HELO name,
and routes and counts its own bounces through the milter.

Postfix in a temporary directory, configured by `manage.py postfix_config` with the milter on
a unix socket, relays to the aiosmtpd sink (which records each connection's source address and
HELO name, and refuses `reject@` with 550 5.1.1). The normal pool is 127.0.0.2 and
203.0.113.151, an address on no interface until a test adds it to `lo` (`ip`, as root); the
high-risk pool is 127.0.0.3 and 127.0.0.5. Rotation changes reach the milter by its policy
refresh (0.5 s here), never by a Postfix reload.
"""

from __future__ import annotations

import email
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import Daemon, configured_postfix, make_site
from tests.e2e.test_postfix import delivered, message, pool_headers, send
from tests.support import require_tool

pytestmark = pytest.mark.integration

ABSENT = "203.0.113.151"  # TEST-NET-3: on no interface until a test adds it
HIGH_RISK = ("127.0.0.3", "127.0.0.5")
HELO = {"127.0.0.2": "mail-a.pw.test", ABSENT: "mail-b.pw.test", "127.0.0.3": "risky-a.pw.test"}
REFRESH = 0.5
CONFIG = """\
[routing]
trusted_score_headers = ["X-Spam-Score"]
spamd_enabled = {spamd_enabled}
spamd_address = "127.0.0.1:{spamd_port}"

[[pools]]
name = "normal"
kind = "normal"
ranges = ["127.0.0.2/32", "203.0.113.151/32"]
out_of_rotation = {{ "203.0.113.151" = "not on this host until a test adds it" }}
hostnames = {{ "127.0.0.2" = "mail-a.pw.test", "203.0.113.151" = "mail-b.pw.test" }}

[[pools]]
name = "high-risk"
kind = "high-risk"
ranges = ["127.0.0.3/32", "127.0.0.5/32"]
take_listed_out = false
hostnames = {{ "127.0.0.3" = "risky-a.pw.test" }}
"""
IP = "/sbin/ip"  # iproute2 installs it here, merged /usr or not


@pytest.fixture(scope="module")
def site(site_template, tmp_path_factory, dns_server):
    site = make_site(site_template, tmp_path_factory.mktemp("pw-addr"), dns_server, None, CONFIG)
    site.env["POOLWARDEN_POLICY_REFRESH"] = str(REFRESH)
    site.env["POOLWARDEN_FLUSH_INTERVAL"] = "1"
    return site


@pytest.fixture(scope="module")
def milter(site):
    folder = Path(tempfile.mkdtemp(prefix="pw-milter-"))
    folder.chmod(0o755)  # Postfix's cleanup and smtpd connect as user postfix
    daemon = Daemon(site, "milter", path=str(folder / "milter"))
    daemon.start()
    yield daemon
    daemon.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def postfix(site, milter, sink):
    instance = configured_postfix(site, sink, "--milter", milter.listen)
    yield instance
    instance.cleanup()


def set_rotation(site, **active: bool) -> None:
    """Put addresses (keyword: the address with underscores) in or out of rotation, in the
    database only; then wait for the milter's policy refresh."""
    changes = {name.replace("_", "."): on for name, on in active.items()}
    code = (
        "from routing.models import PoolAddress as A\n"
        f"for address, on in {changes!r}.items():\n"
        "    A.objects.filter(address=address).update(active=on, reason='' if on else 'test')\n"
    )
    result = site.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    time.sleep(4 * REFRESH)


def message_key(text: str) -> bytes:
    return email.message_from_string(text)["X-Test-Id"].encode()


def queued(postfix) -> str:
    listing = subprocess.run(
        ["/usr/sbin/postqueue", "-c", str(postfix.base), "-p"], capture_output=True, text=True
    )
    return listing.stdout


def wait_log(postfix, needle: str, count: int = 1, timeout: float = 30) -> list[str]:
    """The maillog lines containing `needle`, once there are `count` of them."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [line for line in postfix.log().splitlines() if needle in line]
        if len(lines) >= count or time.monotonic() > deadline:
            assert len(lines) >= count, f"{needle!r} not logged {count}x: {postfix.log()[-3000:]}"
            return lines
        time.sleep(0.2)


@pytest.fixture
def absent_in_rotation(site, postfix):
    """The absent address is the normal pool's only one in rotation; afterwards it is off
    `lo` and out of rotation again."""
    require_tool("iproute2", IP, install="apt-get install iproute2")
    set_rotation(site, **{"127_0_0_2": False, ABSENT.replace(".", "_"): True})
    yield ABSENT
    subprocess.run([IP, "addr", "del", f"{ABSENT}/32", "dev", "lo"], capture_output=True)
    set_rotation(site, **{"127_0_0_2": True, ABSENT.replace(".", "_"): False})


def test_mail_for_an_address_missing_from_the_host_waits_then_leaves_from_it(
    absent_in_rotation, postfix, sink
):
    text = message("amy@both.test")
    send(postfix.smtpd_port, "amy@both.test", text)
    transport = f"postfix/pw-{ABSENT.replace('.', '-')}/smtp"
    deferred = wait_log(postfix, "status=deferred", count=2)  # the first try and one retry
    assert all(transport in line and "dsn=4.4.0" in line for line in deferred), deferred
    assert f"bind {ABSENT}: Cannot assign requested address" in postfix.log()
    assert not [d for d in sink.deliveries if message_key(text) in d.data]
    assert "amy@both.test" in queued(postfix)

    added = subprocess.run(
        [IP, "addr", "add", f"{ABSENT}/32", "dev", "lo"], capture_output=True, text=True
    )
    if added.returncode != 0:
        pytest.skip(f"cannot add {ABSENT} to lo here (not root?): {added.stderr.strip()}")
    postfix.flush()
    delivery = sink.wait_for(lambda d: message_key(text) in d.data)
    assert delivery.source == ABSENT and delivery.helo == HELO[ABSENT]
    assert [d for d in sink.deliveries if message_key(text) in d.data] == [delivery]


def bounce_of(postfix, sink, sender: str):
    """Send a message the sink refuses (550 5.1.1) and return Postfix's bounce of it."""
    text = message(sender)
    send(postfix.smtpd_port, sender, text, rcpt="reject@sink.test")
    return sink.wait_for(lambda d: d.mail_from == "<>" and message_key(text) in d.data)


def dsn_counts(site) -> tuple[list[tuple], list[tuple]]:
    code = (
        "from routing.models import DSNCount as C, DSNSample as S\n"
        "import json\n"
        "print(json.dumps([list(C.objects.values_list('pool', 'recipient_domain', "
        "'original_domain', 'status', 'reporting_mta', 'count')), "
        "list(S.objects.values_list('original_recipient', 'status', 'diagnostic'))]))\n"
    )
    result = site.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    counts, samples = json.loads(result.stdout.strip().splitlines()[-1])
    return [tuple(row) for row in counts], [tuple(row) for row in samples]


def test_postfix_bounces_pass_the_milter_follow_rotation_and_are_counted(site, postfix, sink):
    first = bounce_of(postfix, sink, "bea@both.test")
    assert first.source in HIGH_RISK and first.rcpt_to == ("bea@both.test",)
    headers, reasons = pool_headers(first)
    assert headers == [f"high-risk {first.source}"] and reasons == "dsn"  # {mail_addr} empty

    other = next(a for a in HIGH_RISK if a != first.source)
    set_rotation(site, **{first.source.replace(".", "_"): False})
    try:
        second = bounce_of(postfix, sink, "cy@both.test")
    finally:
        set_rotation(site, **{first.source.replace(".", "_"): True})
    assert second.source == other
    assert pool_headers(second)[0] == [f"high-risk {other}"]

    reporting_mta = f"pw-test-{postfix.smtpd_port}.localdomain"
    wanted = ("high-risk", "both.test", "sink.test", "5.1.1", reporting_mta)
    deadline = time.monotonic() + 30
    while True:
        counts, samples = dsn_counts(site)
        total = sum(row[-1] for row in counts if row[:-1] == wanted)
        if total >= 2 or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert total == 2, counts
    replies = [s for s in samples if s[:2] == ("reject@sink.test", "5.1.1")]
    assert replies and all("550 5.1.1 no such user here" in s[2] for s in replies), samples


def test_the_receiver_sees_each_addresses_own_helo_name(postfix, sink):
    sent = [message("dee@both.test")]
    send(postfix.smtpd_port, "dee@both.test", sent[0])
    for n in range(6):  # high-risk by score, from sender domains that spread over both addresses
        sender = f"spam@spread{n}.test"  # NXDOMAIN; the rendezvous hash uses both addresses
        sent.append(message(sender, X_Spam_Score="9.0"))
        send(postfix.smtpd_port, sender, sent[-1])
    deliveries = [delivered(sink, text) for text in sent]
    myhostname = f"pw-test-{postfix.smtpd_port}.localdomain"
    assert deliveries[0].source == "127.0.0.2"
    assert {d.source for d in deliveries[1:]} == set(HIGH_RISK)
    for delivery in deliveries:
        assert delivery.helo == HELO.get(delivery.source, myhostname), delivery.source
