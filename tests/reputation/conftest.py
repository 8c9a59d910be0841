"""Blocklist fixtures: the catalogue replaced by the test lists that rbldnsd serves, and the
sweeper pointed at rbldnsd on loopback (never at a real list or resolver)."""

from __future__ import annotations

from importlib import import_module

import pytest
from django.apps import apps

from reputation.models import Blocklist
from routing.models import Pool

TEST_LISTS = {
    "zen.test": dict(
        weight="major",
        ipv6=True,
        codes={"127.0.0.2": "SBL", "127.0.0.4": "XBL"},
        error_codes=["127.255.255.0/24"],
        delist_url="https://zen.test/remove",
    ),
    "bitmask.test": dict(
        weight="major",
        bitmask=True,
        codes={"127.0.0.8": "PH", "127.0.0.16": "MW", "127.0.0.64": "ABUSE"},
    ),
    "minor.test": dict(weight="minor", codes={"127.0.0.2": "minor listing"}),
    "dynamic.test": dict(weight="major", codes={"127.0.0.2": "dynamic listing"}),
}
BROKEN_LISTS = ("refused.test", "silent.test", "all.test", "pubres.test")


def make_list(zone: str, **values) -> Blocklist:
    values = {"max_in_flight": 0, "max_qps": 0, **values}
    return Blocklist.objects.create(zone=zone, **values)


@pytest.fixture
def catalogue(db, settings, rbldnsd):
    """Only the test lists (the seeded real ones are deleted), queried through rbldnsd, and
    the seeded pools (seeded again if a transactional test on this worker flushed them)."""
    if not Pool.objects.exists():
        import_module("routing.migrations.0002_defaults").create_defaults(apps, None)
    Blocklist.objects.all().delete()
    settings.POOLWARDEN_NAMESERVERS = [rbldnsd.nameserver]
    settings.POOLWARDEN_DNS_TIMEOUT = 0.6
    rbldnsd.write_zone("dynamic.zone", DYNAMIC_EMPTY)
    return {zone: make_list(zone, **values) for zone, values in TEST_LISTS.items()}


DYNAMIC_EMPTY = "$TTL 60\n:127.0.0.2:Listed on dynamic.test\n127.0.0.2\n"


def dynamic_listing(*addresses: str) -> str:
    return DYNAMIC_EMPTY + "".join(f"{a}\n" for a in addresses)
