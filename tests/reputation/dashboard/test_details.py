"""The dashboard's detail pages: what the address, blocklist and spike pages show, computed
from known rows, and their charts."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db.models import F
from django.utils import timezone

from reputation.dashboard import details
from reputation.dashboard.timerange import TimeRange, parse
from reputation.models import (
    AddressCheck,
    Blocklist,
    BlocklistEvent,
    CheckRun,
    DSNHourly,
    Listing,
    QueryUsage,
    Spike,
    SpikeThreshold,
)
from routing.models import AddressCount, DSNCount, IPRange, Pool, PoolAddress

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 27, 14, 30, tzinfo=UTC)
WEEK = parse("7d", now=NOW)
H = timedelta(hours=1)


def make_list(zone: str, **values) -> Blocklist:
    return Blocklist.objects.create(zone=zone, **values)


def make_address(address: str = "192.0.2.1", **values) -> PoolAddress:
    pool, _ = Pool.objects.get_or_create(name="normal", defaults={"kind": "normal"})
    ip_range, _ = IPRange.objects.get_or_create(pool=pool, cidr="192.0.2.0/28")
    # Saving a range may create its addresses already: set the state wanted either way.
    found, _ = PoolAddress.objects.update_or_create(
        address=address, defaults={"pool": pool, "ip_range": ip_range, **values}
    )
    return found


def listing(blocklist: Blocklist, opened: datetime, closed: datetime | None = None, **values):
    values = {"address": "192.0.2.1", "pool": "normal", "codes": ["127.0.0.2"]} | values
    return Listing.objects.create(blocklist=blocklist, opened=opened, closed=closed, **values)


def as_json(figure: dict) -> dict:
    return json.loads(json.dumps(figure))


# --- address ---------------------------------------------------------------------------------


def test_address_of_no_pool_never_listed_has_no_detail():
    """An address no pool holds and no list ever listed (or a host name) has no page."""
    make_address("192.0.2.1")
    assert details.address_detail(address="203.0.113.99", rng=WEEK, now=NOW) is None
    assert details.address_detail(address="nothing.example", rng=WEEK, now=NOW) is None


def test_listed_address_of_no_pool_still_has_its_history():
    """An address removed from its pool keeps a page for its listings."""
    zen = make_list("zen.example", weight="major")
    listing(zen, NOW - 3 * H, address="203.0.113.7")
    detail = details.address_detail(address="203.0.113.7", rng=WEEK, now=NOW)
    assert detail.pool_address is None
    assert detail.rotation == "not a pool address"
    assert [row.zone for row in detail.listings] == ["zen.example"]


def test_address_in_rotation():
    """An active, unlisted address is "in rotation"; the pool address comes with its pool."""
    make_address(hostname="mta1.example.com")
    detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    assert detail.rotation == "in rotation"
    assert detail.pool_address.pool.name == "normal"
    assert detail.pool_address.ip_range.cidr == "192.0.2.0/28"
    assert detail.pool_address.in_rotation


def test_listed_address_is_out_since_its_oldest_open_major_listing():
    """A listed address is out "since" the earliest open listing on an enabled major list;
    minor, disabled and closed listings do not count."""
    make_address(listed=True, listed_reason="zen.example 127.0.0.2")
    zen = make_list("zen.example", weight="major")
    other = make_list("other.example", weight="major")
    minor = make_list("minor.example", weight="minor")
    off = make_list("off.example", weight="major", enabled=False)
    listing(zen, datetime(2026, 11, 25, 8, 15, tzinfo=UTC))
    listing(other, datetime(2026, 11, 26, 9, 0, tzinfo=UTC))
    listing(zen, datetime(2026, 11, 1, tzinfo=UTC), closed=datetime(2026, 11, 2, tzinfo=UTC))
    listing(minor, datetime(2026, 11, 20, tzinfo=UTC))
    listing(off, datetime(2026, 11, 19, tzinfo=UTC))
    detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    assert detail.rotation == (
        "out: listed on zen.example, other.example since 2026-11-25 08:15 UTC"
    )
    with timezone.override("Europe/Paris"):  # in the active zone, as the tables show times
        detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    assert detail.rotation.endswith("since 2026-11-25 09:15 CET")


def test_address_taken_out_by_an_admin_says_who():
    """An address an admin took out says so, whatever lists it."""
    make_address(active=False, reason="taken out by olivia", listed=True)
    detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    assert detail.rotation == "out: taken out by olivia"


def test_listed_address_kept_by_admin_override():
    """A listed address the admin keeps in rotation says it is in rotation although listed."""
    make_address(listed=True, keep_in_rotation=True)
    listing(make_list("zen.example", weight="major"), NOW - H)
    detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    assert detail.rotation == "in rotation although listed (admin override)"
    assert detail.pool_address.in_rotation


def test_listings_open_first_then_closed_newest_first_capped():
    """Open listings come first (newest first), then closed ones by closing, newest first,
    at most 200; the total counts them all."""
    make_address()
    a, b = make_list("a.example"), make_list("b.example")
    listing(a, NOW - 10 * H)
    listing(b, NOW - 2 * H)
    listing(b, NOW - 5 * H, NOW - 4 * H)  # opened after an open one, still listed after it
    start = datetime(2026, 1, 1, tzinfo=UTC)
    Listing.objects.bulk_create(
        Listing(
            address="192.0.2.1",
            blocklist=a,
            codes=["127.0.0.2"],
            opened=start + timedelta(days=i),
            closed=start + timedelta(days=i, hours=5),
        )
        for i in range(205)
    )
    detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    assert detail.listings_total == 208
    assert len(detail.listings) == details.LISTING_CAP
    assert [(r.zone, r.is_open) for r in detail.listings[:2]] == [
        ("b.example", True),
        ("a.example", True),
    ]
    closed = [r.closed for r in detail.listings[2:]]
    assert closed == sorted(closed, reverse=True)
    assert closed[:2] == [NOW - 4 * H, start + timedelta(days=204, hours=5)]


def test_listing_rows_carry_list_details_and_duration():
    """Each listing shows its list, weight, codes with meanings, reason, delisting URL and
    how long it lasted (so far, while open); the HELO name's listings count too."""
    make_address(hostname="mta1.example.com")
    zen = make_list("zen.example", weight="major", delist_url="https://zen.example/remove")
    dbl = make_list("dbl.example", kind="domain")
    listing(
        zen,
        NOW - timedelta(hours=26, minutes=10),
        codes=["127.0.0.2", "127.0.0.4"],
        meanings=["SBL", "XBL"],
        reason="see https://zen.example",
    )
    listing(dbl, NOW - 50 * H, NOW - 48 * H, address="mta1.example.com", meanings=["spam"])
    detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    first, second = detail.listings
    assert (first.zone, first.weight, first.reason) == (
        "zen.example",
        "major",
        "see https://zen.example",
    )
    assert first.codes_text == "127.0.0.2 SBL, 127.0.0.4 XBL"
    assert first.delist_url == "https://zen.example/remove"
    assert first.duration == timedelta(hours=26, minutes=10)
    assert first.duration_text == "1 d 2 h"
    assert first.blocklist_url.endswith(f"/blocklist/{zen.pk}/")
    assert (second.address, second.duration, second.is_open) == ("mta1.example.com", 2 * H, False)


