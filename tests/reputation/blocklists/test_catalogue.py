"""The catalogue: the `[[blocklists]]` section of the configuration document, the seeded
lists, and what a Blocklist tells the sweeps (families, own nameservers, caps and limits)."""

from __future__ import annotations

import io
import ipaddress
import time
import tomllib

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from reputation.blocklists import dnsbl
from reputation.blocklists.catalogue import BlocklistState, spec_problems
from reputation.blocklists.sweep import sweep
from reputation.blocklists.sweeper import UDPSweeper, ZoneLimits
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
        (("enabled = true", 'ipv4 = "no"'), "blocklists[0].ipv4: expected true or false"),
        (("enabled = true", "mirror = 1"), "blocklists[0].mirror: expected true or false"),
        (
            ("ipv6 = true", "ipv4 = false\nipv6 = false"),
            "blocklists[0].ipv4, ipv6: an IP list answers for IPv4, IPv6 or both",
        ),
        (
            ("enabled = true", 'nameservers = ["dns.example.net"]'),
            "blocklists[0].nameservers: 'dns.example.net' is not an IP address",
        ),
        (
            ("enabled = true", 'nameservers = ["127.0.0.1:99999", "[::1]5353"]'),
            "'[::1]5353' is not an IP address with an optional port",
        ),
        (
            ("enabled = true", 'nameservers = "127.0.0.1"'),
            "blocklists[0].nameservers: expected a list of resolvers",
        ),
        (
            ("enabled = true", "mirror = true"),
            "blocklists[0].mirror: a mirror is queried on the list's own nameservers",
        ),
    ],
)
def test_bad_blocklist_is_one_line_exit_2_and_changes_nothing(tmp_path, change, problem):
    before = list(Blocklist.objects.values_list("zone", "weight"))
    code, _, err = run_import(DOC.replace(*change), tmp_path=tmp_path)
    assert code == 2
    assert problem in err and "Bad Key" not in err
    assert list(Blocklist.objects.values_list("zone", "weight")) == before


V6_MIRROR = """
[[blocklists]]
zone = "v6.mirror.test"
ipv4 = false
ipv6 = true
nameservers = ["127.0.0.1:5353", "[::1]:5353"]
mirror = true
max_per_day = 1000
codes = { "127.0.0.2" = "listed" }
"""


def test_document_without_the_new_keys_means_ipv4_on_the_global_resolvers():
    apply_plan(plan_document(DOC))
    zen = Blocklist.objects.get(zone="zen.test")
    assert (zen.ipv4, zen.ipv6, zen.nameservers, zen.mirror) == (True, True, "", False)
    assert zen.servers() == [] and (zen.max_in_flight, zen.max_qps) == (100, 0)
    assert plan_document(DOC).changes == []


def test_ipv6_only_mirror_imports_exports_and_round_trips_unchanged():
    apply_plan(plan_document(V6_MIRROR))
    mirror = Blocklist.objects.get(zone="v6.mirror.test")
    assert (mirror.ipv4, mirror.ipv6, mirror.mirror) == (False, True, True)
    assert mirror.nameservers == "127.0.0.1:5353, [::1]:5353"
    assert [p.target for p in dnsbl.self_test_probes(mirror.spec())] == [
        "::ffff:7f00:2",
        "::ffff:7f00:1",
    ]
    exported = tomllib.loads(export_document())["blocklists"]
    entry = next(b for b in exported if b["zone"] == "v6.mirror.test")
    assert entry["ipv4"] is False and entry["mirror"] is True
    assert entry["nameservers"] == ["127.0.0.1:5353", "[::1]:5353"]
    assert next(b for b in exported if b["zone"] == "zen.spamhaus.org")["nameservers"] == []
    assert plan_document(export_document()).changes == []


def test_changing_the_new_keys_is_planned_as_changes():
    apply_plan(plan_document(V6_MIRROR))
    changed = V6_MIRROR.replace('"[::1]:5353"]', '"[::1]:5300"]').replace("ipv4 = false", "")
    assert plan_document(changed).changes == [
        "~ blocklist v6.mirror.test: ipv4 False -> True",
        "~ blocklist v6.mirror.test: nameservers ['127.0.0.1:5353', '[::1]:5353'] -> "
        "['127.0.0.1:5353', '[::1]:5300']",
    ]


