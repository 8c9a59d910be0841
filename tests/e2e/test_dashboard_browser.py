"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright, against
the live test server. Screenshots of the main pages go to test-artifacts/dashboard/."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from tests.support import REPO, require_tool, skip_missing

# The live server needs committed data; serialized_rollback restores the migrated data (groups,
# permissions) for each test and keeps the flush from re-creating it under new ids, which
# would break the next test that restores it (tests/reputation/alerts/test_sending_race.py).
pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

CHROMIUM = os.environ.get("POOLWARDEN_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "dashboard"
# As root and on a closed network: no sandbox, and none of Chromium's own background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser():
    """Chromium for one test. Not shared between tests: Playwright's sync API switches
    greenlets, and a session that outlives a test leaves Django's context-local connection
    without its serialized data at teardown, so the flush re-creates groups under new ids."""
    require_tool("chromium", CHROMIUM, install="apt-get install chromium")
    try:
        from playwright import sync_api
    except ImportError:
        skip_missing("playwright", "the Python package", "pip install -e '.[dev]'")
    from django.db import connections

    # Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
    # still plain synchronous code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
        # Connections opened while Playwright ran live in its context: close them here, or
        # they outlive the test database (pytest-django closes only its own context's).
        connections.close_all()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    yield opened
    context.close()


NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def data(db):
    """Two pools, two lists, a week of traffic and scores, an older month, a listing, an
    open DSN spike, a sweep and an alert."""
    from reputation.models import AddressCheck, Blocklist, CheckRun, DSNHourly, Listing, Spike
    from reputation.models.alerts import Event
    from routing.models import (
        DSNCount,
        DSNTotal,
        IPRange,
        Pool,
        RoutingCount,
        RoutingHourly,
        RoutingPolicy,
        ScoreCount,
    )

    Pool.objects.all().delete()
    normal = Pool.objects.create(name="normal", kind="normal")
    risky = Pool.objects.create(name="high-risk", kind="high-risk", take_listed_out=False)
    IPRange.objects.create(pool=normal, cidr="192.0.2.0/30")
    IPRange.objects.create(pool=risky, cidr="198.51.100.0/30")
    normal.sync_addresses()
    risky.sync_addresses()
    RoutingPolicy.load()
    zen = Blocklist.objects.create(zone="zen.test", weight="major", codes={"127.0.0.2": "SBL"})
    minor = Blocklist.objects.create(zone="minor.test", weight="minor")

    recent = NOW - timedelta(hours=2)
    for pool, reasons, count in (
        ("normal", "none", 100),
        ("high-risk", "spam-score", 30),
        ("high-risk", "dsn", 10),
    ):
        # As a flush writes them: per minute and per hour.
        RoutingCount.objects.create(minute=recent, pool=pool, reasons=reasons, count=count)
        RoutingHourly.objects.create(
            hour=recent.replace(minute=0), pool=pool, reasons=reasons, count=count
        )
    old_hour = (NOW - timedelta(days=10)).replace(minute=0)
    RoutingHourly.objects.create(hour=old_hour, pool="normal", reasons="none", count=500)
    hour = recent.replace(minute=0)
    day = hour.replace(hour=0)
    ScoreCount.objects.create(day=day, pool="normal", bin=2, count=100)
    ScoreCount.objects.create(day=day, pool="high-risk", bin=14, count=30)
    bounced = NOW - timedelta(minutes=30)
    DSNCount.objects.create(minute=bounced, pool="high-risk", count=40)
    DSNHourly.objects.create(hour=bounced.replace(minute=0), pool="high-risk", count=40)
    DSNTotal.objects.create(hour=bounced.replace(minute=0), pool="high-risk", count=40)

    spike = Spike.objects.create(
        dimension="all",
        started=NOW - timedelta(minutes=40),
        peak=40,
        baseline=2.0,
        cause="backscatter",
        confidence=0.8,
        evidence={},
    )
    listing = Listing.objects.create(
        address="192.0.2.1",
        pool="normal",
        blocklist=zen,
        codes=["127.0.0.2"],
        meanings=["SBL"],
        opened=NOW - timedelta(days=1),
    )
    Listing.objects.create(
        address="198.51.100.2",
        pool="high-risk",
        blocklist=minor,
        codes=["127.0.0.2"],
        meanings=[],
        opened=NOW - timedelta(days=5),
        closed=NOW - timedelta(days=4),
    )
    for address in ("192.0.2.1", "192.0.2.2"):
        AddressCheck.objects.create(
            address=address,
            blocklist=zen,
            status="listed" if address == "192.0.2.1" else "clean",
            checked=NOW - timedelta(minutes=10),
            fresh_until=NOW + timedelta(minutes=50),
        )
    CheckRun.objects.create(
        trigger="schedule",
        started=NOW - timedelta(minutes=11),
        finished=NOW - timedelta(minutes=10, seconds=18),
        addresses=8,
        queries=16,
        listed=1,
        clean=13,
        unknown=2,
        errors={"minor.test": {"timeout": 2}},
    )
    Event.objects.create(
        kind="listing-opened",
        severity="critical",
        source="test:1",
        pool="normal",
        address="192.0.2.1",
        zone="zen.test",
        subject="192.0.2.1 (normal) listed on zen.test",
    )
    return {"spike": spike, "listing": listing, "zen": zen}


def login(page, live_server, user) -> None:
    page.goto(f"{live_server.url}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-" + user.username)
    page.click("input[type=submit]")
    page.wait_for_url(f"{live_server.url}/admin/")


def wait_drawn(page, chart: str, query: str | None = None) -> None:
    """Until the chart's plot is drawn (for `query`, when given)."""
    selector = f"#pw-chart-{chart} .pw-plot[data-state=ready]"
    if query is not None:
        selector += f'[data-query="{query}"]'
    page.wait_for_selector(selector, timeout=15_000)
    page.wait_for_selector(f"#pw-chart-{chart} .pw-plot .main-svg", timeout=15_000)


def traces(page, chart: str) -> dict[str, float]:
    """{trace name: sum of its y values} of a drawn chart, read from the plot itself."""
    return page.evaluate(
        """(chart) => {
            const plot = document.querySelector(`#pw-chart-${chart} .pw-plot`);
            const out = {};
            for (const trace of plot.data) {
                const ys = (trace.y || []).filter((y) => typeof y === "number");
                out[trace.name] = ys.reduce((a, b) => a + b, 0);
            }
            return out;
        }""",
        chart,
    )


def pool_total(sums: dict[str, float], pool: str) -> float:
    return sum(v for name, v in sums.items() if name.startswith(pool + " "))


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_viewer_sees_overview_and_every_chart_drawn(page, live_server, viewer, data):
    """A viewer's admin index shows the listed address, the sweep, the spike and the alert,
    and every chart is an SVG drawn by Plotly from the recorded counts."""
    from reputation.dashboard.charts import CHARTS

    login(page, live_server, viewer)
    for name in CHARTS:
        wait_drawn(page, name)
    overview = page.inner_text(".pw-overview")
    assert "192.0.2.1" in overview and "zen.test" in overview
    assert "16 queries" in overview and "2 unknown answers" in overview
    assert "backscatter" in overview
    assert "listed on zen.test" in overview
    # Every card fetched its own figure (none is embedded in the page) and drew it.
    assert page.locator("script[id^=pw-figure-]").count() == 0
    assert int(page.evaluate("document.documentElement.dataset.pwFirstChart")) > 0
    sums = traces(page, "traffic")
    assert pool_total(sums, "normal") == 100
    assert pool_total(sums, "high-risk") == 40
    scores = traces(page, "scores")
    assert sum(scores.values()) == 130
    assert traces(page, "dsn")["DSNs"] == 40
    bars = page.evaluate(
        """() => document.querySelector("#pw-chart-listings .pw-plot").data
            .flatMap((trace) => trace.y || [])"""
    )
    assert sorted(bars) == ["192.0.2.1 · zen.test", "198.51.100.2 · minor.test"]
    screenshot(page, "index-viewer")


def test_filters_change_the_data(page, live_server, viewer, data):
    """A longer range brings in the older month; the pool filter leaves one pool."""
    login(page, live_server, viewer)
    wait_drawn(page, "traffic")
    card = "#pw-chart-traffic"
    page.select_option(f"{card} select[name=range]", "30d")
    wait_drawn(page, "traffic", "range=30d")
    assert pool_total(traces(page, "traffic"), "normal") == 600
    page.select_option(f"{card} select[name=pool]", "high-risk")
    wait_drawn(page, "traffic", "range=30d&pool=high-risk")
    sums = traces(page, "traffic")
    assert pool_total(sums, "high-risk") == 40
    assert pool_total(sums, "normal") == 0


def test_filters_kept_in_the_url_survive_a_reload_and_back(page, live_server, viewer, data):
    """A card's filters go into the page's URL: a reload draws the same, the other cards keep
    their defaults, and the back button returns to the earlier filters."""
    login(page, live_server, viewer)
    wait_drawn(page, "traffic", "")
    card = "#pw-chart-traffic"
    page.select_option(f"{card} select[name=range]", "30d")
    wait_drawn(page, "traffic", "range=30d")
    page.select_option(f"{card} select[name=pool]", "high-risk")
    wait_drawn(page, "traffic", "range=30d&pool=high-risk")
    assert "traffic.range=30d" in page.url and "traffic.pool=high-risk" in page.url
    page.reload()
    wait_drawn(page, "traffic", "range=30d&pool=high-risk")
    assert page.input_value(f"{card} select[name=range]") == "30d"
    assert page.input_value(f"{card} select[name=pool]") == "high-risk"
    assert pool_total(traces(page, "traffic"), "normal") == 0
    wait_drawn(page, "dsn", "")
    assert page.input_value("#pw-chart-dsn select[name=range]") == "7d"
    page.go_back()
    wait_drawn(page, "traffic", "range=30d")
    assert page.input_value(f"{card} select[name=pool]") == ""
    assert pool_total(traces(page, "traffic"), "normal") == 600


def test_auto_refresh_refetches_charts_without_reloading(page, live_server, viewer, data):
    """With auto-refresh on (kept in the URL), every card fetches its figure again while the
    page stays; switching it off takes it out of the URL."""
    login(page, live_server, viewer)
    page.goto(f"{live_server.url}/admin/?refresh=5")
    wait_drawn(page, "traffic")
    page.evaluate("window.pwNotReloaded = true")
    assert page.is_checked("#pw-refresh")
    page.wait_for_selector("#pw-chart-traffic .pw-plot[data-refreshed]", timeout=15_000)
    assert page.evaluate("window.pwNotReloaded") is True
    page.uncheck("#pw-refresh")
    assert "refresh=" not in page.url


def test_time_zone_is_labelled_in_header_axis_and_hover(page, live_server, viewer, data):
    """With Europe/Berlin chosen, the header names the zone, the time axis is titled with it,
    and hover text ends with it; the chart's times are Berlin's wall-clock times."""
    page.context.add_cookies([{"name": "pw_tz", "value": "Europe/Berlin", "url": live_server.url}])
    login(page, live_server, viewer)
    wait_drawn(page, "traffic")
    assert page.inner_text("#pw-zone-name") == "Europe/Berlin"
    assert page.inner_text("#pw-zone-label") in ("CET", "CEST")
    axis = page.evaluate(
        """() => {
            const plot = document.querySelector("#pw-chart-traffic .pw-plot");
            return {title: plot._fullLayout.xaxis.title.text, end: plot.layout.xaxis.range[1]};
        }"""
    )
    assert axis["title"] in ("time (CET)", "time (CEST)", "time (CET/CEST)", "time (CEST/CET)")
    from zoneinfo import ZoneInfo

    berlin = datetime.now(ZoneInfo("Europe/Berlin"))
    assert axis["end"][:13] == berlin.strftime("%Y-%m-%dT%H")
    page.locator("#pw-chart-traffic").scroll_into_view_if_needed()
    box = page.locator("#pw-chart-traffic .pw-plot .nsewdrag").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    hover = page.locator("#pw-chart-traffic .hoverlayer")
    hover.locator("text").first.wait_for(timeout=5_000)
    assert "CET" in hover.text_content() or "CEST" in hover.text_content()
    screenshot(page, "index-berlin")
    # The zone selector offers the server's zone back, which drops the cookie.
    page.select_option("#pw-tz", "")
    page.wait_for_load_state()
    wait_drawn(page, "traffic")
    assert page.inner_text("#pw-zone-name") == "UTC"


def test_listing_timeline_pages(page, live_server, viewer, data, monkeypatch):
    """The listing timeline shows a page at a time with a pager, its page kept in the URL."""
    from reputation.dashboard import history

    monkeypatch.setattr(history, "TIMELINE_PAGE", 1)
    login(page, live_server, viewer)
    wait_drawn(page, "listings", "")
    pager = "#pw-chart-listings .pw-pager"
    assert "page 1 of 2" in page.inner_text(pager)
    page.click(f"{pager} [data-step='1']")
    wait_drawn(page, "listings", "range=7d&page=2")
    assert "listings.page=2" in page.url
    bars = page.evaluate(
        """() => document.querySelector("#pw-chart-listings .pw-plot").data
            .flatMap((trace) => trace.y || [])"""
    )
    assert bars == ["198.51.100.2 · minor.test"]


def test_clicking_a_spike_opens_it(page, live_server, viewer, data):
    """The DSN chart marks the open spike; clicking its marker opens the spike's page."""
    login(page, live_server, viewer)
    wait_drawn(page, "dsn")
    page.locator("#pw-chart-dsn").scroll_into_view_if_needed()
    url = f"/admin/dashboard/spike/{data['spike'].pk}/"
    point = page.evaluate(
        """(url) => {
            const plot = document.querySelector("#pw-chart-dsn .pw-plot");
            const layout = plot._fullLayout;
            for (const trace of plot.data) {
                const links = trace.customdata || [];
                const i = links.indexOf(url);
                if (i < 0) continue;
                const xa = layout[(trace.xaxis || "x").replace("x", "xaxis")];
                const ya = layout[(trace.yaxis || "y").replace("y", "yaxis")];
                const box = plot.getBoundingClientRect();
                return {
                    x: box.left + xa._offset + xa.d2p(trace.x[i]),
                    y: box.top + ya._offset + ya.d2p(trace.y[i]),
                };
            }
            return null;
        }""",
        url,
    )
    assert point is not None, "no spike marker links to the spike"
    page.mouse.move(point["x"], point["y"])
    page.mouse.click(point["x"], point["y"])
    page.wait_for_url(f"{live_server.url}{url}", timeout=10_000)
    assert "backscatter" in page.inner_text("#content")
    screenshot(page, "spike")


def test_listing_matrix_shows_listed_addresses_and_pages(page, live_server, viewer, data):
    """The matrix holds the listed address under its list and the recently delisted one; with
    more than a page of listings, "next" shows the rest and the address opens its page."""
    from reputation.dashboard.matrix import PAGE_SIZE
    from reputation.models import Listing

    login(page, live_server, viewer)
    matrix = page.locator("#pw-matrix")
    row = matrix.locator('tr[data-address="192.0.2.1"]')
    assert "listed" in row.inner_text() and "127.0.0.2" in row.inner_text()
    assert "zen.test" in matrix.locator("thead").text_content()
    assert "was listed until" in matrix.locator('tr[data-address="198.51.100.2"]').inner_text()
    assert matrix.locator(".pw-pages").count() == 0
    Listing.objects.bulk_create(
        Listing(
            address=f"10.0.0.{i}",
            pool="normal",
            blocklist=data["zen"],
            codes=["127.0.0.2"],
            opened=NOW - timedelta(hours=i),
        )
        for i in range(PAGE_SIZE + 5)
    )
    page.goto(f"{live_server.url}/admin/?msort=address")
    first = page.locator("#pw-matrix tbody tr").all_inner_texts()
    assert len(first) == PAGE_SIZE and first[0].startswith("10.0.0.0")
    page.click("#pw-matrix .pw-pages a[rel=next]")
    page.wait_for_url("**mpage=2**")
    rest = [r.split()[0] for r in page.locator("#pw-matrix tbody tr").all_inner_texts()]
    assert "192.0.2.1" in rest and "10.0.0.0" not in rest
    screenshot(page, "matrix-page-2")
    page.click('#pw-matrix a[href$="/address/192.0.2.1/"]')
    page.wait_for_url(f"{live_server.url}/admin/dashboard/address/192.0.2.1/")


def test_search_box_opens_an_address_or_lists_matches(page, live_server, viewer, data):
    login(page, live_server, viewer)
    page.fill("#pw-search-q", "192.0.2.2")
    page.press("#pw-search-q", "Enter")
    page.wait_for_url(f"{live_server.url}/admin/dashboard/address/192.0.2.2/")
    page.goto(f"{live_server.url}/admin/")
    page.fill("#pw-search-q", "198.51.100.")
    page.press("#pw-search-q", "Enter")
    page.wait_for_selector(".pw-matches")
    found = page.locator(".pw-matches tbody tr").all_inner_texts()
    assert [r.split()[0] for r in found] == [f"198.51.100.{i}" for i in range(4)]
    page.click('.pw-matches a[href$="/address/198.51.100.2/"]')
    page.wait_for_url(f"{live_server.url}/admin/dashboard/address/198.51.100.2/")
    assert "minor.test" in page.inner_text("#content")


@pytest.fixture
def delisted(data, rbldnsd, settings):
    """192.0.2.1 listed on dynamic.test (a major list closing on one clean answer), which
    rbldnsd no longer lists: the address was just delisted."""
    from reputation.models import Blocklist, Listing
    from tests.reputation.conftest import DYNAMIC_EMPTY

    settings.POOLWARDEN_NAMESERVERS = [rbldnsd.nameserver]
    settings.POOLWARDEN_DNS_TIMEOUT = 1
    rbldnsd.write_zone("dynamic.zone", DYNAMIC_EMPTY)
    dynamic = Blocklist.objects.create(
        zone="dynamic.test",
        weight="major",
        clean_to_close=1,
        max_in_flight=0,
        max_qps=0,
        codes={"127.0.0.2": "dynamic listing"},
        delist_url="https://dynamic.test/remove",
    )
    return Listing.objects.create(
        address="192.0.2.1",
        pool="normal",
        blocklist=dynamic,
        codes=["127.0.0.2"],
        meanings=["dynamic listing"],
        opened=NOW - timedelta(hours=3),
    )


def test_operator_checks_a_delisted_address_now(page, live_server, operator, delisted):
    """The operator clicks "check now" on the listed address: rbldnsd answers, the page says
    what came back, and the listing is closed."""
    from reputation.models import CheckRun, Listing

    login(page, live_server, operator)
    row = page.locator('.pw-listed tr[data-address="192.0.2.1"]')
    assert "dynamic.test" in row.inner_text()
    assert row.locator('a[href="https://dynamic.test/remove"]').count() == 1
    row.locator("button", has_text="Check now").click()
    page.wait_for_url(f"{live_server.url}/admin/dashboard/address/192.0.2.1/#pw-check")
    message = page.inner_text(".messagelist")
    assert "Checked 192.0.2.1" in message and "Listing closed on dynamic.test." in message
    delisted.refresh_from_db()
    assert delisted.closed is not None
    assert CheckRun.objects.get(address="192.0.2.1").finished is not None
    table = page.inner_text("#content")
    assert "open" in table  # zen.test: one clean answer of the two it needs
    screenshot(page, "check-now")
    page.goto(f"{live_server.url}/admin/")
    assert (
        "dynamic.test" not in page.locator('.pw-listed tr[data-address="192.0.2.1"]').inner_text()
    )
    assert Listing.objects.filter(address="192.0.2.1", closed=None).count() == 1


def test_viewer_has_no_check_now_and_a_forged_post_is_refused(page, live_server, viewer, delisted):
    from reputation.models import CheckRun

    login(page, live_server, viewer)
    assert page.locator('.pw-listed tr[data-address="192.0.2.1"]').count() == 1
    assert page.locator("button", has_text="Check now").count() == 0
    csrf = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/admin/dashboard/address/192.0.2.1/check/",
        form={"csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{live_server.url}/admin/", "X-CSRFToken": csrf},
    )
    assert response.status == 403
    assert not CheckRun.objects.filter(address="192.0.2.1").exists()
    delisted.refresh_from_db()
    assert delisted.closed is None