def test_latest_answers_per_list():
    """The latest stored answer per list, for the address and its HELO name, by zone."""
    make_address(hostname="mta1.example.com")
    zen, dbl = make_list("zen.example"), make_list("dbl.example", kind="domain")
    at = NOW - H
    AddressCheck.objects.create(
        address="192.0.2.1",
        blocklist=zen,
        status="listed",
        codes=["127.0.0.2"],
        checked=at,
        fresh_until=at,
    )
    AddressCheck.objects.create(
        address="mta1.example.com", blocklist=dbl, status="clean", checked=at, fresh_until=at
    )
    AddressCheck.objects.create(
        address="192.0.2.2", blocklist=zen, status="listed", checked=at, fresh_until=at
    )
    detail = details.address_detail(address="192.0.2.1", rng=WEEK, now=NOW)
    assert [(c.zone, c.address, c.status, c.codes) for c in detail.checks] == [
        ("dbl.example", "mta1.example.com", "clean", []),
        ("zen.example", "192.0.2.1", "listed", ["127.0.0.2"]),
    ]


def test_traffic_is_summed_per_hour_with_zeros_filled():
    """Messages from the address per hour of the range: other addresses and hours outside
    the range are left out, empty hours are zero."""
    make_address()
    rng = parse("24h", now=NOW)
    AddressCount.objects.create(hour=rng.start, address="192.0.2.1", count=5)
    AddressCount.objects.create(hour=rng.start + 3 * H, address="192.0.2.1", count=7)
    AddressCount.objects.create(hour=rng.start + 3 * H, address="192.0.2.2", count=100)
    AddressCount.objects.create(hour=rng.start - H, address="192.0.2.1", count=100)
    detail = details.address_detail(address="192.0.2.1", rng=rng, now=NOW)
    assert detail.traffic_bucket == "hour"
    assert len(detail.traffic) == 24
    assert detail.traffic[:4] == [
        (rng.start, 5),
        (rng.start + H, 0),
        (rng.start + 2 * H, 0),
        (rng.start + 3 * H, 7),
    ]
    assert sum(count for _, count in detail.traffic) == 12


