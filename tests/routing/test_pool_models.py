"""Pools in the database: default pools, address sync, explicit IPv6 addresses."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from routing.models import IPRange, Pool, PoolAddress

pytestmark = pytest.mark.django_db


def test_migration_creates_normal_and_high_risk_pools_with_example_ranges():
    pools = {p.name: p for p in Pool.objects.all()}
    assert pools["normal"].kind == Pool.Kind.NORMAL
    assert pools["high-risk"].kind == Pool.Kind.HIGH_RISK
    assert pools["normal"].take_listed_out and not pools["high-risk"].take_listed_out
    assert set(pools["normal"].ranges.values_list("cidr", flat=True)) == {
        "192.0.2.0/28",
        "2001:db8::25/128",
    }
    assert pools["normal"].addresses.count() == 17
    assert pools["normal"].addresses.filter(active=True).count() == 15


def test_sync_adds_new_range_addresses_and_drops_removed_ones():
    pool = Pool.objects.get(name="normal")
    pool.addresses.filter(address="192.0.2.5").update(active=False, reason="warming up")
    pool.ranges.filter(cidr="2001:db8::25/128").delete()
    IPRange.objects.create(pool=pool, cidr="203.0.113.0/30")
    created, deleted = pool.sync_addresses()
    assert (created, deleted) == (4, 0)  # the /128 went with its range (cascade)
    assert not pool.addresses.filter(address="2001:db8::25").exists()
    kept = pool.addresses.get(address="192.0.2.5")
    assert (kept.active, kept.reason) == (False, "warming up")


def test_explicit_ipv6_address_must_lie_in_a_pool_range():
    pool = Pool.objects.get(name="normal")
    IPRange.objects.create(pool=pool, cidr="2001:db8:1::/64")
    inside = PoolAddress(pool=pool, address="2001:db8:1::25")
    inside.full_clean()
    assert inside.ip_range.cidr == "2001:db8:1::/64"
    outside = PoolAddress(pool=pool, address="2001:db8:2::25")
    with pytest.raises(ValidationError, match="in none of pool normal's ranges"):
        outside.full_clean()


def test_out_of_rotation_needs_a_reason():
    address = PoolAddress.objects.get(address="192.0.2.3")
    address.active = False
    with pytest.raises(ValidationError, match="Say why"):
        address.full_clean()


def test_models_match_migrations():
    from django.core.management import call_command

    call_command("makemigrations", "--check", "--dry-run", verbosity=0)
