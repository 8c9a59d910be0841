"""Schedule admin: django-celery-beat's own admin classes, with every change recorded."""

from __future__ import annotations

from django.contrib import admin
from django_celery_beat import admin as beat_admin  # registers its admin classes
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from routing import changes
from routing.changes import RecordChanges


def _shipped(model, default: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """The admin class registered for a model (or `default`), unregistered so that a
    subclass recording changes can take its place."""
    if not admin.site.is_registered(model):
        return default
    shipped = type(admin.site.get_model_admin(model))
    admin.site.unregister(model)
    return shipped


_PeriodicTaskBase = _shipped(PeriodicTask, beat_admin.PeriodicTaskAdmin)


@admin.register(PeriodicTask)
class PeriodicTaskAdmin(RecordChanges, _PeriodicTaskBase):
    """The shipped admin; its enable/disable/toggle actions (bulk updates) are recorded too."""

    def _recording(self, request, queryset):
        return changes.recorded(user=request.user, queryset=queryset, fields=["enabled"])

    @admin.action(description=_PeriodicTaskBase.enable_tasks.short_description)
    def enable_tasks(self, request, queryset) -> None:
        with self._recording(request, queryset):
            super().enable_tasks(request, queryset)

    @admin.action(description=_PeriodicTaskBase.disable_tasks.short_description)
    def disable_tasks(self, request, queryset) -> None:
        with self._recording(request, queryset):
            super().disable_tasks(request, queryset)

    @admin.action(description=_PeriodicTaskBase.toggle_tasks.short_description)
    def toggle_tasks(self, request, queryset) -> None:
        with self._recording(request, queryset):
            super().toggle_tasks(request, queryset)


@admin.register(IntervalSchedule)
class IntervalScheduleAdmin(
    RecordChanges, _shipped(IntervalSchedule, beat_admin.IntervalScheduleAdmin)
):
    pass


@admin.register(CrontabSchedule)
class CrontabScheduleAdmin(
    RecordChanges, _shipped(CrontabSchedule, beat_admin.CrontabScheduleAdmin)
):
    pass


@admin.register(SolarSchedule)
class SolarScheduleAdmin(RecordChanges, _shipped(SolarSchedule, beat_admin.SolarScheduleAdmin)):
    pass


@admin.register(ClockedSchedule)
class ClockedScheduleAdmin(
    RecordChanges, _shipped(ClockedSchedule, beat_admin.ClockedScheduleAdmin)
):
    pass