def test_domain_list_ignores_the_address_families():
    state = BlocklistState(zone="dbl.test", kind="domain", ipv4=False, ipv6=True)
    assert spec_problems(state) == []


def test_seeded_lists_and_new_ones_get_100_in_flight_and_no_rate_limit():
    """0002 wrote out the old defaults (20, 50); 0011 moved the lists still at them."""
    assert set(Blocklist.objects.values_list("max_in_flight", "max_qps")) == {(100, 0)}
    assert Blocklist.objects.create(zone="new.test").query_limits == (100, 0)


def test_servers_are_the_lists_own_resolvers_as_address_and_port():
    blocklist = Blocklist(
        zone="own.test", nameservers="127.0.0.1:5353, [::1]:5300, ::1, 192.0.2.53"
    )
    assert blocklist.servers() == [
        ("127.0.0.1", 5353),
        ("::1", 5300),
        ("::1", 53),
        ("192.0.2.53", 53),
    ]
    assert Blocklist(zone="global.test").servers() == []


def test_clean_tidies_nameservers_and_refuses_names_and_bad_ports():
    blocklist = Blocklist(zone="own.test", nameservers=" 127.0.0.1:5353 ,, [::1]:5353 ")
    blocklist.full_clean()
    assert blocklist.nameservers == "127.0.0.1:5353, [::1]:5353"
    blocklist.nameservers = "resolver.example.net, 127.0.0.1:0"
    with pytest.raises(ValidationError) as caught:
        blocklist.full_clean()
    assert [m.split(" is ")[0] for m in caught.value.messages] == [
        "nameservers: 'resolver.example.net'",
        "nameservers: '127.0.0.1:0'",
    ]


def test_mirror_needs_nameservers_and_has_no_daily_cap_nor_query_limits():
    mirror = Blocklist(zone="mirror.test", mirror=True, max_per_day=5000, max_qps=50)
    with pytest.raises(ValidationError, match="mirror: a mirror is queried on the list's own"):
        mirror.full_clean()
    mirror.nameservers = "127.0.0.1:5353"
    mirror.full_clean()
    assert (mirror.daily_cap, mirror.query_limits) == (0, (0, 0))
    mirror.mirror = False  # the stored values come back when it stops being a mirror
    assert (mirror.daily_cap, mirror.query_limits) == (5000, (100, 50))


def test_ip_list_must_answer_for_at_least_one_family():
    with pytest.raises(ValidationError, match="an IP list answers for IPv4, IPv6 or both"):
        Blocklist(zone="none.test", ipv4=False, ipv6=False).full_clean()
    Blocklist(zone="v6.test", ipv4=False, ipv6=True).full_clean()


def sweeper_for(blocklist: Blocklist) -> UDPSweeper:
    """A sweeper as the sweeps build one for a list: its servers and its query limits."""
    limits = {blocklist.zone: ZoneLimits(*blocklist.query_limits)}
    return UDPSweeper(blocklist.servers(), timeout=0.2, attempts=3, limits=limits)


@pytest.mark.integration
def test_mirror_is_reached_on_its_own_nameservers(rbldnsd):
    mirror = Blocklist(
        zone="v6only.test",
        ipv4=False,
        ipv6=True,
        nameservers=rbldnsd.nameserver,
        mirror=True,
        max_qps=1,  # ignored for a mirror: its 4 queries at 1 a second would take 3 s
    )
    outcome = sweep(["192.0.2.5", "2001:db8::25"], [mirror.spec()], sweeper_for(mirror))
    assert outcome.misbehaving == {} and outcome.seconds < 2
    [(target, verdict)] = [(r.target, r.verdict.status) for r in outcome.results]
    assert (target, verdict) == ("2001:db8::25", dnsbl.LISTED)


@pytest.mark.integration
def test_default_limits_sweep_1024_addresses_in_well_under_the_20_s_of_50_a_second(rbldnsd):
    """docs/blocklists.md: a 1,024-address sweep takes a fraction of a second on rbldnsd;
    the old default of 50 queries a second made it 20 s per list."""
    zen = Blocklist(zone="zen.test", nameservers=rbldnsd.nameserver)
    targets = [str(ip) for ip in ipaddress.ip_network("198.18.0.0/22")]
    started = time.monotonic()
    outcome = sweep(targets, [zen.spec()], sweeper_for(zen))
    assert time.monotonic() - started < 5
    assert outcome.misbehaving == {} and outcome.counts()["clean"] == 1024
