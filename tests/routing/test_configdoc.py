"""config_export / config_import: the pools part of the configuration document."""

from __future__ import annotations

import io
import tomllib

import pytest
from django.core.management import call_command

from routing.configdoc import DocumentError, apply_plan, export_document, plan_document
from routing.models import Pool, PoolAddress
from tests.support import REPO

pytestmark = pytest.mark.django_db

DOC = """
[[pools]]
name = "normal"
kind = "normal"
ranges = ["192.0.2.0/29", "2001:db8:1::/64"]
addresses = ["2001:db8:1::25", "2001:db8:1::26"]
out_of_rotation = { "192.0.2.3" = "warming up" }

[[pools]]
name = "bulk"
kind = "high-risk"
description = "newsletters"
ranges = ["203.0.113.0/30"]
"""


def run_import(text: str, *args: str, tmp_path) -> tuple[int, str, str]:
    path = tmp_path / "pw.toml"
    path.write_text(text)
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("config_import", str(path), *args, stdout=out, stderr=err)
    except SystemExit as exc:
        return exc.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def test_export_lists_the_default_pools():
    data = tomllib.loads(export_document())
    assert [p["name"] for p in data["pools"]] == ["high-risk", "normal"]
    normal = data["pools"][1]
    assert normal["ranges"] == ["192.0.2.0/28", "2001:db8::25/128"]
    assert "out_of_rotation" not in normal  # network/broadcast are implied by the range


def test_export_then_import_changes_nothing():
    PoolAddress.objects.filter(address="192.0.2.4").update(active=False, reason="abuse case 7")
    PoolAddress.objects.filter(address="192.0.2.0").update(active=True, reason="")
    text = export_document()
    assert plan_document(text).changes == []


def test_import_creates_and_replaces_the_pools_it_names():
    apply_plan(plan_document(DOC))
    normal = Pool.objects.get(name="normal")
    assert sorted(normal.ranges.values_list("cidr", flat=True)) == [
        "192.0.2.0/29",
        "2001:db8:1::/64",
    ]
    assert normal.addresses.count() == 8 + 2
    assert PoolAddress.objects.get(address="192.0.2.3").reason == "warming up"
    assert Pool.objects.get(name="bulk").addresses.count() == 4
    assert Pool.objects.filter(name="high-risk").exists()  # not named: kept
    assert plan_document(DOC).changes == []  # and a second import is a no-op
    exported = tomllib.loads(export_document())
    assert {p["name"] for p in exported["pools"]} == {"bulk", "high-risk", "normal"}


def test_prune_removes_pools_the_document_does_not_name():
    plan = plan_document(DOC, prune=True)
    assert "- pool high-risk" in plan.changes
    apply_plan(plan)
    assert set(Pool.objects.values_list("name", flat=True)) == {"normal", "bulk"}


def test_a_range_can_move_between_pools_in_one_import():
    doc = """
[[pools]]
name = "normal"
kind = "normal"
ranges = ["2001:db8::25/128"]
[[pools]]
name = "high-risk"
kind = "high-risk"
ranges = ["198.51.100.0/28", "2001:db8::26/128", "192.0.2.0/28"]
"""
    apply_plan(plan_document(doc))
    assert PoolAddress.objects.get(address="192.0.2.5").pool.name == "high-risk"


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("[[pools]]\nname='x'\nkind='normal'\nranges=['10.0.0.0/8']", "too large to monitor"),
        ("[[pools]]\nname='x'\nkind='normal'\nranges=['192.0.2.1/28']", "host bits are set"),
        ("[[pools]]\nname='x'\nkind='normal'\nranges=['198.51.100.0/29']", "overlaps"),
        ("[[pools]]\nname='x'\nkind='nice'\nranges=[]", "kind: expected one of"),
        ("[[pools]]\nname='x y'\nkind='normal'", "name: expected a short name"),
        ("[[pools]]\nname='x'\nkind='normal'\ncolour='red'", "unknown key 'colour'"),
        ("[[pools]]\nname='x'\nkind='normal'\nranges='192.0.2.0/28'", "ranges: expected list"),
        ("[[pools]]\nname='x'\nkind='normal'\naddresses=['2001:db8:9::1']", "in none of"),
        ("[routingg]\nspam_threshold=5", "unknown key 'routingg'"),
        ("[[pools]\nname='x'", "not valid TOML"),
    ],
)
def test_bad_document_is_refused_and_nothing_changes(doc, problem):
    before = export_document()
    with pytest.raises(DocumentError) as raised:
        plan_document(DOC + "\n" + doc if doc.startswith("[[pools]]") else doc)
    assert problem in str(raised.value)
    assert export_document() == before


def test_export_and_import_round_trip_through_the_commands(tmp_path, site):
    path = tmp_path / "site.toml"
    assert site.manage("config_export", str(path)).returncode == 0
    text = path.read_text().replace("192.0.2.0/28", "192.0.2.0/27")
    path.write_text(text)
    result = site.manage("config_import", str(path))
    assert result.returncode == 0, result.stderr
    assert "+ pool normal: range 192.0.2.0/27" in result.stdout
    assert site.manage("config_import", str(path)).stdout.strip() == "no changes"


def test_export_to_dash_writes_stdout_and_pipes_into_import(tmp_path, site):
    exported = site.manage("config_export", "-")
    assert exported.returncode == 0, exported.stderr
    assert "[[pools]]" in exported.stdout and 'name = "normal"' in exported.stdout
    assert not (REPO / "-").exists()  # manage.py runs in the checkout
    result = site.manage("config_import", "-", "--dry-run", input=exported.stdout)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[0] == "no changes"


def test_every_problem_is_reported_not_only_the_first():
    doc = "[[pools]]\nname='a'\nkind='normal'\nranges=['10.0.0.0/8', '192.0.2.9/28']\n"
    with pytest.raises(DocumentError) as raised:
        plan_document(doc)
    assert len(raised.value.problems) == 2


def test_dry_run_lists_changes_and_changes_nothing(tmp_path):
    before = export_document()
    code, out, _ = run_import(DOC, "--dry-run", tmp_path=tmp_path)
    assert code == 0
    assert "+ pool bulk (high-risk, ranges 203.0.113.0/30)" in out
    assert "dry run" in out
    assert export_document() == before


def test_import_command_exits_2_with_one_line_on_a_bad_document(tmp_path, site):
    path = tmp_path / "bad.toml"
    path.write_text("[[pools]]\nname='x'\nkind='normal'\nranges=['10.0.0.0/8']\n")
    result = site.manage("config_import", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "nothing changed" in result.stderr and "Traceback" not in result.stderr


def test_import_command_reports_a_missing_file(tmp_path, site):
    result = site.manage("config_import", str(tmp_path / "nope.toml"))
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "No such file" in result.stderr
