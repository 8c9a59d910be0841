"""The policy snapshot: loaded from the database, refreshed on a clock, kept while the
database is down; and the policy's admin page and configuration section."""

from __future__ import annotations

import threading
import time

import pytest

from routing.configdoc import DocumentError, apply_plan, plan_document
from routing.models import PoolAddress, RoutingPolicy
from routing.policy import PolicySnapshot, PolicyUnavailable, SnapshotCache, load_snapshot


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.django_db
def test_snapshot_holds_the_policy_and_addresses_in_rotation():
    PoolAddress.objects.filter(address="192.0.2.5").update(active=False, reason="x")
    PoolAddress.objects.filter(address="192.0.2.6").update(listed=True, listed_reason="zen")
    PoolAddress.objects.filter(address="192.0.2.7").update(listed=True, keep_in_rotation=True)
    snapshot = load_snapshot()
    normal = snapshot.pool("normal").addresses
    assert "192.0.2.5" not in normal and "192.0.2.6" not in normal
    assert "192.0.2.7" in normal  # listed, but an admin keeps it in rotation
    assert "192.0.2.0" not in normal  # network address
    assert snapshot.spam_threshold == 5.0
    assert snapshot.trusted_headers == ("X-Spam-Score", "X-Spam-Status")


def test_snapshot_is_reloaded_only_when_stale():
    clock, loads = Clock(), []

    def loader():
        loads.append(clock.now)
        return PolicySnapshot(spam_threshold=len(loads))

    cache = SnapshotCache(loader, refresh=10, clock=clock)
    assert cache.get().spam_threshold == 1
    clock.now = 9
    assert cache.get().spam_threshold == 1
    clock.now = 10
    assert cache.get().spam_threshold == 2
    assert loads == [0, 10]


def test_database_outage_keeps_the_last_snapshot():
    clock, healthy = Clock(), [True]

    def loader():
        if not healthy[0]:
            raise ConnectionError("database is down")
        return PolicySnapshot(spam_threshold=3.0)

    cache = SnapshotCache(loader, refresh=1, clock=clock)
    assert cache.get().spam_threshold == 3.0
    healthy[0] = False
    clock.now = 5
    assert cache.get().spam_threshold == 3.0


class Flaky:
    """A loader that fails while `down` is set."""

    def __init__(self) -> None:
        self.down, self.calls = False, 0

    def __call__(self) -> PolicySnapshot:
        self.calls += 1
        if self.down:
            raise ConnectionError("connection refused")
        return PolicySnapshot(spam_threshold=6.0)


def test_database_down_at_start_defers_until_a_snapshot_loads():
    loader = Flaky()
    loader.down = True
    snapshots = SnapshotCache(loader)
    with pytest.raises(PolicyUnavailable, match="routing policy unavailable: connection refused"):
        snapshots.get()
    loader.down = False
    snapshots.invalidate()
    assert snapshots.get().spam_threshold == 6.0


def test_a_failed_reload_keeps_the_last_snapshot_and_says_so_once(caplog):
    clock = [0.0]
    loader = Flaky()
    snapshots = SnapshotCache(loader, refresh=10, clock=lambda: clock[0])
    assert snapshots.get().problems == ()
    loader.down = True
    for _ in range(3):
        clock[0] += 10
        snapshot = snapshots.get()
    assert loader.calls == 4
    assert snapshot.spam_threshold == 6.0  # the last good one
    assert len(snapshot.problems) == 1
    assert "database unreachable (connection refused)" in snapshot.problems[0]
    assert snapshots.age() == 30
    warnings = [r for r in caplog.records if "not reloaded" in r.getMessage()]
    assert len(warnings) == 1  # once per outage
    loader.down = False
    clock[0] += 10
    assert snapshots.get().problems == () and snapshots.age() == 0


