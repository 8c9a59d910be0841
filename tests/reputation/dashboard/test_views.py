"""The dashboard's pages and chart data over HTTP: who may see them, and what bad filters get."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from reputation.dashboard.charts import CHARTS

pytestmark = pytest.mark.django_db


@pytest.fixture
def listed(db):
    from reputation.models import Blocklist, Listing, Spike

    zen = Blocklist.objects.create(zone="zen.test", weight="major")
    Listing.objects.create(
        address="192.0.2.1",
        pool="normal",
        blocklist=zen,
        codes=["127.0.0.2"],
        meanings=["SBL"],
        opened=timezone.now() - timedelta(hours=3),
    )
    spike = Spike.objects.create(
        dimension="all", started=timezone.now(), peak=50, baseline=2, cause="spam-attack"
    )
    return {"zen": zen, "spike": spike}


def test_anonymous_visitors_are_sent_to_the_login(client):
    """Neither the index nor chart data nor a detail page is shown without a login."""
    for url in ("/admin/", "/admin/dashboard/charts/traffic.json", "/admin/dashboard/spike/1/"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_without_a_role_gets_no_data(client, django_user_model):
    """A staff account in neither group sees the admin index, but no dashboard and no data."""
    user = django_user_model.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(user)
    assert "pw-dashboard" not in client.get("/admin/").content.decode()
    assert client.get("/admin/dashboard/charts/traffic.json").status_code == 403


def test_viewer_sees_the_dashboard_with_every_chart(client, viewer, listed):
    """The index carries the overview (the listed address) and a card per chart that fetches
    its figure; no figure is computed for the page itself."""
    client.force_login(viewer)
    page = client.get("/admin/").content.decode()
    assert "192.0.2.1" in page and "zen.test" in page
    for name in CHARTS:
        assert f'id="pw-chart-{name}"' in page
        assert f'data-url="/admin/dashboard/charts/{name}.json"' in page
    assert "pw-figure-" not in page
    assert "plotly/plotly-cartesian.min.js" in page


@pytest.mark.parametrize("name", list(CHARTS))
def test_each_chart_answers_json_for_every_preset(client, viewer, listed, name):
    """Every chart gives a figure with data and a layout for every preset range."""
    client.force_login(viewer)
    for preset in ("24h", "7d", "30d", "1y"):
        response = client.get(f"/admin/dashboard/charts/{name}.json", {"range": preset})
        assert response.status_code == 200, response.content
        figure = response.json()
        assert isinstance(figure["data"], list) and "layout" in figure


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"range": "2w"}, "Unknown time range"),
        ({"range": "custom", "start": "2026-11-01"}, "needs its end"),
        ({"range": "custom", "start": "yesterday", "end": "2026-11-02"}, "Not a date"),
        ({"range": "custom", "start": "2026-11-02", "end": "2026-11-01"}, "after its start"),
        ({"pool": "nope"}, "No pool named"),
    ],
)
def test_bad_filters_get_a_json_error(client, viewer, query, message):
    """A bad range or pool is a 400 with a message, never a traceback."""
    client.force_login(viewer)
    response = client.get("/admin/dashboard/charts/traffic.json", query)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_unknown_chart_is_404(client, viewer):
    client.force_login(viewer)
    assert client.get("/admin/dashboard/charts/nothing.json").status_code == 404


def test_custom_range_is_accepted(client, viewer):
    """A custom range of two dates gives a figure whose axis spans exactly those dates."""
    client.force_login(viewer)
    query = {"range": "custom", "start": "2026-11-01", "end": "2026-11-03"}
    figure = client.get("/admin/dashboard/charts/traffic.json", query).json()
    assert figure["layout"]["xaxis"]["range"] == ["2026-11-01T00:00:00", "2026-11-03T00:00:00"]


def test_bad_filter_on_a_page_falls_back_with_a_note(client, viewer):
    """The index with a bad range still renders, with the default range and the error."""
    client.force_login(viewer)
    page = client.get("/admin/", {"range": "forever"}).content.decode()
    assert "Unknown time range" in page and 'id="pw-chart-traffic"' in page


def test_detail_pages_render_for_a_viewer(client, viewer, listed):
    """Address, blocklist and spike pages show what they are about; unknown ones are 404."""
    client.force_login(viewer)
    address = client.get("/admin/dashboard/address/192.0.2.1/").content.decode()
    assert "zen.test" in address and "127.0.0.2 SBL" in address
    blocklist = client.get(f"/admin/dashboard/blocklist/{listed['zen'].pk}/").content.decode()
    assert "192.0.2.1" in blocklist
    spike = client.get(f"/admin/dashboard/spike/{listed['spike'].pk}/").content.decode()
    assert "spam-attack" in spike
    assert client.get("/admin/dashboard/address/203.0.113.9/").status_code == 404
    assert client.get("/admin/dashboard/spike/999999/").status_code == 404


def test_plotly_is_the_vendored_partial_bundle(client):
    """plotly.js is the cartesian partial bundle kept in the repository, served locally."""
    response = client.get("/static/plotly/plotly-cartesian.min.js")
    assert response.status_code == 200
    head = b"".join(response.streaming_content)[:300]
    assert b"plotly.js" in head and b"v4.1.1" in head


def test_each_card_takes_its_own_filters_from_the_query_string(client, viewer, listed):
    """`<chart>.range` and `<chart>.pool` set one card's filters (as the script keeps them in
    the URL); the page-wide `range` applies to the others."""
    client.force_login(viewer)
    query = {"traffic.range": "30d", "traffic.pool": "normal", "range": "24h"}
    page = client.get("/admin/", query).content.decode()
    assert 'data-query="range=30d&amp;pool=normal"' in page
    assert 'data-query="range=24h"' in page
    assert '<option value="normal" selected>' in page


def test_a_paged_chart_answers_its_page(client, viewer, listed):
    """The listing timeline's JSON says which page of how many it draws; a bad page is a 400."""
    client.force_login(viewer)
    figure = client.get("/admin/dashboard/charts/listings.json", {"page": "1"}).json()
    assert figure["page"]["number"] == 1 and figure["page"]["pages"] >= 1
    response = client.get("/admin/dashboard/charts/listings.json", {"page": "0"})
    assert response.status_code == 400


