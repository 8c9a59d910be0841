"""Which pool addresses this host can send from: /proc parsing, bind(), `postfix_config
--check` and the routing.W001 system check, on this machine's real interfaces."""

from __future__ import annotations

import ipaddress

import pytest
from django.core import checks
from django.core.management import CommandError, call_command

from routing.mta import host
from routing.mta.postfix import SourceAddress

ABSENT = "203.0.113.77"  # TEST-NET-3: on no interface here
FIB_TRIE = """\
Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 192.0.2.0/24 2 0 2
           |-- 192.0.2.0
              /24 link UNICAST
           |-- 192.0.2.2
              /32 host LOCAL
"""
IF_INET6 = """\
00000000000000000000000000000001 01 80 10 80       lo
20010db8000000000000000000000025 02 40 00 80     eth0
20010db8000000000000000000000026 02 40 00 c0     eth0
"""


def test_local_ipv4_ranges_are_the_fib_tries_local_routes():
    assert host.local_ipv4(FIB_TRIE) == {
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("192.0.2.2/32"),
    }


def test_a_tentative_ipv6_address_is_not_local_yet():
    assert host.local_ipv6(IF_INET6) == {
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("2001:db8::25/128"),
    }


def test_without_proc_only_bind_decides(tmp_path):
    assert host.local_networks(tmp_path / "none", tmp_path / "none6") is None
    assert host.configured("127.0.0.3", None)
    assert not host.configured(ABSENT, None)


def test_an_address_bindable_only_by_nonlocal_bind_is_not_configured():
    networks = [ipaddress.ip_network("127.0.0.1/32")]
    assert host.bindable("127.0.0.3") and not host.configured("127.0.0.3", networks)


def test_missing_lists_only_addresses_in_rotation_that_are_not_here():
    addresses = [
        SourceAddress("normal", "normal", "127.0.0.3"),
        SourceAddress("normal", "normal", ABSENT),
        SourceAddress("normal", "normal", "203.0.113.78", in_rotation=False),
    ]
    assert host.missing(addresses) == [addresses[1]]


@pytest.fixture
def absent_address(db):
    from routing.models import Pool

    pool = Pool.objects.get(kind="normal")
    pool.ranges.all().delete()  # its default addresses (TEST-NET) are not here either
    ip_range = pool.ranges.create(cidr="127.0.0.3/32")
    pool.addresses.create(address="127.0.0.3", ip_range=ip_range)
    far = pool.ranges.create(cidr=f"{ABSENT}/32")
    pool.addresses.create(address=ABSENT, ip_range=far)
    from routing.models import PoolAddress

    PoolAddress.objects.exclude(pool=pool).update(active=False, reason="elsewhere")
    return ABSENT


def test_check_lists_the_address_that_is_not_here_and_exits_1(absent_address, capsys):
    with pytest.raises(CommandError) as error:
        call_command("postfix_config", "--check")
    assert error.value.returncode == 1
    out = capsys.readouterr().out
    assert f"missing: {absent_address} (pool" in out and "pw-203-0-113-77" in out
    assert "127.0.0.3" not in out


def test_check_says_ok_when_every_address_is_here(absent_address, capsys):
    from routing.models import PoolAddress

    PoolAddress.objects.filter(address=absent_address).update(active=False, reason="moved")
    call_command("postfix_config", "--check")
    assert capsys.readouterr().out.startswith("ok: all 1 pool addresses in rotation")


def test_system_check_warns_only_when_asked_for_database_checks(absent_address):
    assert not [m for m in checks.run_checks() if m.id == "routing.W001"]
    warnings = [m for m in checks.run_checks(databases=["default"]) if m.id == "routing.W001"]
    assert len(warnings) == 1 and absent_address in warnings[0].msg
    assert warnings[0].level == checks.WARNING


def test_system_check_is_one_warning_however_many_addresses_are_elsewhere(absent_address):
    from routing.models import PoolAddress

    first = PoolAddress.objects.get(address=absent_address)
    PoolAddress.objects.bulk_create(
        [
            PoolAddress(pool=first.pool, ip_range=first.ip_range, address=f"203.0.113.{n}")
            for n in range(100, 140)
        ]
    )
    warnings = [m for m in checks.run_checks(databases=["default"]) if m.id == "routing.W001"]
    assert len(warnings) == 1
    assert warnings[0].msg.startswith("41 pool address(es) in rotation are not configured")
    assert "and 36 more" in warnings[0].msg