def test_with_the_refresher_a_decision_never_waits_for_a_reload():
    release = threading.Event()
    loader = Flaky()
    snapshots = SnapshotCache(loader, refresh=0.05).start()
    try:
        first = snapshots.get()

        def hanging() -> PolicySnapshot:
            release.wait(10)  # a database that hangs
            return PolicySnapshot(spam_threshold=7.0)

        snapshots.loader = hanging
        time.sleep(0.2)  # the refresher is stuck in `hanging`
        started = time.monotonic()
        assert snapshots.get() is first and snapshots.fresh() is first
        assert time.monotonic() - started < 0.01
        release.set()
        deadline = time.monotonic() + 5
        while snapshots.get().spam_threshold != 7.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert snapshots.get().spam_threshold == 7.0
    finally:
        release.set()
        snapshots.stop()


def test_invalidate_wakes_the_refresher_at_once():
    loader = Flaky()
    snapshots = SnapshotCache(loader, refresh=60).start()
    try:
        calls = loader.calls
        snapshots.invalidate()
        deadline = time.monotonic() + 5
        while loader.calls == calls and time.monotonic() < deadline:
            time.sleep(0.01)
        assert loader.calls == calls + 1
    finally:
        snapshots.stop()


@pytest.mark.django_db
def test_routing_section_round_trips_and_changes_the_policy():
    doc = "[routing]\nspam_threshold = 6\non_dns_failure = 'high-risk'\n"
    plan = plan_document(doc)
    assert "~ routing: spam_threshold 5.0 -> 6" in plan.changes
    apply_plan(plan)
    policy = RoutingPolicy.load()
    assert (policy.spam_threshold, policy.on_dns_failure) == (6.0, "high-risk")
    assert plan_document(doc).changes == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        ("[routing]\nspam_threshold = 'five'", "routing.spam_threshold: bad value 'five'"),
        ("[routing]\non_dns_failure = 'panic'", "routing.on_dns_failure: expected one of"),
        ("[routing]\ntrusted_score_headers = ['X Bad']", "'X Bad' is not a header name"),
        ("[routing]\nspamd_timeout = 0", "routing.spamd_timeout: bad value 0"),
        ("[routing]\nthreshold = 5", "routing: unknown key 'threshold'"),
    ],
)
def test_bad_routing_section_is_refused(doc, problem):
    with pytest.raises(DocumentError) as raised:
        plan_document(doc)
    assert problem in str(raised.value)


@pytest.mark.django_db
def test_operator_changes_the_threshold_in_admin_and_viewer_cannot(client, operator, viewer):
    url = f"/admin/routing/routingpolicy/{RoutingPolicy.load().pk}/change/"
    form = {
        "spam_threshold": "3.5",
        "trusted_score_headers": '["X-Spam-Status"]',
        "on_dns_failure": "ignore",
        "fallback": "high-risk",
        "spamd_address": "127.0.0.1:783",
        "spamd_timeout": "5",
        "spamd_max_bytes": "524288",
        "internal_domains": "[]",
        "sender_identity": "auto",
        "on_limit_store_failure": "deliver",
    }
    client.force_login(viewer)
    assert client.post(url, form).status_code == 403
    client.force_login(operator)
    assert client.get("/admin/routing/routingpolicy/").status_code == 302
    assert client.post(url, form).status_code == 302
    assert RoutingPolicy.load().spam_threshold == 3.5
    bad = form | {"trusted_score_headers": '["no spaces allowed"]'}
    response = client.post(url, bad)
    assert response.status_code == 200
    assert "is not a header name" in response.content.decode()


@pytest.mark.django_db
def test_new_api_token_is_shown_once_and_stored_hashed(client, operator):
    from routing.models import ApiToken

    client.force_login(operator)
    response = client.post("/admin/routing/apitoken/add/", {"name": "mx1"}, follow=True)
    text = response.content.decode()
    token = text.split("Token for mx1: ")[1].split(" ")[0]
    assert token.startswith("pw_")
    row = ApiToken.objects.get(name="mx1")
    assert token not in (row.digest, row.prefix)
    page = client.get(f"/admin/routing/apitoken/{row.pk}/change/").content.decode()
    assert token not in page
