"""`manage.py check_blocklists`: JSON contract, summary, bad input."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reputation.models import AddressCheck, Blocklist
from tests.rbldnsd_server import proxy
from tests.reputation.conftest import make_list

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("check_blocklists", *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue() + f"{exc}\n"
    return 0, out.getvalue(), err.getvalue()


def test_json_is_one_object_with_the_contract_keys(catalogue):
    code, out, _ = run("--json")
    assert code == 0
    data = json.loads(out)
    assert {"listed", "errors", "misbehaving", "queries", "seconds"} <= set(data)
    assert {
        "address": "192.0.2.5",
        "zone": "zen.test",
        "codes": ["127.0.0.2"],
        "meanings": ["SBL"],
        "reason": "SBL listed, see http://zen.test/sbl?ip=192.0.2.5",
    } in data["listed"]
    assert data["errors"] == [{"zone": "zen.test", "address": "192.0.2.9", "kind": "error-code"}]
    assert data["misbehaving"] == [] and data["queries"] > 100 and data["seconds"] > 0
    assert data["elapsed"] >= data["seconds"]  # the whole run, its DNS included


def test_pool_and_list_options_narrow_the_sweep(catalogue):
    code, out, _ = run("--json", "--pool", "high-risk", "--list", "zen.test")
    data = json.loads(out)
    assert code == 0 and data["addresses"] == 17
    assert [(x["address"], x["zone"]) for x in data["listed"]] == [("198.51.100.3", "zen.test")]


def test_summary_names_listings_and_misbehaving_lists(catalogue):
    Blocklist.objects.create(zone="silent.test", max_qps=0)
    code, out, _ = run("--list", "zen.test", "--list", "silent.test")
    assert code == 0
    assert "LISTED  192.0.2.7 on zen.test: 127.0.0.2, 127.0.0.4" in out
    assert "MISBEHAVING  silent.test" in out


def test_ipv6_only_list_is_asked_the_pools_ipv6_addresses_only(catalogue):
    make_list("v6only.test", weight="major", ipv4=False, ipv6=True)
    code, out, _ = run("--json", "--list", "v6only.test")
    data = json.loads(out)
    assert code == 0 and data["misbehaving"] == [] and data["errors"] == []
    assert [(x["address"], x["zone"]) for x in data["listed"]] == [("2001:db8::25", "v6only.test")]
    asked = AddressCheck.objects.filter(blocklist__zone="v6only.test")
    assert set(asked.values_list("address", flat=True)) == {"2001:db8::25", "2001:db8::26"}
    assert data["queries"] == 2 + 2 + 1  # ::ffff:7f00:2 and :1, two addresses, one TXT


def test_rewriting_resolver_shows_as_misbehaving_and_errors(catalogue, rbldnsd, settings):
    with proxy(rbldnsd.port, rewrite=True) as rewriting:
        settings.POOLWARDEN_NAMESERVERS = [rewriting.nameserver]
        _, out, _ = run("--json", "--list", "minor.test")
    data = json.loads(out)
    assert data["misbehaving"] == ["minor.test"]
    assert {e["kind"] for e in data["errors"]} == {"outside-127"}
    assert data["listed"] == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pool", "nope"], "no pool named 'nope'"),
        (["--list", "nope.test"], "no blocklist with zone 'nope.test'"),
        (["--list", "keyed.test"], "blocklist 'keyed.test' needs an access key"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(catalogue, args, message):
    Blocklist.objects.create(zone="keyed.test", requires_key=True)
    code, out, err = run(*args)
    assert code == 2
    assert message in err and err.count("\n") == 1 and out == ""


def test_progress_bar_is_drawn_on_a_terminal_only(site, rbldnsd, tmp_path):
    """On a terminal (a pty) the bar is redrawn on stderr; piped, stderr stays empty."""
    import os
    import pty
    import subprocess
    import sys

    from tests.support import REPO

    doc = tmp_path / "lists.toml"
    doc.write_text('[[blocklists]]\nzone = "minor.test"\nmax_in_flight = 0\nmax_qps = 0\n')
    assert site.manage("config_import", str(doc)).returncode == 0
    site.env["POOLWARDEN_NAMESERVERS"] = rbldnsd.nameserver
    leader, follower = pty.openpty()
    done = subprocess.run(
        [sys.executable, "manage.py", "check_blocklists", "--list", "minor.test"],
        cwd=REPO,
        env=site.env,
        stdout=subprocess.PIPE,
        stderr=follower,
        timeout=120,
    )
    os.close(follower)
    drawn = os.read(leader, 65536).decode()
    os.close(leader)
    assert done.returncode == 0
    assert "\r[" in drawn and "look-ups" in drawn
    assert b"LISTED  192.0.2.12 on minor.test" in done.stdout
    piped = site.manage("check_blocklists", "--list", "minor.test")
    assert piped.returncode == 0 and piped.stderr == ""


def test_command_runs_as_a_user_would_without_traceback(site, rbldnsd):
    site.env["POOLWARDEN_NAMESERVERS"] = rbldnsd.nameserver
    for bad in (["--list", "nope.test"], ["--pool"], ["--json", "--colour"]):
        done = site.manage("check_blocklists", *bad)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.strip().count("\n") == 0, done.stderr
    done = site.manage("check_blocklists", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # The seeded real lists are asked through rbldnsd on loopback, which refuses them all.
    assert data["listed"] == [] and "zen.spamhaus.org" in data["misbehaving"]


def test_helo_names_of_pool_addresses_are_checked_on_domain_lists(catalogue):
    from routing.models import PoolAddress
    from tests.reputation.conftest import make_list

    make_list("dbl.test", kind="domain", weight="major", codes={"127.0.1.2": "spam domain"})
    PoolAddress.objects.filter(address="192.0.2.1").update(hostname="spam.example")
    PoolAddress.objects.filter(address="192.0.2.2").update(hostname="mta2.ham.example")
    code, out, err = run("--json", "--list", "dbl.test")
    assert code == 0, err
    listed = json.loads(out)["listed"]
    assert [(x["address"], x["zone"], x["codes"]) for x in listed] == [
        ("spam.example", "dbl.test", ["127.0.1.2"])
    ]


def test_a_list_another_run_is_sweeping_is_skipped_and_said_so(catalogue):
    from reputation.blocklists import runs

    busy = runs.start_run(trigger="schedule", zones=["minor.test"])
    code, out, _ = run("--list", "minor.test", "--list", "zen.test")
    assert code == 0
    assert f"SKIPPED  minor.test: run {busy.run.pk} is still sweeping it" in out
    assert "LISTED  192.0.2.5 on zen.test" in out
    data = json.loads(run("--json", "--list", "minor.test")[1])
    assert data["skipped"] == {"minor.test": f"run {busy.run.pk} is still sweeping it"}