def test_pages_and_chart_json_are_compressed(client, viewer, listed):
    """The dashboard's HTML and each chart's JSON are gzipped for a client that accepts it."""
    client.force_login(viewer)
    for url in ("/admin/", "/admin/dashboard/charts/traffic.json"):
        response = client.get(url, headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        assert response["Content-Encoding"] == "gzip"


def test_a_chosen_time_zone_applies_to_charts_and_pages(client, viewer, listed):
    """The pw_tz cookie moves every chart time to that zone and labels it; the header names
    it. An unknown zone is ignored (TIME_ZONE, here UTC)."""
    client.force_login(viewer)
    client.cookies["pw_tz"] = "Europe/Berlin"
    query = {"range": "custom", "start": "2026-11-01", "end": "2026-11-03"}
    figure = client.get("/admin/dashboard/charts/traffic.json", query).json()
    axis = figure["layout"]["xaxis"]
    # The custom range's ends are Berlin's too, as its date-time inputs show them.
    assert axis["range"] == ["2026-11-01T00:00:00", "2026-11-03T00:00:00"]
    assert axis["title"]["text"] == "time (CET)" and axis["hoverformat"].endswith(" CET")
    page = client.get("/admin/").content.decode()
    assert "Europe/Berlin" in page and '<option value="Europe/Berlin" selected>' in page
    client.cookies["pw_tz"] = "Mars/Olympus"
    figure = client.get("/admin/dashboard/charts/traffic.json", query).json()
    assert figure["layout"]["xaxis"]["title"]["text"] == "time (UTC)"
