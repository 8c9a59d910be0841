"""Blocklist admin: the catalogue (operators edit it; an access key is never shown after
saving), and the listings, check runs and events the sweeps write (read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse

from reputation.admin.base import ReadOnlyAdmin
from reputation.blocklists import catalogue, dnsbl
from reputation.models import Blocklist, BlocklistEvent, CheckRun, Listing
from routing.changes import RecordChanges


class BlocklistForm(forms.ModelForm):
    """The access key is write-only: typed in, never shown again."""

    new_access_key = forms.CharField(
        label="access key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Type a key to set or replace it (queried as <key>.<zone>); leave empty to "
        "keep the current one. It is never shown after saving.",
    )
    clear_access_key = forms.BooleanField(label="remove the access key", required=False)
    delist_url = forms.URLField(label="delisting URL", required=False, assume_scheme="https")

    class Meta:
        model = Blocklist
        fields = [  # every field but the write-only access_key
            "zone",
            "kind",
            "enabled",
            "weight",
            "ipv4",
            "ipv6",
            "description",
            "codes",
            "bitmask",
            "error_codes",
            "not_listing_codes",
            "delist_url",
            "nameservers",
            "mirror",
            "max_in_flight",
            "max_qps",
            "max_per_day",
            "clean_to_close",
            "requires_key",
        ]
        widgets = {"nameservers": forms.TextInput(attrs={"class": "vTextField"})}

    def clean_nameservers(self) -> str:
        entries = catalogue.split_servers(self.cleaned_data["nameservers"])
        problems = catalogue.server_problems(entries)
        if problems:
            raise forms.ValidationError(problems)
        return catalogue.join_servers(entries)

    def clean_new_access_key(self) -> str:
        key = self.cleaned_data["new_access_key"]
        problem = dnsbl.access_key_problem(key)
        if problem:
            raise forms.ValidationError(problem)
        return key

    def _post_clean(self) -> None:
        key = self.cleaned_data.get("new_access_key")
        if self.cleaned_data.get("clear_access_key"):
            self.instance.access_key = ""
        elif key:
            self.instance.access_key = key
        super()._post_clean()


@admin.register(Blocklist)
class BlocklistAdmin(RecordChanges, admin.ModelAdmin):
    form = BlocklistForm
    secret_fields = ["access_key"]
    list_display = [
        "zone",
        "kind",
        "weight",
        "enabled",
        "ipv4",
        "ipv6",
        "mirror",
        "misbehaving",
        "key_status",
        "max_per_day",
    ]
    list_filter = ["enabled", "kind", "weight", "misbehaving"]
    search_fields = ["zone", "description"]
    readonly_fields = ["key_status", "misbehaving", "misbehaving_reason", "created", "updated"]
    fieldsets = [
        (None, {"fields": ["zone", "kind", "enabled", "weight", "ipv4", "ipv6", "description"]}),
        (
            "Answers",
            {"fields": ["codes", "bitmask", "error_codes", "not_listing_codes", "delist_url"]},
        ),
        ("Nameservers", {"fields": ["nameservers", "mirror"]}),
        (
            "Limits",
            {
                "fields": ["max_in_flight", "max_qps", "max_per_day", "clean_to_close"],
                "description": "A local mirror has no daily cap and no query limits: the "
                "first three are kept but ignored while the list is one.",
            },
        ),
        (
            "Access",
            {"fields": ["requires_key", "key_status", "new_access_key", "clear_access_key"]},
        ),
        ("Self-test", {"fields": ["misbehaving", "misbehaving_reason", "created", "updated"]}),
    ]

    def view_on_site(self, obj: Blocklist) -> str:
        return reverse("dashboard:blocklist", args=[obj.pk])

    @admin.display(description="access key")
    def key_status(self, obj: Blocklist) -> str:
        if obj.access_key:
            return "set (hidden)"
        return "required, not set" if obj.requires_key else "none"

    def save_model(self, request: HttpRequest, obj: Blocklist, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if obj.requires_key and not obj.access_key and obj.enabled:
            messages.warning(request, f"{obj.zone} is not queried until an access key is set.")


@admin.register(Listing)
class ListingAdmin(ReadOnlyAdmin):
    list_display = ["address", "pool", "blocklist", "codes", "opened", "closed"]
    list_filter = [("closed", admin.EmptyFieldListFilter), "blocklist", "pool"]
    search_fields = ["address", "reason"]
    date_hierarchy = "opened"

    def view_on_site(self, obj: Listing) -> str:
        return reverse("dashboard:address", args=[obj.address])


@admin.register(CheckRun)
class CheckRunAdmin(ReadOnlyAdmin):
    list_display = [
        "started",
        "finished",
        "trigger",
        "addresses",
        "queries",
        "listed",
        "clean",
        "unknown",
        "deferred",
        "chunks_done",
        "chunks",
        "skipped_lists",
    ]
    list_filter = ["trigger"]

    @admin.display(description="skipped (another run held them)")
    def skipped_lists(self, run: CheckRun) -> str:
        return ", ".join(sorted(run.skipped))


@admin.register(BlocklistEvent)
class BlocklistEventAdmin(ReadOnlyAdmin):
    list_display = ["created", "kind", "blocklist", "address", "detail", "processed"]
    list_filter = ["kind", ("processed", admin.EmptyFieldListFilter)]
    search_fields = ["address", "detail"]
