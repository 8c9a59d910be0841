"""The listing matrix (reputation/dashboard/matrix.py): addresses listed now or lately, against the
lists that list them, sorted and paged."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reputation.dashboard import matrix
from reputation.dashboard.matrix import listing_matrix
from reputation.models import Blocklist, Listing
from routing.models import Pool

pytestmark = pytest.mark.django_db


@pytest.fixture
def lists():
    Blocklist.objects.all().delete()
    Pool.objects.all().delete()
    Pool.objects.create(name="normal", kind="normal")
    Pool.objects.create(name="risky", kind="high-risk")
    return {
        "major": Blocklist.objects.create(zone="major.test", weight="major"),
        "minor": Blocklist.objects.create(zone="minor.test", weight="minor"),
        "quiet": Blocklist.objects.create(zone="quiet.test", weight="major"),
    }


def listed(address: str, blocklist: Blocklist, *, hours: int, closed_hours=None, pool="normal"):
    now = timezone.now()
    closed = now - timedelta(hours=closed_hours) if closed_hours is not None else None
    Listing.objects.create(
        address=address,
        pool=pool,
        blocklist=blocklist,
        codes=["127.0.0.2"],
        opened=now - timedelta(hours=hours),
        closed=closed,
    )


def test_rows_are_listed_now_or_lately_and_columns_only_lists_that_list(lists):
    """A listing closed within the week stays as "was listed"; an older one is gone; a list
    that lists none of them has no column; major lists come first."""
    listed("192.0.2.1", lists["minor"], hours=3)
    listed("192.0.2.2", lists["major"], hours=50, closed_hours=24)
    listed("192.0.2.3", lists["major"], hours=500, closed_hours=400)
    found = listing_matrix()
    assert [c.zone for c in found.columns] == ["major.test", "minor.test"]
    rows = {row.address: row for row in found.page.object_list}
    assert set(rows) == {"192.0.2.1", "192.0.2.2"}
    was = rows["192.0.2.2"].line[0]
    assert was is not None and not was.is_open and rows["192.0.2.2"].severity == ""
    assert rows["192.0.2.1"].line == [None, rows["192.0.2.1"].cells[lists["minor"].pk]]


def test_severity_sort_puts_a_major_listing_of_the_normal_pool_first(lists):
    listed("198.51.100.1", lists["major"], hours=30, pool="risky")  # info
    listed("192.0.2.9", lists["minor"], hours=40)  # warning
    listed("192.0.2.10", lists["major"], hours=1)  # critical
    listed("192.0.2.4", lists["major"], hours=90, closed_hours=1)  # no longer listed
    order = [row.address for row in listing_matrix().page.object_list]
    assert order == ["192.0.2.10", "192.0.2.9", "198.51.100.1", "192.0.2.4"]
    by_address = [row.address for row in listing_matrix(sort="address").page.object_list]
    assert by_address == ["192.0.2.4", "192.0.2.9", "192.0.2.10", "198.51.100.1"]
    newest = [row.address for row in listing_matrix(sort="newest").page.object_list]
    assert newest[0] == "192.0.2.10"


def test_a_thousand_listed_addresses_are_paged(lists, django_assert_max_num_queries):
    Listing.objects.bulk_create(
        Listing(
            address=f"10.0.{i // 256}.{i % 256}",
            pool="normal",
            blocklist=lists["major"],
            opened=timezone.now() - timedelta(minutes=i),
        )
        for i in range(1000)
    )
    with django_assert_max_num_queries(4):
        first = listing_matrix()
    assert first.total == 1000 and len(first.page.object_list) == matrix.PAGE_SIZE
    last = listing_matrix(page=99)  # past the end: the last page
    assert last.page.number == 1000 // matrix.PAGE_SIZE
    assert listing_matrix(page="x").page.number == 1