def test_detail_pages_render(page, live_server, viewer, data):
    """The address and blocklist pages show their listing and draw their chart."""
    login(page, live_server, viewer)
    page.goto(f"{live_server.url}/admin/dashboard/address/192.0.2.1/")
    page.wait_for_selector(".pw-plot[data-state=ready] .main-svg")
    text = page.inner_text("#content")
    assert "zen.test" in text and "SBL" in text
    screenshot(page, "address")
    page.goto(f"{live_server.url}/admin/dashboard/blocklist/{data['zen'].pk}/")
    page.wait_for_selector(".pw-plot[data-state=ready] .main-svg")
    assert "192.0.2.1" in page.inner_text("#content")
    screenshot(page, "blocklist")


def test_viewer_cannot_change_settings(page, live_server, viewer, data):
    """The routing policy page is read-only for a viewer, and a forged POST is refused."""
    from routing.models import RoutingPolicy

    login(page, live_server, viewer)
    page.goto(f"{live_server.url}/admin/routing/routingpolicy/1/change/")
    assert page.locator("input[name=_save]").count() == 0
    assert page.locator("#id_spam_threshold").count() == 0
    token = page.context.cookies()
    csrf = next(c["value"] for c in token if c["name"] == "csrftoken")
    response = page.request.post(
        f"{live_server.url}/admin/routing/routingpolicy/1/change/",
        form={"csrfmiddlewaretoken": csrf, "spam_threshold": "1.0"},
        headers={"Referer": f"{live_server.url}/admin/", "X-CSRFToken": csrf},
    )
    assert response.status == 403
    assert RoutingPolicy.load().spam_threshold == 5.0
    page.goto(f"{live_server.url}/admin/reputation/blocklist/{data['zen'].pk}/change/")
    assert page.locator("input[name=_save]").count() == 0


