"""A sweep without a database (reputation/blocklists/sweep.py): self-tests and interpretation,
against a real rbldnsd, a resolver that rewrites NXDOMAIN, and lists that misbehave."""

from __future__ import annotations

import pytest

from reputation.blocklists import dnsbl
from reputation.blocklists.dnsbl import ListSpec
from reputation.blocklists.sweep import sweep, sweep_work
from reputation.blocklists.sweeper import UDPSweeper
from tests.rbldnsd_server import HOST, proxy

pytestmark = pytest.mark.integration

ZEN = ListSpec(
    "zen.test",
    ipv6=True,
    codes={"127.0.0.2": "SBL", "127.0.0.4": "XBL"},
    error_codes=("127.255.255.0/24",),
)
BITMASK = ListSpec("bitmask.test", bitmask=True, codes={"127.0.0.8": "PH", "127.0.0.16": "MW"})
TARGETS = ["192.0.2.5", "192.0.2.6", "192.0.2.7", "192.0.2.9", "192.0.2.10", "2001:db8::25"]


def resolver(port: int) -> UDPSweeper:
    return UDPSweeper([(HOST, port)], timeout=0.1, attempts=2)


def verdicts(outcome) -> dict[tuple[str, str], dnsbl.Verdict]:
    return {(r.target, r.zone): r.verdict for r in outcome.results}


def test_sweep_finds_codes_reasons_ipv6_and_bitmask_listings(rbldnsd):
    outcome = sweep(TARGETS, [ZEN, BITMASK], resolver(rbldnsd.port))
    found = verdicts(outcome)
    assert outcome.misbehaving == {}
    assert (
        found["192.0.2.5", "zen.test"].reason == "SBL listed, see http://zen.test/sbl?ip=192.0.2.5"
    )
    assert found["192.0.2.6", "zen.test"].status == dnsbl.CLEAN
    assert found["192.0.2.7", "zen.test"].meanings == ("SBL", "XBL")
    assert found["192.0.2.9", "zen.test"].error == dnsbl.ERROR_CODE
    assert found["2001:db8::25", "zen.test"].status == dnsbl.LISTED
    assert found["192.0.2.10", "bitmask.test"].meanings == ("PH", "MW")
    assert ("2001:db8::25", "bitmask.test") not in found  # bitmask.test has no IPv6
    assert outcome.counts() == {"listed": 4, "clean": 6, "unknown": 1}


@pytest.mark.parametrize(
    ("zone", "why"),
    [
        ("all.test", "127.0.0.1 is listed"),
        ("silent.test", "timeout"),
        ("refused.test", "refused"),
        ("pubres.test", "error-code"),
    ],
)
def test_list_failing_its_self_test_is_misbehaving(rbldnsd, zone, why):
    broken = ListSpec(zone, error_codes=("127.255.255.0/24",))
    outcome = sweep(["192.0.2.5"], [ZEN, broken], resolver(rbldnsd.port))
    assert list(outcome.misbehaving) == [zone]
    assert why in outcome.misbehaving[zone]
    assert [r.zone for r in outcome.trusted()] == ["zen.test"]


def test_resolver_rewriting_nxdomain_makes_every_list_misbehave(rbldnsd):
    with proxy(rbldnsd.port, rewrite=True) as rewriting:
        outcome = sweep(["192.0.2.6"], [ZEN], resolver(rewriting.port))
    assert "outside-127" in outcome.misbehaving["zen.test"]
    (result,) = outcome.results
    assert (result.verdict.status, result.verdict.error) == (dnsbl.UNKNOWN, dnsbl.OUTSIDE_127)
    assert outcome.trusted() == []


def test_domain_list_self_test_uses_test_and_invalid(rbldnsd):
    dbl = ListSpec("dbl.test", kind=dnsbl.DOMAIN, codes={"127.0.1.2": "spam domain"})
    outcome = sweep(["spam.example", "ham.example"], [dbl], resolver(rbldnsd.port))
    assert outcome.misbehaving == {}
    assert verdicts(outcome)["spam.example", "dbl.test"].reason == "Spam domain spam.example"
    assert verdicts(outcome)["ham.example", "dbl.test"].status == dnsbl.CLEAN


V6ONLY = ListSpec(
    "v6only.test",
    ipv4=False,
    ipv6=True,
    codes={"127.0.0.2": "listed", "127.0.0.3": "listed range"},
)
MIXED = ["192.0.2.5", "2001:db8::25", "192.0.2.7", "2001:db8::26", "2001:db8:6:1::99"]


def test_ipv6_only_list_passes_its_self_test_and_is_never_asked_an_ipv4_address(rbldnsd):
    outcome = sweep(MIXED, [V6ONLY], resolver(rbldnsd.port))
    found = verdicts(outcome)
    assert outcome.misbehaving == {}
    assert set(found) == {(a, "v6only.test") for a in MIXED if ":" in a}
    assert found["2001:db8::25", "v6only.test"].codes == ("127.0.0.2",)
    assert found["2001:db8:6:1::99", "v6only.test"].meanings == ("listed range",)
    assert "v6only.test (IPv6 only)" in found["2001:db8::25", "v6only.test"].reason
    assert found["2001:db8::26", "v6only.test"].status == dnsbl.CLEAN
    # Two self-test points (::ffff:7f00:2/1), three addresses, two TXT reasons: nothing else.
    assert outcome.queries_by_zone == {"v6only.test": 2 + 3 + 2}


def test_sweep_work_asks_each_list_only_its_own_families(rbldnsd):
    work = [(V6ONLY, MIXED), (BITMASK, MIXED), (ZEN, ["2001:db8::25", "192.0.2.5"])]
    outcome = sweep_work(work, resolver(rbldnsd.port))
    asked = {(r.target, r.zone) for r in outcome.results}
    assert outcome.misbehaving == {}
    assert {a for a, zone in asked if zone == "v6only.test"} == {a for a in MIXED if ":" in a}
    assert {a for a, zone in asked if zone == "bitmask.test"} == {"192.0.2.5", "192.0.2.7"}
    assert {a for a, zone in asked if zone == "zen.test"} == {"2001:db8::25", "192.0.2.5"}
    listed = {(r.target, r.zone) for r in outcome.trusted() if r.verdict.status == dnsbl.LISTED}
    assert listed == {
        ("2001:db8::25", "v6only.test"),
        ("2001:db8:6:1::99", "v6only.test"),
        ("2001:db8::25", "zen.test"),
        ("192.0.2.5", "zen.test"),
    }


def test_ipv6_only_zone_taken_for_both_families_fails_its_ipv4_self_test(rbldnsd):
    """Why `ipv4 = false` exists: an ip6trie zone does not know 127.0.0.2."""
    both = ListSpec("v6only.test", ipv6=True)
    outcome = sweep(["2001:db8::25"], [both], resolver(rbldnsd.port))
    assert outcome.misbehaving == {
        "v6only.test": "127.0.0.2 is not listed: the list answers nothing"
    }
    assert outcome.trusted() == []
