"""`manage.py route` as a user runs it, against a real DNS server on loopback."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.support import DSN_SAMPLES

pytestmark = pytest.mark.integration


@pytest.fixture
def dns_site(site, dns_server):
    site.env["POOLWARDEN_NAMESERVERS"] = dns_server.nameserver
    site.env["POOLWARDEN_DNS_TIMEOUT"] = "1.5"
    return site


def test_json_output_has_the_contract_keys(dns_site, tmp_path):
    message = tmp_path / "m.eml"
    message.write_bytes(b"From: a@both.test\r\nX-Spam-Score: 9.5\r\n\r\nhi\r\n")
    result = dns_site.manage("route", str(message), "--mail-from", "a@neither.test", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["pool"] == "high-risk"
    assert data["reasons"] == ["spam-score", "no-a-mx"]
    assert data["sender_domain"] == "neither.test" and data["spam_score"] == 9.5
    assert data["source_ip"].startswith("198.51.100.") and data["is_dsn"] is False


def test_message_on_stdin(dns_site):
    result = dns_site.manage("route", "-", input="From: someone@both.test\n\nhello\n")
    assert result.returncode == 0, result.stderr
    assert "pool:          normal (normal)" in result.stdout
    assert "sender domain: both.test" in result.stdout


def test_real_postfix_bounce_from_null_sender(dns_site):
    sample = DSN_SAMPLES / "postfix-bounce-user-unknown.eml"
    result = dns_site.manage("route", str(sample), "--mail-from", "<>", "--json")
    data = json.loads(result.stdout)
    assert (data["pool"], data["is_dsn"]) == ("high-risk", True)
    assert data["dsn_signals"] == ["null-sender", "multipart-report"]
    assert data["dsn"]["recipients"][0]["status"].startswith("5.")
    assert data["dsn"]["recipients"][0]["refined_class"] == "unknown-user"


def test_spam_score_flag(dns_site):
    result = dns_site.manage("route", "-", "--spam-score", "6", input="From: a@both.test\n\n")
    assert "reasons:       spam-score" in result.stdout


def test_missing_file_is_a_one_line_error(dns_site, tmp_path):
    result = dns_site.manage("route", str(tmp_path / "nope.eml"))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "cannot read" in result.stderr


def test_bad_score_is_a_usage_error(dns_site):
    result = dns_site.manage("route", "-", "--spam-score", "lots", input="")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_bad_nameserver_setting_is_a_configuration_error(dns_site):
    dns_site.env["POOLWARDEN_NAMESERVERS"] = "dns.example.net"
    result = dns_site.manage("route", "-", input="")
    assert result.returncode == 2
    assert "POOLWARDEN_NAMESERVERS: 'dns.example.net' is not an IP address" in result.stderr


def test_decision_is_counted(dns_site):
    dns_site.manage("route", "-", "--source", "cli-test", input="From: a@both.test\n\n")
    result = dns_site.manage(
        "shell",
        "-c",
        "from routing.models import RoutingCount as R; print(list(R.objects.values_list("
        "'pool', 'source', 'count')))",
    )
    assert "('normal', 'cli-test', 1)" in result.stdout


def test_envelope_only_never_reads_stdin(dns_site):
    """In cron or a script stdin is a pipe that may never close: without `-` it is not read."""
    import subprocess
    import sys

    from tests.support import REPO

    proc = subprocess.Popen(
        [sys.executable, "manage.py", "route", "--mail-from", "a@both.test", "--json"],
        cwd=REPO,
        env=dns_site.env,
        stdin=subprocess.PIPE,  # open, never written, never closed
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = _wait_keeping_stdin_open(proc)
    finally:
        proc.kill()
        proc.stdin.close()
    assert proc.returncode == 0, err
    assert json.loads(out)["pool"] == "normal"


def _wait_keeping_stdin_open(proc, timeout: float = 60):
    import time

    deadline = time.monotonic() + timeout
    while proc.poll() is None:
        assert time.monotonic() < deadline, "route waited on stdin without being given -"
        time.sleep(0.05)
    return proc.stdout.read(), proc.stderr.read()


def test_no_file_and_no_envelope_is_a_usage_error(dns_site):
    result = dns_site.manage("route", input="From: a@both.test\n\n")
    assert result.returncode == 2
    assert "give a message FILE, - for stdin, or --mail-from" in result.stderr


def test_decision_is_printed_when_its_count_cannot_be_saved(dns_site):
    """The count is lost, the decision is not: one line on stderr says so, and it exits 0."""
    database = sqlite3.connect(Path(dns_site.env["POOLWARDEN_VAR_DIR"]) / "poolwarden.sqlite3")
    database.execute("DROP TABLE routing_routingcount")  # the policy loads, the flush fails
    database.commit()
    database.close()
    result = dns_site.manage("route", "--mail-from", "a@both.test", "--json", timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sender_domain"] == "both.test"
    unsaved = [line for line in result.stderr.splitlines() if "counts not saved" in line]
    assert len(unsaved) == 1 and "routing_routingcount" in unsaved[0]


def test_without_a_database_at_start_route_says_so_in_one_line(dns_site):
    """Nothing to route by: no decision (never a wrong one), no traceback, EX_TEMPFAIL (75)."""
    from tests.support import free_port

    dns_site.env["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:{free_port()}/poolwarden"
    result = dns_site.manage("route", "--mail-from", "a@both.test", "--json", timeout=60)
    assert result.returncode == 75, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("CommandError: routing policy unavailable: connection")