def route(page, live_server, token: str, score: float) -> dict:
    response = page.request.post(
        f"{live_server.url}/api/v1/route",
        data={"mail_from": "someone@example.test", "rcpt_to": ["a@b.test"], "spam_score": score},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status == 200, response.text()
    return response.json()


def test_operator_lowers_spam_threshold_and_routing_follows(page, live_server, operator, data):
    """An operator sets the threshold from 5 to 2 in the admin: a message scoring 3 then goes
    high-risk, the change is recorded, and the share chart marks it."""
    from routing import tokens
    from routing.models import SettingChange

    _, token = tokens.issue("browser test")
    assert route(page, live_server, token, 3.0)["pool"] == "normal"
    login(page, live_server, operator)
    page.goto(f"{live_server.url}/admin/routing/routingpolicy/1/change/")
    page.fill("#id_spam_threshold", "2")
    page.click("input[name=_save]")
    page.wait_for_selector(".messagelist .success")
    decision = route(page, live_server, token, 3.0)
    assert decision["pool"] == "high-risk"
    assert "spam-score" in decision["reasons"]
    change = SettingChange.objects.get(field="spam_threshold")
    assert change.username == operator.username
    assert (float(change.old), float(change.new)) == (5.0, 2.0)
    page.goto(f"{live_server.url}/admin/")
    wait_drawn(page, "share")
    shapes = page.evaluate(
        """() => (document.querySelector("#pw-chart-share .pw-plot").layout.annotations || [])
            .map((a) => a.text)"""
    )
    assert any("2" in text and operator.username in text for text in shapes), shapes
    screenshot(page, "index-operator")
