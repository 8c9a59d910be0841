"""Dashboard pages under /admin/dashboard/, each behind the admin's login."""

from django.contrib import admin
from django.urls import path

from reputation.dashboard import views

app_name = "dashboard"


def staff(view):
    return admin.site.admin_view(view)


urlpatterns = [
    path("charts/<slug:name>.json", staff(views.chart), name="chart"),
    path("address/<str:address>/", staff(views.address), name="address"),
    path("address/<str:address>/check/", staff(views.check_now), name="check"),
    path("search/", staff(views.find), name="search"),
    path("blocklist/<int:pk>/", staff(views.blocklist), name="blocklist"),
    path("spike/<int:pk>/", staff(views.spike), name="spike"),
]