def test_traffic_over_a_year_is_per_day_and_never_per_minute():
    """A long range sums the hours of each day; a short custom range still counts per hour."""
    make_address()
    year = parse("1y", now=NOW)
    day = datetime(2026, 6, 1, tzinfo=UTC)
    for hour, count in ((0, 2), (13, 3), (23, 4)):
        AddressCount.objects.create(hour=day + hour * H, address="192.0.2.1", count=count)
    detail = details.address_detail(address="192.0.2.1", rng=year, now=NOW)
    assert detail.traffic_bucket == "day"
    assert dict(detail.traffic)[day] == 9
    short = parse("custom", "2026-06-01T12:10", "2026-06-01T15:00", now=NOW)
    assert short.bucket == "minute"
    detail = details.address_detail(address="192.0.2.1", rng=short, now=NOW)
    assert detail.traffic == [(day + 12 * H, 0), (day + 13 * H, 3), (day + 14 * H, 0)]


def test_address_figure_shades_listings_in_range_by_weight():
    """The chart has the traffic bars and one shaded period per listing in the range,
    clipped to it and coloured by list weight, with a hover marker linking to the list."""
    make_address()
    rng = parse("24h", now=NOW)
    AddressCount.objects.create(hour=rng.start + H, address="192.0.2.1", count=4)
    zen, minor = make_list("zen.example", weight="major"), make_list("minor.example")
    listing(zen, rng.start - 5 * H, rng.start + 2 * H)
    listing(minor, NOW - H)
    listing(zen, rng.start - 50 * H, rng.start - 40 * H)  # before the range: not shaded
    figure = as_json(
        details.address_figure(detail=details.address_detail(address="192.0.2.1", rng=rng, now=NOW))
    )
    bars, markers = figure["data"]
    assert bars["type"] == "bar" and bars["y"][1] == 4 and sum(bars["y"]) == 4
    shapes = sorted(figure["layout"]["shapes"], key=lambda s: s["x0"])
    assert [(s["x0"], s["x1"], s["fillcolor"]) for s in shapes] == [
        (details.iso(rng.start), details.iso(rng.start + 2 * H), "#c0392b"),
        (details.iso(NOW - H), details.iso(rng.end), "#f0ad4e"),
    ]
    assert len(markers["customdata"]) == 2
    assert all(link.startswith("/") for link in markers["customdata"])
    assert "minor.example" in " ".join(markers["text"])


# --- blocklist -------------------------------------------------------------------------------


def test_blocklist_listings_and_counts():
    """Open listings now, listings closed in the range (newest first), and the counts of
    open and of opened-in-range listings."""
    zen = make_list("zen.example", weight="major")
    listing(zen, NOW - 100 * 24 * H, address="192.0.2.1")
    listing(zen, NOW - 2 * H, address="192.0.2.2", pool="risky")
    listing(zen, NOW - 30 * H, NOW - 20 * H, address="192.0.2.3")
    listing(zen, NOW - 60 * H, NOW - 10 * H, address="192.0.2.4")
    listing(zen, NOW - 30 * 24 * H, NOW - 20 * 24 * H, address="192.0.2.5")  # closed earlier
    listing(make_list("other.example"), NOW - H, address="192.0.2.6")  # another list
    detail = details.blocklist_detail(blocklist=zen, rng=WEEK, now=NOW)
    assert [(r.address, r.pool) for r in detail.open_listings] == [
        ("192.0.2.2", "risky"),
        ("192.0.2.1", "normal"),
    ]
    assert [r.address for r in detail.closed_listings] == ["192.0.2.4", "192.0.2.3"]
    assert detail.open_count == 2
    assert detail.opened_in_range == 3
    assert detail.open_listings[0].address_url.endswith("/address/192.0.2.2/")


