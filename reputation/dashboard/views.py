"""The dashboard: the admin index with the overview and charts, each chart's data as JSON for
its filters, and the address, blocklist and spike pages. Staff only (wrapped in
`admin.site.admin_view` by the URL conf); reading needs the viewers' permissions.

Pages and JSON are gzipped (`gzip_page`, not site-wide middleware: the API and the login page
stay as they are). BREACH needs a secret and attacker-chosen text in one compressed response:
the only secret here is the logout form's CSRF token, which Django masks afresh in every
response, and Django's GZipMiddleware adds random padding to each response besides."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.utils.http import urlencode
from django.views.decorators.gzip import gzip_page

from reputation.dashboard import charts, details, timerange, zones
from reputation.dashboard.overview import overview
from reputation.models import Blocklist, Spike
from routing.models import Pool

VIEW_PERMISSION = "reputation.view_listing"  # every viewer and operator has it


@dataclass(frozen=True)
class Filters:
    rng: timerange.TimeRange
    pool: str | None
    pools: list[str]
    page: int = 1  # of a paged chart (the listing timeline)


class BadFilter(ValueError):
    pass


FILTER_KEYS = ("range", "start", "end", "pool", "page")


def filters(query: QueryDict | dict, pools: list[str] | None = None) -> Filters:
    """The time range, pool and page a query string asks for. Raises BadFilter with a
    message."""
    try:
        rng = timerange.parse(query.get("range"), query.get("start"), query.get("end"))
    except timerange.RangeError as exc:
        raise BadFilter(str(exc)) from None
    if pools is None:
        pools = list(Pool.objects.values_list("name", flat=True))
    pool = query.get("pool") or None
    if pool is not None and pool not in pools:
        raise BadFilter(f"No pool named {pool!r}.")
    page = query.get("page") or "1"
    if not page.isdigit() or int(page) < 1:
        raise BadFilter(f"Not a page number: {page!r}.")
    return Filters(rng, pool, pools, int(page))


def card_query(query: QueryDict, name: str) -> dict[str, str]:
    """One chart's filters from the page's query string: `<chart>.range`, `<chart>.pool`, …
    (as the dashboard's script keeps them), else the page-wide `range`, `pool`, …"""
    found = {}
    for key in FILTER_KEYS:
        value = query.get(f"{name}.{key}", query.get(key, ""))
        if value:
            found[key] = value
    return found


def require_view(request: HttpRequest) -> None:
    if not request.user.has_perm(VIEW_PERMISSION):
        raise PermissionDenied


def page_filters(request: HttpRequest) -> tuple[Filters, str]:
    """Filters for a page: a bad value falls back to the defaults, with the error shown."""
    return _or_default(request.GET)


def _or_default(query: QueryDict | dict, pools: list[str] | None = None) -> tuple[Filters, str]:
    try:
        return filters(query, pools), ""
    except BadFilter as exc:
        default = timerange.parse(None)
        if pools is None:
            pools = list(Pool.objects.values_list("name", flat=True))
        return Filters(default, None, pools), str(exc)


def chart_cards(query: QueryDict) -> tuple[list[dict], list[str]]:
    """Every chart's card with its own filters from the query string, and the problems with
    them. The figures are not drawn here: each card fetches its JSON (the page shows before
    any chart is computed, and a slow chart holds up only itself)."""
    pools = list(Pool.objects.values_list("name", flat=True))
    cards, problems = [], []
    for chart in charts.CHARTS.values():
        wanted = card_query(query, chart.name)
        selected, problem = _or_default(wanted, pools)
        if problem:
            wanted = {}
            own = any(f"{chart.name}.{key}" in query for key in FILTER_KEYS)
            problems.append(f"{chart.title}: {problem}" if own else problem)
        cards.append({"chart": chart, "filters": selected, "query": urlencode(wanted)})
    return cards, list(dict.fromkeys(problems))


def dashboard_context(request: HttpRequest) -> dict:
    if not request.user.has_perm(VIEW_PERMISSION):
        return {}
    cards, problems = chart_cards(request.GET)
    return {
        "dashboard": overview(),
        "zone": zones.choices(request),
        "refreshable": True,
        "filter_problem": " ".join(problems),
        "presets": list(timerange.PRESETS),
        "cards": cards,
    }


@gzip_page
def index(request: HttpRequest) -> HttpResponse:
    """The admin index, with the dashboard above the list of settings."""
    return admin.site.index(request, extra_context=dashboard_context(request))


@gzip_page
def chart(request: HttpRequest, name: str) -> JsonResponse:
    """One chart's figure for the filters in the query string."""
    require_view(request)
    found = charts.CHARTS.get(name)
    if found is None:
        return JsonResponse({"error": f"No chart named {name!r}."}, status=404)
    try:
        selected = filters(request.GET)
    except BadFilter as exc:
        return JsonResponse({"error": str(exc)}, status=400)
    figure = found.figure(rng=selected.rng, pool=selected.pool, page=selected.page)
    return JsonResponse(figure)


def detail_page(
    request: HttpRequest,
    template: str,
    *,
    title: str,
    chart: charts.Chart,
    figure: dict,
    filtered: tuple[Filters, str],
    detail: object,
) -> HttpResponse:
    selected, problem = filtered
    page = {
        "title": title,
        "detail": detail,
        "filters": selected,
        "filter_problem": problem,
        "presets": list(timerange.PRESETS),
        "card": {"chart": chart, "filters": selected, "figure": figure},
        "zone": zones.choices(request),
    }
    return render(request, template, admin.site.each_context(request) | page)


@gzip_page
def address(request: HttpRequest, address: str) -> HttpResponse:
    require_view(request)
    filtered = page_filters(request)
    detail = details.address_detail(address=address, rng=filtered[0].rng)
    if detail is None:
        raise Http404("Not a pool address, and never listed.")
    chart = charts.Chart("address", "Mail sent from the address, and its listings", "")
    figure = details.address_figure(detail=detail)
    return detail_page(
        request,
        "dashboard/address.html",
        title=address,
        chart=chart,
        figure=figure,
        filtered=filtered,
        detail=detail,
    )


@gzip_page
def blocklist(request: HttpRequest, pk: int) -> HttpResponse:
    require_view(request)
    filtered = page_filters(request)
    found = get_object_or_404(Blocklist, pk=pk)
    detail = details.blocklist_detail(blocklist=found, rng=filtered[0].rng)
    chart = charts.Chart("blocklist", "Unknown answers and listings opened per day", "")
    figure = details.blocklist_figure(detail=detail)
    return detail_page(
        request,
        "dashboard/blocklist.html",
        title=found.zone,
        chart=chart,
        figure=figure,
        filtered=filtered,
        detail=detail,
    )


@gzip_page
def spike(request: HttpRequest, pk: int) -> HttpResponse:
    require_view(request)
    found = get_object_or_404(Spike, pk=pk)
    detail = details.spike_detail(spike=found)
    chart = charts.Chart("spike", "DSNs around the spike", "", ranged=False)
    title = f"DSN spike: {found.dimension} {found.value}".strip()
    return detail_page(
        request,
        "dashboard/spike.html",
        title=title,
        chart=chart,
        figure=details.spike_figure(detail=detail),
        filtered=page_filters(request),
        detail=detail,
    )
