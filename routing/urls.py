from django.urls import path

from routing import views

urlpatterns = [
    path("api/v1/route", views.route, name="api-route"),
    path("metrics", views.metrics, name="metrics"),
]