def test_codes_seen_counts_listings_per_code_and_meaning():
    """Each code and meaning counts the listings of the range that carried it; a listing
    over before the range does not count, one opened before it and still open does."""
    zen = make_list("zen.example")
    both = {"codes": ["127.0.0.2", "127.0.0.4"], "meanings": ["SBL", "XBL"]}
    listing(zen, NOW - 40 * 24 * H, address="192.0.2.1", **both)  # open since before
    listing(zen, NOW - 3 * H, NOW - H, address="192.0.2.2", **both)
    listing(zen, NOW - 2 * H, address="192.0.2.3", codes=["127.0.0.2"], meanings=["SBL"])
    listing(zen, NOW - 30 * 24 * H, NOW - 29 * 24 * H, address="192.0.2.4", codes=["127.0.0.9"])
    detail = details.blocklist_detail(blocklist=zen, rng=WEEK, now=NOW)
    assert [(c.code, c.meaning, c.listings) for c in detail.codes_seen] == [
        ("127.0.0.2", "SBL", 3),
        ("127.0.0.4", "XBL", 2),
    ]


def test_error_rate_is_unknown_answers_over_the_days_queries():
    """5 unknown answers (summed over error kinds and runs) to 100 queries is 5 %; another
    list's errors and runs outside the range do not count; no queries gives None."""
    zen = make_list("zen.example")
    day = datetime(2026, 11, 25, tzinfo=UTC)
    rng = TimeRange("custom", day, day + timedelta(days=2), "hour")

    def run(at: datetime, errors: dict) -> None:
        CheckRun.objects.create(trigger="schedule", started=at, errors=errors)

    run(day + H, {"zen.example": {"timeout": 2, "refused": 1}, "other.example": {"timeout": 9}})
    run(day + 5 * H, {"zen.example": {"error-code": 2}})
    run(day + 6 * H, {"other.example": {"timeout": 4}})
    run(day - H, {"zen.example": {"timeout": 50}})
    run(day + 30 * H, {"zen.example": {"timeout": 1}})
    QueryUsage.objects.create(blocklist=zen, day=date(2026, 11, 25), queries=100)
    listing(zen, day + 2 * H)
    detail = details.blocklist_detail(blocklist=zen, rng=rng, now=NOW)
    first, second = detail.days
    assert (first.day, first.unknown, first.queries, first.opened) == (day.date(), 5, 100, 1)
    assert first.error_percent == pytest.approx(5.0)
    assert (second.unknown, second.queries, second.error_percent) == (1, 0, None)


def test_blocklist_events_newest_first_capped():
    """The list's events up to the range's end, newest first, at most 50."""
    zen, other = make_list("zen.example"), make_list("other.example")
    BlocklistEvent.objects.bulk_create(
        BlocklistEvent(kind="opened", blocklist=zen, address=f"192.0.2.{i}", created=NOW - i * H)
        for i in range(1, 61)
    )
    BlocklistEvent.objects.create(kind="opened", blocklist=other, created=NOW - H / 2)
    BlocklistEvent.objects.create(kind="closed", blocklist=zen, created=NOW + H)  # after
    detail = details.blocklist_detail(blocklist=zen, rng=parse("24h", now=NOW), now=NOW)
    assert len(detail.events) == details.EVENT_CAP
    assert detail.events[0].address == "192.0.2.1"
    assert detail.events[-1].address == "192.0.2.50"


def test_blocklist_settings_summary():
    """The summary shows zone, kind, weight, enabled, the self-test state and the cap."""
    zen = make_list(
        "zen.example",
        weight="major",
        enabled=False,
        max_per_day=10000,
        misbehaving=True,
        misbehaving_reason="lists 127.0.0.1",
    )
    summary = dict(details.blocklist_detail(blocklist=zen, rng=WEEK, now=NOW).settings)
    assert summary["Zone"] == "zen.example"
    assert summary["Enabled"] == "no"
    assert summary["Weight"].startswith("Major")
    assert summary["Self-test"] == "misbehaving: lists 127.0.0.1"
    assert summary["Daily cap"] == "10,000 queries"
    zen.nameservers, zen.mirror = "127.0.0.1:5353", True
    summary = dict(details.blocklist_detail(blocklist=zen, rng=WEEK, now=NOW).settings)
    assert summary["Daily cap"] == "none (local mirror)"


