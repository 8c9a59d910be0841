"""The dashboard: the admin index with the overview, the listing matrix and charts, each
chart's data as JSON for its filters, the address search, the address, blocklist and spike
pages, and an operator's "check now" of one address. Staff only (wrapped in
`admin.site.admin_view` by the URL conf, which adds CSRF protection); reading needs the
viewers' permissions, checking an address the operators'."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from reputation.blocklists import runs
from reputation.dashboard import charts, details, timerange
from reputation.dashboard.matrix import SORTS, listing_matrix
from reputation.dashboard.overview import overview
from reputation.dashboard.search import search
from reputation.dashboard.traffic import traffic
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
    get = request.GET
    return {
        "dashboard": overview(),
        "matrix": listing_matrix(sort=get.get("msort", ""), page=get.get("mpage", 1)),
        "matrix_sorts": SORTS,
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
        "card": {"chart": chart, "figure": figure, "element": "pw-figure-detail"},
    }
    return render(request, template, admin.site.each_context(request) | page)


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
