from django.contrib import admin
from django.http import HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView

from reputation.dashboard import views as dashboard


def healthz(request):
    """Liveness for load balancers and process supervisors: no data, so no login. 200 "ok",
    200 "degraded: …" while routing on a snapshot the database could not refresh, 503
    "unavailable: …" while no routing policy was ever loaded (API requests get 503 too)."""
    from routing.engine import get_engine, health

    state, detail = health(get_engine())
    text = f"{state}: {detail}\n" if detail else f"{state}\n"
    return HttpResponse(
        text, content_type="text/plain", status=503 if state == "unavailable" else 200
    )


admin.site.site_header = "Poolwarden"
admin.site.site_title = "Poolwarden"
admin.site.index_title = "Outbound IP reputation"

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    # The admin index is the dashboard; its pages live under /admin/dashboard/.
    path("admin/", admin.site.admin_view(dashboard.index)),
    path("admin/dashboard/", include("reputation.urls")),
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("", include("routing.urls")),
]