def test_blocklist_figure_has_error_line_and_opened_bars():
    """The chart draws the error rate in % per day and listings opened per day on a second
    axis, JSON-serializable, a day without queries as a gap."""
    zen = make_list("zen.example")
    day = datetime(2026, 11, 25, tzinfo=UTC)
    rng = TimeRange("custom", day, day + timedelta(days=2), "hour")
    CheckRun.objects.create(trigger="schedule", started=day + H, errors={"zen.example": {"t": 5}})
    QueryUsage.objects.create(blocklist=zen, day=day.date(), queries=200)
    listing(zen, day + 26 * H)
    figure = as_json(
        details.blocklist_figure(detail=details.blocklist_detail(blocklist=zen, rng=rng, now=NOW))
    )
    bars, line = figure["data"]
    assert line["y"] == [2.5, None]
    assert bars["y"] == [0, 1] and bars["yaxis"] == "y2"
    assert figure["layout"]["yaxis2"]["overlaying"] == "y"


# --- spike -----------------------------------------------------------------------------------

STARTED = NOW - 3 * H


def dsn(minute: datetime, count: int, model=DSNCount, **keys) -> None:
    fields = {
        "pool": "normal",
        "source": "mx1",
        "recipient_domain": "example.com",
        "original_domain": "example.org",
        "status": "5.1.1",
        "reporting_mta": "mx.example.org",
    } | keys
    if model is DSNHourly:
        DSNHourly.objects.create(count=count, hour=minute, **fields)
        return
    # As a flush writes it: the minute's row, and the same count added to its hour.
    DSNCount.objects.create(count=count, minute=minute, **fields)
    hour = minute.replace(minute=0, second=0, microsecond=0)
    row, _ = DSNHourly.objects.get_or_create(hour=hour, **fields)
    DSNHourly.objects.filter(pk=row.pk).update(count=F("count") + count)


def make_spike(dimension: str = "all", value: str = "", **values) -> Spike:
    values = {
        "started": STARTED,
        "ended": STARTED + H,
        "peak": 80,
        "baseline": 30.0,
        "cause": "rogue-server",
        "evidence": {},
    } | values
    return Spike.objects.create(dimension=dimension, value=value, **values)


@pytest.mark.parametrize(
    "dimension, value, expected",
    [
        ("all", "", 1 + 2 + 4 + 8 + 16),
        ("pool", "risky", 2),
        ("source", "mx2", 4),
        ("status", "4.4.7", 8),
        ("status_class", "5", 1 + 2 + 4 + 16),
        ("recipient_domain", "other.com", 16),
    ],
)
def test_spike_series_keeps_only_its_dimension_and_value(dimension, value, expected):
    """The series counts only the spike's own DSNs: everything for "all", the status's
    first digit for a status class, the exact value otherwise."""
    at = STARTED + timedelta(minutes=5)
    dsn(at, 1)
    dsn(at, 2, pool="risky")
    dsn(at, 4, source="mx2")
    dsn(at, 8, status="4.4.7")
    dsn(at, 16, recipient_domain="other.com")
    detail = details.spike_detail(spike=make_spike(dimension, value), now=NOW)
    assert detail.rng.bucket == "minute"
    assert dict(detail.series)[at] == expected
    assert sum(count for _, count in detail.series) == expected


def test_spike_series_spans_six_hours_before_to_one_hour_after():
    """The series runs from 6 h before the spike to 1 h after its end, per minute, with
    DSNs outside that span left out."""
    spike = make_spike()
    dsn(STARTED - 6 * H, 3)
    dsn(STARTED - 6 * H - timedelta(minutes=1), 100)
    dsn(STARTED + 2 * H - timedelta(minutes=1), 5)
    dsn(STARTED + 2 * H, 100)
    detail = details.spike_detail(spike=spike, now=NOW)
    assert (detail.rng.start, detail.rng.end) == (STARTED - 6 * H, STARTED + 2 * H)
    assert detail.series[0] == (STARTED - 6 * H, 3)
    assert detail.series[-1] == (STARTED + 2 * H - timedelta(minutes=1), 5)
    assert sum(count for _, count in detail.series) == 8


