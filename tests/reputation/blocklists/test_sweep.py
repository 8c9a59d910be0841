"""A sweep without a database (reputation/blocklists/sweep.py): self-tests and interpretation,
against a real rbldnsd, a resolver that rewrites NXDOMAIN, and lists that misbehave."""

from __future__ import annotations

import pytest

from reputation.blocklists import dnsbl
from reputation.blocklists.dnsbl import ListSpec
from reputation.blocklists.sweep import sweep
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
