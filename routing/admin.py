from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count, Q
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone

from routing import changes, pools, tokens
from routing.changes import RecordChanges
from routing.models import (
    ApiToken,
    IPRange,
    Pool,
    PoolAddress,
    RoutingPolicy,
    SettingChange,
)


class RangeFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        if any(self.errors):
            return
        kept = [
            form.cleaned_data["cidr"]
            for form in self.forms
            if form.cleaned_data.get("cidr") and not form.cleaned_data.get("DELETE")
        ]
        name = self.instance.name or "this pool"
        others = IPRange.objects.exclude(pool=self.instance.pk).select_related("pool")
        specs = [pools.RangeSpec(name, cidr) for cidr in kept]
        specs += [pools.RangeSpec(r.pool.name, r.cidr) for r in others]
        problems = pools.overlaps(specs)
        if problems:
            raise ValidationError(problems)


class IPRangeInline(admin.TabularInline):
    model = IPRange
    formset = RangeFormSet
    extra = 1
    fields = ["cidr", "address_count", "created"]
    readonly_fields = ["address_count", "created"]

    @admin.display(description="addresses")
    def address_count(self, obj: IPRange) -> int:
        return obj.addresses.count() if obj.pk else 0


@admin.register(Pool)
class PoolAdmin(RecordChanges, admin.ModelAdmin):
    list_display = ["name", "kind", "range_list", "address_total", "in_rotation"]
    list_filter = ["kind"]
    search_fields = ["name", "description", "ranges__cidr"]
    fields = ["name", "kind", "description", "take_listed_out"]
    inlines = [IPRangeInline]
    recorded_relations = {"ranges": "cidr"}

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .prefetch_related("ranges")
            .annotate(
                address_total=Count("addresses", distinct=True),
                in_rotation=Count("addresses", filter=Q(addresses__active=True), distinct=True),
            )
        )

    @admin.display(description="ranges")
    def range_list(self, obj: Pool) -> str:
        return ", ".join(r.cidr for r in obj.ranges.all()) or "-"

    @admin.display(description="addresses", ordering="address_total")
    def address_total(self, obj: Pool) -> int:
        return obj.address_total

    @admin.display(description="in rotation", ordering="in_rotation")
    def in_rotation(self, obj: Pool) -> int:
        return obj.in_rotation

    def save_related(self, request, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        created, deleted = form.instance.sync_addresses()
        if created or deleted:
            self.message_user(
                request, f"{created} address(es) added, {deleted} removed.", messages.INFO
            )


@admin.register(PoolAddress)
class PoolAddressAdmin(RecordChanges, admin.ModelAdmin):
    list_display = [
        "address",
        "pool",
        "ip_range",
        "active",
        "reason",
        "listed",
        "keep_in_rotation",
        "state_changed",
    ]
    list_filter = ["pool", "active", "listed", "keep_in_rotation"]
    search_fields = ["address", "reason"]
    list_select_related = ["pool", "ip_range"]
    readonly_fields = ["ip_range", "state_changed", "listed", "listed_reason"]
    actions = ["take_out_of_rotation", "put_back_into_rotation"]
    list_per_page = 200
    recorded_fields = ["active", "reason", "keep_in_rotation", "hostname"]

    def view_on_site(self, obj: PoolAddress) -> str:
        return reverse("dashboard:address", args=[obj.address])

    def get_fields(self, request, obj=None):
        return [
            "pool",
            "address",
            "ip_range",
            "active",
            "reason",
            "hostname",
            "listed",
            "listed_reason",
            "keep_in_rotation",
            "state_changed",
        ]

    def get_readonly_fields(self, request, obj=None):
        # An address's identity is fixed once it exists; only its rotation state changes.
        return [*self.readonly_fields, "pool", "address"] if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        if change and {"active", "reason"} & set(form.changed_data):
            obj.state_changed = timezone.now()
        super().save_model(request, obj, form, change)

    @admin.action(description="Take selected addresses out of rotation", permissions=["change"])
    def take_out_of_rotation(self, request, queryset) -> None:
        changing = queryset.filter(active=True)
        with changes.recorded(user=request.user, queryset=changing, fields=["active"]):
            count = changing.update(
                active=False, reason=f"taken out by {request.user}", state_changed=timezone.now()
            )
        self.message_user(request, f"{count} address(es) taken out of rotation.")

    @admin.action(description="Put selected addresses back into rotation", permissions=["change"])
    def put_back_into_rotation(self, request, queryset) -> None:
        changing = queryset.filter(active=False)
        with changes.recorded(user=request.user, queryset=changing, fields=["active"]):
            count = changing.update(active=True, reason="", state_changed=timezone.now())
        self.message_user(request, f"{count} address(es) put back into rotation.")


@admin.register(RoutingPolicy)
class RoutingPolicyAdmin(RecordChanges, admin.ModelAdmin):
    """One policy row: the changelist goes straight to it."""

    fieldsets = [
        (None, {"fields": ["spam_threshold", "trusted_score_headers", "on_dns_failure"]}),
        ("Source addresses", {"fields": ["fallback"]}),
        (
            "SpamAssassin (milter)",
            {"fields": ["spamd_enabled", "spamd_address", "spamd_timeout", "spamd_max_bytes"]},
        ),
        (None, {"fields": ["updated"]}),
    ]
    readonly_fields = ["updated"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        policy = RoutingPolicy.load()
        return HttpResponseRedirect(reverse("admin:routing_routingpolicy_change", args=[policy.pk]))


class ApiTokenForm(forms.ModelForm):
    class Meta:
        model = ApiToken
        fields = ["name", "revoked"]


@admin.register(ApiToken)
class ApiTokenAdmin(RecordChanges, admin.ModelAdmin):
    form = ApiTokenForm
    list_display = ["name", "prefix", "created", "last_used", "revoked"]
    readonly_fields = ["prefix", "created", "last_used"]
    recorded_fields = ["name", "revoked"]  # never the digest

    def get_fields(self, request, obj=None):
        return ["name", "prefix", "created", "last_used", "revoked"] if obj else ["name"]

    def save_model(self, request, obj, form, change) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        row, token = tokens.issue(obj.name)
        obj.pk = row.pk
        changes.record(user=request.user, obj=row, action=SettingChange.Action.ADDED)
        self.message_user(
            request,
            f"Token for {row.name}: {token} (copy it now: it is not stored and "
            "will not be shown again).",
            messages.WARNING,
        )


@admin.register(SettingChange)
class SettingChangeAdmin(admin.ModelAdmin):
    """The audit trail of settings: read-only for everyone, superusers included."""

    list_display = ["created", "username", "action", "model", "object_repr", "field", "old", "new"]
    list_filter = ["action", "model", "field", "username"]
    search_fields = ["username", "object_repr", "field", "old", "new"]
    date_hierarchy = "created"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