def test_long_or_old_spike_series_is_hourly_and_at_most_two_days():
    """A spike older than the per-minute retention reads the hourly rows, per hour (a minute
    still kept is counted once, in its hour); an open spike lasting days shows two days from
    6 h before its start."""
    old = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
    spike = make_spike(started=old, ended=None)
    dsn(old, 7, model=DSNHourly)
    dsn(old - 3 * H, 2, model=DSNHourly)
    dsn(old + H + timedelta(minutes=10), 4)  # a minute row still kept
    dsn(old - 6 * H + 2 * timedelta(days=1), 100, model=DSNHourly)  # past two days
    detail = details.spike_detail(spike=spike, now=NOW)
    assert detail.rng.bucket == "hour"
    assert (detail.rng.start, detail.rng.end) == (old - 6 * H, old - 6 * H + timedelta(days=2))
    assert len(detail.series) == 48
    series = dict(detail.series)
    assert (series[old - 3 * H], series[old], series[old + H]) == (2, 7, 4)
    assert sum(series.values()) == 13


@pytest.mark.parametrize(
    "rows, expected_window",
    [
        ([], 15),
        ([("", "", 30)], 30),
        ([("", "", 30), ("source", "", 10)], 10),
        ([("", "", 30), ("source", "", 10), ("source", "mx1", 20)], 20),
        ([("source", "mx9", 5), ("pool", "", 6)], 15),
    ],
)
def test_baseline_per_minute_uses_the_window_that_applies(rows, expected_window):
    """The baseline (DSNs per detection window) becomes DSNs per minute with the window of
    the series' own threshold row, else its dimension's, else the global one (15 min)."""
    for dimension, value, window in rows:  # the global row exists already (migration)
        SpikeThreshold.objects.update_or_create(
            dimension=dimension, value=value, defaults={"window_minutes": window}
        )
    if ("source", "mx1") not in {(d, v) for d, v, _ in rows}:
        SpikeThreshold.objects.create(
            dimension="source", value="mx1", window_minutes=3, enabled=False
        )
    detail = details.spike_detail(spike=make_spike("source", "mx1", baseline=60.0), now=NOW)
    assert detail.window_minutes == expected_window
    assert detail.baseline_per_bucket == pytest.approx(60.0 / expected_window)


def test_baseline_per_hour_bucket():
    """On an hourly series the baseline counts an hour's worth of windows."""
    spike = make_spike(ended=None, started=NOW - 20 * H, baseline=5.0)
    detail = details.spike_detail(spike=spike, now=NOW)
    assert detail.rng.bucket == "hour"
    assert detail.baseline_per_bucket == pytest.approx(5.0 * 60 / 15)


def test_evidence_is_ready_to_read_and_unknown_keys_stay_raw():
    """Top lists become (label, count) tables in a fixed order, every cause's case is kept,
    and keys the page does not know are shown as stored."""
    evidence = {
        "summary": ["90% of the DSNs come from mx1"],
        "causes": [{"name": "rogue-server", "confidence": 0.72, "evidence": ["mx1 dominates"]}],
        "total": 120,
        "top_statuses": [["5.1.1", 100], ["5.7.1", 20]],
        "top_sources": [["mx1", 108], ["mx2", 12]],
        "source_baselines": {"mx2": 3.0, "mx1": 0.25},
        "new_thing": {"a": 1},
        "top_reporting_mtas": "garbled",
    }
    view = details.spike_detail(spike=make_spike(evidence=evidence), now=NOW).evidence
    assert view.summary == ["90% of the DSNs come from mx1"]
    assert view.total == 120
    assert [(t.key, t.rows) for t in view.tables] == [
        ("top_sources", [("mx1", 108), ("mx2", 12)]),
        ("top_statuses", [("5.1.1", 100), ("5.7.1", 20)]),
        ("source_baselines", [("mx2", 3.0), ("mx1", 0.2)]),
    ]
    assert view.causes == [details.CauseCase("rogue-server", 0.72, ["mx1 dominates"])]
    assert view.raw == [("new_thing", '{"a": 1}'), ("top_reporting_mtas", '"garbled"')]


def test_spike_figure_draws_series_baseline_and_shaded_period():
    """The chart has the series, the baseline as a flat dashed line, the spike shaded."""
    dsn(STARTED + timedelta(minutes=2), 9)
    spike = make_spike(baseline=45.0)
    figure = as_json(details.spike_figure(detail=details.spike_detail(spike=spike, now=NOW)))
    series, usual = figure["data"]
    assert max(series["y"]) == 9
    assert usual["y"] == [3.0, 3.0] and usual["line"]["dash"] == "dash"
    (shade,) = figure["layout"]["shapes"]
    assert (shade["x0"], shade["x1"]) == (details.iso(STARTED), details.iso(STARTED + H))
