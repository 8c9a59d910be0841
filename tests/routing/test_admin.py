"""Admin roles and pool pages: viewers read, operators change, nobody else gets in."""

from __future__ import annotations

import pytest

from routing.models import Pool, PoolAddress

pytestmark = pytest.mark.django_db

POOL_URL = "/admin/routing/pool/"


def pool_form(pool: Pool, ranges: list[str], **fields) -> dict:
    existing = list(pool.ranges.order_by("id"))
    data = {
        "name": pool.name,
        "kind": pool.kind,
        "description": pool.description,
        "take_listed_out": "on" if pool.take_listed_out else "",
        "ranges-TOTAL_FORMS": str(len(ranges)),
        "ranges-INITIAL_FORMS": str(len(existing)),
        "ranges-MIN_NUM_FORMS": "0",
        "ranges-MAX_NUM_FORMS": "1000",
        **fields,
    }
    for i, cidr in enumerate(ranges):
        data[f"ranges-{i}-cidr"] = cidr
        data[f"ranges-{i}-pool"] = str(pool.pk)
        if i < len(existing):
            data[f"ranges-{i}-id"] = str(existing[i].pk)
    return data


def test_anonymous_user_is_sent_to_login(client):
    response = client.get(POOL_URL)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_staff_without_a_group_sees_no_pools(client, django_user_model):
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(POOL_URL).status_code == 403


def test_viewer_can_read_pools_schedules_and_addresses(client, viewer):
    client.force_login(viewer)
    assert client.get(POOL_URL).status_code == 200
    assert client.get("/admin/routing/pooladdress/").status_code == 200
    assert client.get("/admin/django_celery_beat/periodictask/").status_code == 200
    normal = Pool.objects.get(name="normal")
    page = client.get(f"{POOL_URL}{normal.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # read-only view


def test_viewer_cannot_change_add_or_delete(client, viewer):
    client.force_login(viewer)
    normal = Pool.objects.get(name="normal")
    form = pool_form(normal, ["192.0.2.0/28", "2001:db8::25/128"], description="hacked")
    assert client.post(f"{POOL_URL}{normal.pk}/change/", form).status_code == 403
    assert client.get(f"{POOL_URL}add/").status_code == 403
    assert client.post(f"{POOL_URL}{normal.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/django_celery_beat/periodictask/add/").status_code == 403
    normal.refresh_from_db()
    assert normal.description != "hacked"


def test_operator_changes_a_pool_and_its_addresses_follow(client, operator):
    client.force_login(operator)
    normal = Pool.objects.get(name="normal")
    form = pool_form(normal, ["192.0.2.0/28", "2001:db8::25/128", "203.0.113.0/29"])
    response = client.post(f"{POOL_URL}{normal.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert normal.addresses.filter(address__startswith="203.0.113.").count() == 8
    assert client.get("/admin/django_celery_beat/periodictask/add/").status_code == 200


def test_overlap_with_another_pool_is_refused_with_a_message(client, operator):
    client.force_login(operator)
    normal = Pool.objects.get(name="normal")
    form = pool_form(normal, ["192.0.2.0/28", "2001:db8::25/128", "198.51.100.8/29"])
    response = client.post(f"{POOL_URL}{normal.pk}/change/", form)
    assert response.status_code == 200
    assert "198.51.100.8/29 (pool &#x27;normal&#x27;) overlaps 198.51.100.0/28" in (
        response.content.decode()
    )
    assert not normal.ranges.filter(cidr="198.51.100.8/29").exists()


@pytest.mark.parametrize(
    ("cidr", "message"),
    [
        ("203.0.113.5/24", "host bits are set; did you mean 203.0.113.0/24?"),
        ("10.0.0.0/16", "too large to monitor (65536 addresses)"),
    ],
)
def test_bad_range_is_refused_with_a_message(client, operator, cidr, message):
    client.force_login(operator)
    normal = Pool.objects.get(name="normal")
    form = pool_form(normal, ["192.0.2.0/28", "2001:db8::25/128", cidr])
    response = client.post(f"{POOL_URL}{normal.pk}/change/", form)
    assert response.status_code == 200
    assert message in response.content.decode()


def test_operator_takes_an_address_out_of_rotation(client, operator):
    client.force_login(operator)
    address = PoolAddress.objects.get(address="192.0.2.4")
    response = client.post(
        "/admin/routing/pooladdress/",
        {"action": "take_out_of_rotation", "_selected_action": [address.pk]},
    )
    assert response.status_code == 302
    address.refresh_from_db()
    assert not address.active
    assert address.reason == "taken out by olivia"


def test_viewer_cannot_run_rotation_actions(client, viewer):
    client.force_login(viewer)
    address = PoolAddress.objects.get(address="192.0.2.4")
    client.post(
        "/admin/routing/pooladdress/",
        {"action": "take_out_of_rotation", "_selected_action": [address.pk]},
    )
    address.refresh_from_db()
    assert address.active
