"""The dashboard's overview: what is listed per pool, the last sweep, spikes, alerts, changes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reputation.dashboard.overview import human_duration, overview
from reputation.models import Blocklist, CheckRun, Listing, ReverseDNSCheck, Spike
from reputation.models.alerts import Event
from routing.models import IPRange, Pool, PoolAddress, SettingChange

pytestmark = pytest.mark.django_db


@pytest.fixture
def pools():
    Pool.objects.all().delete()
    normal = Pool.objects.create(name="normal", kind="normal")
    risky = Pool.objects.create(name="high-risk", kind="high-risk", take_listed_out=False)
    IPRange.objects.create(pool=normal, cidr="192.0.2.0/30")
    IPRange.objects.create(pool=risky, cidr="198.51.100.0/30")
    normal.sync_addresses()
    risky.sync_addresses()
    return normal, risky


def listing(address: str, pool: str, zone: Blocklist, hours: int, closed: bool = False) -> None:
    now = timezone.now()
    Listing.objects.create(
        address=address,
        pool=pool,
        blocklist=zone,
        codes=["127.0.0.2"],
        opened=now - timedelta(hours=hours),
        closed=now if closed else None,
    )


def test_listed_addresses_are_grouped_per_pool_most_severe_first(pools):
    """Open listings only, one entry per address with all its lists; a major listing on the
    normal pool (critical) comes before a minor one (warning), older first within a level;
    the rotation state comes from the pool address."""
    major = Blocklist.objects.create(zone="major.test", weight="major")
    minor = Blocklist.objects.create(zone="minor.test", weight="minor")
    listing("192.0.2.1", "normal", minor, hours=30)
    listing("192.0.2.2", "normal", major, hours=2)
    listing("192.0.2.2", "normal", minor, hours=5)
    listing("192.0.2.3", "normal", major, hours=9, closed=True)
    listing("198.51.100.1", "high-risk", major, hours=1)
    PoolAddress.objects.filter(address="192.0.2.2").update(listed=True)

    state = {p.name: p for p in overview().pools}

    normal = state["normal"]
    assert [a.address for a in normal.listed] == ["192.0.2.2", "192.0.2.1"]
    first = normal.listed[0]
    assert [on.zone for on in first.lists] == ["minor.test", "major.test"]  # oldest first
    assert first.severity == "critical" and not first.in_rotation
    assert normal.listed[1].severity == "warning" and normal.listed[1].in_rotation
    # .0 and .3 (network, broadcast) are out; .2 is listed: only .1 sends
    assert (normal.addresses, normal.in_rotation) == (4, 1)
    assert [a.severity for a in state["high-risk"].listed] == ["info"]


def test_a_listing_of_a_removed_pool_still_shows(pools):
    gone = Blocklist.objects.create(zone="zen.test", weight="major")
    listing("203.0.113.5", "old-pool", gone, hours=3)
    state = {p.name: p for p in overview().pools}
    assert [a.address for a in state["old-pool"].listed] == ["203.0.113.5"]
    assert state["old-pool"].addresses == 0


def test_last_sweep_sums_unknown_answers_per_list(pools):
    """The latest complete run: its duration, and the lists with the most unknown answers
    first; an unfinished run started before it is not shown."""
    now = timezone.now()
    CheckRun.objects.create(trigger="schedule", started=now - timedelta(hours=2))
    CheckRun.objects.create(
        trigger="schedule",
        started=now - timedelta(minutes=5),
        finished=now - timedelta(minutes=4),
        unknown=7,
        errors={"a.test": {"timeout": 2}, "b.test": {"timeout": 1, "refused": 4}},
        misbehaving={"c.test": "answers for 127.0.0.1"},
    )
    view = overview()
    sweep = view.last_sweep
    assert sweep.duration == timedelta(minutes=1) and sweep.duration_text == "1 min 0 s"
    assert sweep.worst_zones == [("b.test", 5), ("a.test", 2)]
    assert sweep.misbehaving == ["c.test"]
    assert view.last_partial is None


def test_a_partial_run_does_not_pass_for_the_last_sweep(pools):
    """A run of two lists, of one pool, of one address, or one that left lists out is partial:
    the last complete sweep is the one before, and the latest partial run is shown apart,
    with why."""
    now = timezone.now()
    complete = CheckRun.objects.create(
        trigger="schedule", started=now - timedelta(hours=1), finished=now - timedelta(minutes=56)
    )
    partial = {
        "zones": ["a.test", "b.test"],
        "pool": "normal",
        "address": "192.0.2.1",
        "skipped": {"a.test": "run 1 is still sweeping it"},
    }
    for i, (name, value) in enumerate(partial.items()):
        started = now - timedelta(minutes=30 - i)
        CheckRun.objects.create(
            trigger="command",
            started=started,
            finished=started + timedelta(seconds=23.9),
            **{name: value},
        )
        view = overview()
        assert view.last_sweep.run == complete
        assert view.last_sweep.duration_text == "4 min 0 s"
        assert view.last_partial.run.started == started
        assert view.last_partial.duration_text == "24 s"
        assert len(view.last_partial.partial) == 1
    assert view.last_partial.partial == ["left out (another run held them): a.test"]


def test_an_unfinished_run_is_marked_by_its_chunks(pools):
    now = timezone.now()
    CheckRun.objects.create(
        trigger="schedule", started=now - timedelta(hours=2), chunks=3, chunks_done=1
    )
    view = overview()
    assert view.last_sweep is None
    state = view.last_partial
    assert state.partial == ["2 of 3 chunks not applied"] and not state.running


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.4, "0.4 s"), (23.869849, "24 s"), (250, "4 min 10 s"), (7500, "2 h 5 min")],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert human_duration(timedelta(seconds=seconds)) == text


def test_no_sweep_yet_is_none(pools):
    assert overview().last_sweep is None


def test_open_spikes_recent_alerts_and_changes(pools):
    """Only open spikes; the ten latest alerts and setting changes, newest first."""
    now = timezone.now()
    Spike.objects.create(dimension="all", started=now, peak=9, baseline=1, cause="spam-attack")
    Spike.objects.create(
        dimension="pool", value="normal", started=now, ended=now, peak=9, baseline=1, cause="x"
    )
    for i in range(12):
        Event.objects.create(
            kind="test",
            severity="info",
            source=f"t:{i}",
            subject=f"alert {i}",
            created=now - timedelta(minutes=i),
        )
        SettingChange.objects.create(
            username="olivia",
            model="routing.routingpolicy",
            field="spam_threshold",
            old=str(i),
            new=str(i + 1),
            created=now - timedelta(minutes=i),
        )
    view = overview()
    assert [s.cause for s in view.open_spikes] == ["spam-attack"]
    assert [e.subject for e in view.recent_alerts][:2] == ["alert 0", "alert 1"]
    assert len(view.recent_alerts) == 10 and len(view.recent_changes) == 10
    assert view.recent_changes[0].new == "1"


def test_overview_shows_the_sweep_schedule_as_stored(client, operator):
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    client.force_login(operator)
    task = PeriodicTask.objects.get(task="reputation.sweep")
    task.interval = IntervalSchedule.objects.create(every=2, period="hours")
    task.save()
    page = client.get("/admin/").content.decode()
    assert "Scheduled every 2 hours, chunks spread over 120 s" in page
    task.enabled = False
    task.save()
    assert "No scheduled sweep" in client.get("/admin/").content.decode()


def test_failing_reverse_dns_shows_on_the_overview_and_the_address_page(client, viewer, pools):
    """The overview counts the failing pool addresses (not a removed one's old row) and names
    each; the address page shows its latest check."""
    ReverseDNSCheck.objects.create(address="192.0.2.1", status="ok", ptr_names=["mta1.example"])
    ReverseDNSCheck.objects.create(
        address="192.0.2.2", status="no-ptr", failing=True, detail="no PTR record: receivers"
    )
    ReverseDNSCheck.objects.create(address="203.0.113.99", status="no-ptr", failing=True)
    state = overview().rdns
    assert (state.checked, state.failing_total) == (2, 1)
    assert [c.address for c in state.failing] == ["192.0.2.2"]
    client.force_login(viewer)
    page = client.get("/admin/").content.decode()
    assert 'class="pw-rdns-failing">1</strong> of 2 addresses fail' in page
    assert '192.0.2.2</a> <span class="pw-badge">no-ptr</span>' in page
    address = client.get("/admin/dashboard/address/192.0.2.1/").content.decode()
    assert 'id="pw-rdns"' in address and ">ok</span>" in address and "PTR mta1.example" in address
