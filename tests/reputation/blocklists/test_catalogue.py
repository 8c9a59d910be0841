"""The `[[blocklists]]` section of the configuration document and the seeded catalogue."""

from __future__ import annotations

import io
import tomllib

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from reputation.models import Blocklist
from routing.configdoc import apply_plan, export_document, plan_document

pytestmark = pytest.mark.django_db

KEY = "abcdefghijklmnopqrstuvwxyz"
DOC = """
[[blocklists]]
zone = "zen.test"
kind = "ip"
weight = "major"
enabled = true
ipv6 = true
error_codes = ["127.255.255.252", "127.255.255.254", "127.255.255.255"]
delist_url = "https://zen.test/remove"
codes = { "127.0.0.2" = "SBL", "127.0.0.4" = "XBL" }
"""


def run_import(text: str, *args: str, tmp_path) -> tuple[int, str, str]:
    path = tmp_path / "pw.toml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("config_import", str(path), *args, stdout=out, stderr=err)
    except CommandError as exc:
        return exc.returncode, out.getvalue(), err.getvalue() + f"{exc}\n"
    return 0, out.getvalue(), err.getvalue()


def test_seed_has_live_lists_and_no_dead_ones():
    zones = set(Blocklist.objects.values_list("zone", flat=True))
    assert {"zen.spamhaus.org", "bl.spamcop.net", "psbl.surriel.com"} <= zones
    assert not {"dnsbl.sorbs.net", "ix.dnsbl.manitu.net"} & zones
    zen = Blocklist.objects.get(zone="zen.spamhaus.org")
    assert zen.weight == "major" and zen.ipv6 and "127.255.255.0/24" in zen.error_codes
    assert not Blocklist.objects.get(zone="zen.dq.spamhaus.net").enabled  # needs a key


def test_seed_schedules_a_sweep_every_30_minutes():
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.get(task="reputation.sweep")
    assert (task.interval.every, task.interval.period) == (30, "minutes")
    assert task.enabled


def test_export_then_import_changes_nothing():
    Blocklist.objects.filter(zone="zen.dq.spamhaus.net").update(access_key=KEY)
    assert plan_document(export_document()).changes == []


def test_export_never_contains_an_access_key():
    Blocklist.objects.filter(zone="zen.dq.spamhaus.net").update(access_key=KEY)
    text = export_document()
    assert KEY not in text and "access_key" not in text
    zones = [b["zone"] for b in tomllib.loads(text)["blocklists"]]
    assert "zen.spamhaus.org" in zones


def test_import_creates_a_list_and_keeps_its_key_when_the_document_has_none():
    apply_plan(plan_document(DOC + f'access_key = "{KEY}"\n'))
    zen = Blocklist.objects.get(zone="zen.test")
    assert zen.codes == {"127.0.0.2": "SBL", "127.0.0.4": "XBL"} and zen.access_key == KEY
    apply_plan(plan_document(DOC.replace('"major"', '"minor"')))
    zen.refresh_from_db()
    assert zen.weight == "minor" and zen.access_key == KEY
    assert plan_document(DOC.replace('"major"', '"minor"')).changes == []


def test_prune_removes_lists_the_document_does_not_name():
    apply_plan(plan_document(DOC, prune=True))
    assert list(Blocklist.objects.values_list("zone", flat=True)) == ["zen.test"]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (('"major"', '"huge"'), "blocklists[0].weight: expected one of"),
        (('"127.0.0.4"', '"10.0.0.4"'), "10.0.0.4 is outside 127.0.0.0/8"),
        (('zone = "zen.test"', 'zone = "not a zone"'), "is not a lowercase DNS zone name"),
        (("ipv6 = true", 'ipv6 = "yes"'), "blocklists[0].ipv6: expected true or false"),
        (("enabled = true", "colour = 1"), "unknown key 'colour'"),
        (("enabled = true", 'access_key = "Bad Key!"'), "access_key: an access key is"),
    ],
)
def test_bad_blocklist_is_one_line_exit_2_and_changes_nothing(tmp_path, change, problem):
    before = list(Blocklist.objects.values_list("zone", "weight"))
    code, _, err = run_import(DOC.replace(*change), tmp_path=tmp_path)
    assert code == 2
    assert problem in err and "Bad Key" not in err
    assert list(Blocklist.objects.values_list("zone", "weight")) == before
