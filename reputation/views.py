"""The dashboard: the admin index with the overview and charts, each chart's data as JSON for
its filters, and the address, blocklist and spike pages. Staff only (wrapped in
`admin.site.admin_view` by the URL conf); reading needs the viewers' permissions."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render

from reputation import charts, timerange
from reputation.models import Blocklist, Spike
from reputation.overview import overview
from reputation.traffic import traffic
from routing.models import Pool

VIEW_PERMISSION = "reputation.view_listing"  # every viewer and operator has it


@dataclass(frozen=True)
class Filters:
    rng: timerange.TimeRange
    pool: str | None
    pools: list[str]


class BadFilter(ValueError):
    pass


def filters(request: HttpRequest) -> Filters:
    """The time range and pool a request asks for. Raises BadFilter with a message."""
    get = request.GET
    try:
        rng = timerange.parse(get.get("range"), get.get("start"), get.get("end"))
    except timerange.RangeError as exc:
        raise BadFilter(str(exc)) from None
    pools = list(Pool.objects.values_list("name", flat=True))
    pool = get.get("pool") or None
    if pool is not None and pool not in pools:
        raise BadFilter(f"No pool named {pool!r}.")
    return Filters(rng, pool, pools)


def require_view(request: HttpRequest) -> None:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied


def page_filters(request: HttpRequest) -> tuple[Filters, str]:
    """Filters for a page: a bad value falls back to the defaults, with the error shown."""
    try:
        return filters(request), ""
    except BadFilter as exc:
        default = timerange.parse(None)
        return Filters(default, None, list(Pool.objects.values_list("name", flat=True))), str(exc)


def chart_cards(selected: Filters) -> list[dict]:
    """Every chart's figure for the page's filters. Without a pool filter, the traffic and
    share charts draw from one read of the routing counts."""
    series = None if selected.pool else traffic(rng=selected.rng)
    cards = []
    for chart in charts.CHARTS.values():
        fig = chart.figure(rng=selected.rng, pool=selected.pool, series=series)
        cards.append({"chart": chart, "figure": fig, "element": f"pw-figure-{chart.name}"})
    return cards


def dashboard_context(request: HttpRequest) -> dict:
    if not request.user.has_perm(VIEW_PERMISSION):
        return {}
    selected, problem = page_filters(request)
    return {
        "dashboard": overview(),
        "filters": selected,
        "filter_problem": problem,
        "presets": list(timerange.PRESETS),
        "cards": chart_cards(selected),
    }


def index(request: HttpRequest) -> HttpResponse:
    """The admin index, with the dashboard above the list of settings."""
    return admin.site.index(request, extra_context=dashboard_context(request))


def chart(request: HttpRequest, name: str) -> JsonResponse:
    """One chart's figure for the filters in the query string."""
    require_view(request)
    found = charts.CHARTS.get(name)
    if found is None:
        return JsonResponse({"error": f"No chart named {name!r}."}, status=404)
    try:
        selected = filters(request)
    except BadFilter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(found.figure(rng=selected.rng, pool=selected.pool))


def detail_page(
    request: HttpRequest, template: str, title: str, context: dict, *, chart: charts.Chart
) -> HttpResponse:
    selected, problem = page_filters(request)
    card = {"chart": chart, "figure": context.pop("figure"), "element": "pw-figure-detail"}
    page = {"title": title, "filters": selected, "filter_problem": problem, "card": card}
    page["presets"] = list(timerange.PRESETS)
    return render(request, template, admin.site.each_context(request) | page | context)


def address(request: HttpRequest, address: str) -> HttpResponse:
    from reputation import details

    require_view(request)
    selected, _ = page_filters(request)
    detail = details.address_detail(address=address, rng=selected.rng)
    if detail is None:
        raise Http404("Not a pool address, and never listed.")
    context = {"detail": detail, "figure": details.address_figure(detail=detail)}
    chart = charts.Chart("address", "Mail sent from the address, and its listings", "")
    return detail_page(request, "dashboard/address.html", address, context, chart=chart)


def blocklist(request: HttpRequest, pk: int) -> HttpResponse:
    from reputation import details

    require_view(request)
    selected, _ = page_filters(request)
    found = get_object_or_404(Blocklist, pk=pk)
    detail = details.blocklist_detail(blocklist=found, rng=selected.rng)
    context = {"detail": detail, "figure": details.blocklist_figure(detail=detail)}
    chart = charts.Chart("blocklist", "Unknown answers and listings opened per day", "")
    return detail_page(request, "dashboard/blocklist.html", found.zone, context, chart=chart)


def spike(request: HttpRequest, pk: int) -> HttpResponse:
    from reputation import details

    require_view(request)
    found = get_object_or_404(Spike, pk=pk)
    detail = details.spike_detail(spike=found)
    context = {"detail": detail, "figure": details.spike_figure(detail=detail)}
    chart = charts.Chart("spike", "DSNs around the spike", "", ranged=False)
    title = f"DSN spike: {found.dimension} {found.value}".strip()
    return detail_page(request, "dashboard/spike.html", title, context, chart=chart)
