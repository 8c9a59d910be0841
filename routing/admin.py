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
    SenderLimit,
    SenderRestriction,
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
            "Sender limits",
            {"fields": ["internal_domains", "sender_identity", "on_limit_store_failure"]},
        ),
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


@admin.register(SenderLimit)
class SenderLimitAdmin(RecordChanges, admin.ModelAdmin):
    list_display = [
        "match",
        "external_per_hour",
        "internal_per_hour",
        "per_day",
        "high_risk_per_hour",
        "action",
    ]
    list_filter = ["action"]
    search_fields = ["match"]
    readonly_fields = ["created", "updated"]


class ReleaseForm(forms.ModelForm):
    release = forms.BooleanField(
        required=False, help_text="End this restriction: the sender's mail flows again at once."
    )
    release_note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Why (audited)."
    )

    class Meta:
        model = SenderRestriction
        fields = ["release_note"]


@admin.register(SenderRestriction)
class SenderRestrictionAdmin(admin.ModelAdmin):
    """Restricted senders: operators release them with a note, viewers see them."""

    form = ReleaseForm
    list_display = ["sender", "limit", "action", "count", "since", "until", "rejected", "state"]
    list_filter = ["action", "limit", ("released", admin.EmptyFieldListFilter)]
    search_fields = ["sender"]
    date_hierarchy = "since"
    actions = ["release_selected"]
    shown = [
        "sender",
        "limit",
        "action",
        "count",
        "maximum",
        "window",
        "since",
        "until",
        "rejected",
        "last_messages",
        "released",
        "released_by",
    ]

    def get_fields(self, request, obj=None):
        editable = obj is not None and obj.released is None
        editable = editable and self.has_change_permission(request, obj)
        return (
            [*self.shown, "release", "release_note"] if editable else [*self.shown, "release_note"]
        )

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.released is None and self.has_change_permission(request, obj):
            return self.shown
        return [*self.shown, "release_note"]

    @admin.display(description="state")
    def state(self, obj: SenderRestriction) -> str:
        if obj.released:
            return f"released by {obj.released_by}"
        if obj.until and obj.until <= timezone.now():
            return "ended"
        return "in force"

    @admin.display(description="last messages")
    def last_messages(self, obj: SenderRestriction) -> str:
        lines = [
            f"{s.get('at', '')} {s.get('action', '')} to {', '.join(s.get('rcpt_to', []))}: "
            f"{s.get('subject', '')}"
            for s in reversed(obj.samples or [])
        ]
        return "\n".join(lines) or "-"

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def save_model(self, request, obj, form, change) -> None:
        if form.cleaned_data.get("release"):
            self.release_sender(request, obj.sender, form.cleaned_data.get("release_note", ""))

    def save_related(self, request, form, formsets, change) -> None:
        pass

    def release_sender(self, request, sender: str, note: str) -> None:
        from routing.limits import restrictions
        from routing.limits.store import Unavailable

        try:
            count = restrictions.release(sender=sender, note=note, user=request.user)
        except restrictions.NotRestricted as exc:
            self.message_user(request, str(exc), messages.WARNING)
        except Unavailable as exc:
            self.message_user(request, f"not released: the limit store: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"{sender} released ({count} restriction(s)).")

    @admin.action(description="Release selected senders", permissions=["change"])
    def release_selected(self, request, queryset) -> None:
        for sender in sorted(
            set(queryset.filter(released__isnull=True).values_list("sender", flat=True))
        ):
            self.release_sender(request, sender, f"released from the list by {request.user}")
