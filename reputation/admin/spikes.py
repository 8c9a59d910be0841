"""Spike admin: detection thresholds (operators edit them) and the spikes found (read-only)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join

from reputation.models import Spike, SpikeThreshold
from routing.changes import RecordChanges


@admin.register(SpikeThreshold)
class SpikeThresholdAdmin(RecordChanges, admin.ModelAdmin):
    list_display = [
        "__str__",
        "dimension",
        "value",
        "enabled",
        "window_minutes",
        "sensitivity",
        "min_count",
        "quiet_minutes",
        "days",
    ]
    list_filter = ["dimension", "enabled"]
    search_fields = ["value"]


@admin.register(Spike)
class SpikeAdmin(admin.ModelAdmin):
    list_display = [
        "started",
        "ended",
        "dimension",
        "value",
        "involved",
        "peak",
        "baseline",
        "cause",
        "confidence",
    ]

    def view_on_site(self, obj: Spike) -> str:
        return reverse("dashboard:spike", args=[obj.pk])

    list_filter = ["cause", "dimension", ("ended", admin.EmptyFieldListFilter)]
    search_fields = ["value"]
    date_hierarchy = "started"
    readonly_fields = [
        "dimension",
        "value",
        "started",
        "ended",
        "peak",
        "baseline",
        "last_count",
        "calm_since",
        "cause",
        "confidence",
        "series_text",
        "evidence_text",
        "created",
        "updated",
        "processed",
    ]
    exclude = ["evidence", "series"]

    @admin.display(description="series")
    def involved(self, obj: Spike) -> int:
        return len(obj.series or []) or 1

    @admin.display(description="series involved")
    def series_text(self, obj: Spike) -> str:
        rows = [item for item in obj.series or [] if isinstance(item, dict)]
        return format_html_join(
            "\n",
            "<div>{} {}: peak {} (usual {}, threshold {}){}</div>",
            (
                (
                    item.get("dimension", ""),
                    item.get("value") or "",
                    item.get("peak", ""),
                    item.get("baseline", ""),
                    item.get("threshold", ""),
                    ", elevated now" if item.get("elevated") and not obj.ended else "",
                )
                for item in rows
            ),
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # spikes are found, not entered

    @admin.display(description="evidence")
    def evidence_text(self, obj: Spike) -> str:
        doc = obj.evidence or {}
        lines = list(doc.get("summary", []))
        for label in (
            "top_sources",
            "top_recipient_domains",
            "top_original_domains",
            "top_statuses",
            "top_refined_classes",
            "top_reporting_mtas",
        ):
            pairs = ", ".join(f"{k or '-'} ({n})" for k, n in doc.get(label, []))
            if pairs:
                lines.append(f"{label.replace('_', ' ')}: {pairs}")
        for cause in doc.get("causes", []):
            lines.append(
                f"{cause['name']} {cause['confidence']:.2f}: {'; '.join(cause['evidence'])}"
            )
        return format_html_join("\n", "<div>{}</div>", ((line,) for line in lines))
