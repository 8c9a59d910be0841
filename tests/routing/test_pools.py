"""Pool ranges: what is accepted, what is refused and why, and the addresses they hold."""

from __future__ import annotations

import pytest

from routing import pools
from routing.pools import RangeSpec


def test_ipv4_range_is_parsed_and_normalised():
    assert str(pools.parse_range(" 192.0.2.0/28 ")) == "192.0.2.0/28"


def test_bare_address_is_a_single_address_range():
    assert str(pools.parse_range("192.0.2.7")) == "192.0.2.7/32"
    assert str(pools.parse_range("2001:DB8::25")) == "2001:db8::25/128"


def test_host_bits_set_is_refused_with_the_intended_network():
    with pytest.raises(pools.RangeError, match=r"host bits are set; did you mean 192.0.2.0/24"):
        pools.parse_range("192.0.2.5/24")


@pytest.mark.parametrize("text", ["", "banana", "192.0.2.0/33", "300.1.1.1", "2001:db8::/129"])
def test_garbage_is_refused(text):
    with pytest.raises(pools.RangeError, match="not an IPv4 or IPv6 range"):
        pools.parse_range(text)


def test_ipv4_range_larger_than_a_slash_20_is_refused():
    with pytest.raises(pools.RangeError, match=r"too large to monitor \(8192 addresses\)"):
        pools.parse_range("10.0.0.0/19")
    assert pools.parse_range("10.0.0.0/20").num_addresses == 4096


def test_large_ipv6_range_is_accepted_but_not_enumerated():
    assert pools.enumerated(pools.parse_range("2001:db8::/48")) == []
    assert [a.address for a in pools.enumerated(pools.parse_range("2001:db8::25/128"))] == [
        "2001:db8::25"
    ]


def test_ipv4_range_is_enumerated_with_edges_out_of_rotation():
    addresses = pools.enumerated(pools.parse_range("192.0.2.0/29"))
    assert [a.address for a in addresses] == [f"192.0.2.{i}" for i in range(8)]
    inactive = [a.address for a in addresses if not a.active]
    assert inactive == ["192.0.2.0", "192.0.2.7"]
    assert all(a.reason == pools.NETWORK_OR_BROADCAST for a in addresses if not a.active)


def test_point_to_point_and_single_ranges_are_all_usable():
    assert all(a.active for a in pools.enumerated(pools.parse_range("192.0.2.8/31")))
    assert all(a.active for a in pools.enumerated(pools.parse_range("192.0.2.9/32")))


def test_overlap_across_pools_is_reported_with_both_pools():
    problems = pools.overlaps(
        [RangeSpec("normal", "192.0.2.0/24"), RangeSpec("high-risk", "192.0.2.128/25")]
    )
    assert problems == ["192.0.2.128/25 (pool 'high-risk') overlaps 192.0.2.0/24 in pool 'normal'"]


def test_overlap_is_found_behind_a_wide_earlier_range():
    problems = pools.overlaps(
        [
            RangeSpec("a", "192.0.2.0/24"),
            RangeSpec("b", "192.0.2.16/28"),
            RangeSpec("c", "192.0.2.200/32"),
        ]
    )
    assert len(problems) == 2
    assert "192.0.2.200/32 (pool 'c') overlaps 192.0.2.0/24" in problems[1]


def test_duplicate_range_in_one_pool_is_an_overlap():
    problems = pools.overlaps([RangeSpec("a", "2001:db8::/64"), RangeSpec("a", "2001:db8::5")])
    assert problems == ["2001:db8::5/128 (pool 'a') overlaps 2001:db8::/64 in the same pool"]


def test_adjacent_and_mixed_family_ranges_do_not_overlap():
    specs = [
        RangeSpec("a", "192.0.2.0/25"),
        RangeSpec("b", "192.0.2.128/25"),
        RangeSpec("c", "2001:db8::/64"),
        RangeSpec("d", "::ffff:192.0.2.0/120"),
    ]
    assert pools.overlaps(specs) == []


def test_range_errors_name_the_pool():
    problems = pools.range_errors([RangeSpec("normal", "10.0.0.0/8")])
    assert problems[0].startswith("pool 'normal': 10.0.0.0/8: too large to monitor")


def test_containing_range():
    assert pools.containing_range("2001:db8::1:5", ["192.0.2.0/28", "2001:db8::/64"]) == (
        "2001:db8::/64"
    )
    assert pools.containing_range("203.0.113.1", ["192.0.2.0/28"]) is None
