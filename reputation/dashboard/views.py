"""The dashboard: the admin index with the overview, the listing matrix and charts, each
chart's data as JSON for its filters, the address search, the address, blocklist and spike
pages, and an operator's "check now" of one address. Staff only (wrapped in
`admin.site.admin_view` by the URL conf, which adds CSRF protection); reading needs the
viewers' permissions, checking an address the operators'.

Pages and JSON are gzipped (`gzip_page`, not site-wide middleware: the API and the login page
stay as they are). BREACH needs a secret and attacker-chosen text in one compressed response:
the only secret here is the logout form's CSRF token, which Django masks afresh in every
response, and Django's GZipMiddleware adds random padding to each response besides."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.gzip import gzip_page
from django.views.decorators.http import require_POST

from reputation.blocklists import runs
from reputation.dashboard import charts, details, timerange, zones
from reputation.dashboard.matrix import SORTS, listing_matrix
from reputation.dashboard.overview import overview
from reputation.dashboard.search import search
from reputation.models import Blocklist, CheckRun, Spike
from routing import changes
from routing.models import Pool

VIEW_PERMISSION = "reputation.view_listing"  # every viewer and operator has it
CHECK_PERMISSION = "reputation.add_checkrun"  # operators (and superusers) only


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
    get = request.GET
    return {
        "dashboard": overview(),
        "matrix": listing_matrix(sort=get.get("msort", ""), page=get.get("mpage", 1)),
        "matrix_sorts": SORTS,
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


def find(request: HttpRequest) -> HttpResponse:
    """The address search: one match opens its page, several are listed."""
    require_view(request)
    result = search(query=request.GET.get("q", ""))
    if result.only is not None:
        return redirect("dashboard:address", result.only.address)
    page = {"title": "Address search", "result": result}
    return render(request, "dashboard/search.html", admin.site.each_context(request) | page)


@require_POST
def check_now(request: HttpRequest, address: str) -> HttpResponse:
    """Sweep one pool address on every enabled list now (operators), record who asked, and
    show what came back on the address page."""
    if not request.user.has_perm(CHECK_PERMISSION):
        raise PermissionDenied
    address = details.normalised(address)
    try:
        report = runs.check_address(address=address)
    except runs.RunError as exc:
        messages.error(request, f"Not checked: {exc}.")
        return redirect("dashboard:address", address)
    run = CheckRun.objects.get(pk=report.run)
    changes.record(user=request.user, obj=run, action=changes.Action.ADDED)
    level = messages.WARNING if report.opened or not report.answers else messages.SUCCESS
    messages.add_message(request, level, check_text(report))
    return redirect(reverse("dashboard:address", args=[address]) + "#pw-check")


def check_text(report: runs.AddressReport) -> str:
    """A check's result in a few sentences."""
    listed = [f"{a.zone} ({', '.join(a.codes)})" for a in report.answers if a.status == "listed"]
    clean = sum(a.status == "clean" for a in report.answers)
    unknown = [f"{a.zone} ({a.error})" for a in report.answers if a.status == "unknown"]
    parts = [f"Checked {report.address} on {len(report.answers)} lists in {report.seconds:.1f} s"]
    parts.append(f"listed on {', '.join(listed)}" if listed else "listed nowhere")
    parts.append(f"{clean} clean")
    if unknown:
        parts.append(f"no answer from {', '.join(unknown)}")
    text = ": ".join(parts[:2]) + "; " + "; ".join(parts[2:]) + "."
    if report.opened:
        text += f" Listing opened on {', '.join(report.opened)}."
    if report.closed:
        text += f" Listing closed on {', '.join(report.closed)}."
    if report.misbehaving:
        text += f" Not asked (failed self-test): {', '.join(report.misbehaving)}."
    if report.skipped:
        text += f" Not asked (a sweep holds them): {', '.join(sorted(report.skipped))}."
    return text
