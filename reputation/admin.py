from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html_join

from reputation import dnsbl
from reputation.models import Blocklist, BlocklistEvent, CheckRun, Listing, Spike, SpikeThreshold
from routing import changes
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
            "ipv6",
            "description",
            "codes",
            "bitmask",
            "error_codes",
            "not_listing_codes",
            "delist_url",
            "max_in_flight",
            "max_qps",
            "max_per_day",
            "clean_to_close",
            "requires_key",
        ]

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
        "ipv6",
        "misbehaving",
        "key_status",
        "max_per_day",
    ]
    list_filter = ["enabled", "kind", "weight", "misbehaving"]
    search_fields = ["zone", "description"]
    readonly_fields = ["key_status", "misbehaving", "misbehaving_reason", "created", "updated"]
    fieldsets = [
        (None, {"fields": ["zone", "kind", "enabled", "weight", "ipv6", "description"]}),
        (
            "Answers",
            {"fields": ["codes", "bitmask", "error_codes", "not_listing_codes", "delist_url"]},
        ),
        (
            "Limits",
            {"fields": ["max_in_flight", "max_qps", "max_per_day", "clean_to_close"]},
        ),
        (
            "Access",
            {"fields": ["requires_key", "key_status", "new_access_key", "clear_access_key"]},
        ),
        ("Self-test", {"fields": ["misbehaving", "misbehaving_reason", "created", "updated"]}),
    ]

    @admin.display(description="access key")
    def view_on_site(self, obj: Blocklist) -> str:
        return reverse("dashboard:blocklist", args=[obj.pk])

    def key_status(self, obj: Blocklist) -> str:
        if obj.access_key:
            return "set (hidden)"
        return "required, not set" if obj.requires_key else "none"

    def save_model(self, request: HttpRequest, obj: Blocklist, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if obj.requires_key and not obj.access_key and obj.enabled:
            messages.warning(request, f"{obj.zone} is not queried until an access key is set.")


@admin.register(Listing)
class ListingAdmin(admin.ModelAdmin):
    list_display = ["address", "pool", "blocklist", "codes", "opened", "closed"]
    list_filter = [("closed", admin.EmptyFieldListFilter), "blocklist", "pool"]
    search_fields = ["address", "reason"]
    date_hierarchy = "opened"

    def view_on_site(self, obj: Listing) -> str:
        return reverse("dashboard:address", args=[obj.address])

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(CheckRun)
class CheckRunAdmin(admin.ModelAdmin):
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
    ]
    list_filter = ["trigger"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(BlocklistEvent)
class BlocklistEventAdmin(admin.ModelAdmin):
    list_display = ["created", "kind", "blocklist", "address", "detail", "processed"]
    list_filter = ["kind", ("processed", admin.EmptyFieldListFilter)]
    search_fields = ["address", "detail"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


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
    list_display = ["started", "ended", "dimension", "value", "peak", "baseline", "cause"]

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
        "evidence_text",
        "created",
        "updated",
        "processed",
    ]
    exclude = ["evidence"]

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


# --- alerts ------------------------------------------------------------------------------------

from reputation import alerts as alerts_module  # noqa: E402
from reputation.alert_models import (  # noqa: E402
    Channel,
    Event,
    Notification,
    config_problems,
)
from reputation.channel_config import SECRET_URL_KINDS  # noqa: E402


class ChannelForm(forms.ModelForm):
    """The channel's config as fields; the webhook secret is write-only."""

    recipients = forms.CharField(
        label="email recipients",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Email channels: one address per line (or comma-separated).",
    )
    url = forms.URLField(
        label="webhook URL",
        required=False,
        assume_scheme="https",
        help_text="Webhook, Slack/Mattermost and Teams channels: the incoming-webhook URL. "
        "A Slack/Mattermost or Teams URL is never shown after saving: leave empty to keep it.",
    )
    new_secret = forms.CharField(
        label="HMAC secret",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Generic webhook: type a secret to sign each body (X-Poolwarden-Signature); "
        "leave empty to keep the current one. It is never shown after saving.",
    )
    clear_secret = forms.BooleanField(label="remove the secret", required=False)
    pool_names = forms.CharField(
        label="pools",
        required=False,
        help_text="Only events of these pools, comma-separated (empty: all pools).",
    )

    class Meta:
        model = Channel
        fields = ["name", "kind", "min_severity", "digest_seconds", "disabled"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        config = self.instance.config or {}
        self.initial.setdefault("recipients", "\n".join(config.get("to", [])))
        if self.instance.kind not in SECRET_URL_KINDS:  # a chat webhook's URL is its key
            self.initial.setdefault("url", config.get("url", ""))
        self.initial.setdefault("pool_names", ", ".join(self.instance.pools or []))

    def clean(self) -> dict:
        data = super().clean()
        kind, old = data.get("kind"), self.instance.config or {}
        if kind == Channel.Kind.EMAIL:
            to = [a for a in data.get("recipients", "").replace(",", "\n").split() if a]
            config = {"to": to}
        else:
            kept = old.get("url", "") if kind == self.instance.kind else ""
            config = {"url": data.get("url") or kept}
            secret = "" if data.get("clear_secret") else data.get("new_secret") or old.get("secret")
            if kind == Channel.Kind.WEBHOOK and secret:
                config["secret"] = secret
        problems = config_problems(kind, config) if kind else []
        if problems:
            raise forms.ValidationError(problems)
        self.instance.config = config
        names = data.get("pool_names", "").replace(",", " ").split()
        self.instance.pools = sorted(set(names))
        return data


@admin.register(Channel)
class ChannelAdmin(RecordChanges, admin.ModelAdmin):
    form = ChannelForm
    secret_keys = ["secret", "url"]  # a webhook's URL is its credential
    list_display = ["name", "kind", "min_severity", "pool_list", "disabled", "last_error"]
    list_filter = ["kind", "disabled", "min_severity"]
    search_fields = ["name"]
    readonly_fields = ["secret_status", "last_error", "created", "updated"]
    fields = [
        "name",
        "kind",
        "recipients",
        "url",
        "new_secret",
        "clear_secret",
        "secret_status",
        "min_severity",
        "pool_names",
        "digest_seconds",
        "disabled",
        "last_error",
        "created",
        "updated",
    ]
    actions = ["send_test_alert"]

    @admin.display(description="pools")
    def pool_list(self, obj: Channel) -> str:
        return ", ".join(obj.pools) or "all"

    @admin.display(description="HMAC secret")
    def secret_status(self, obj: Channel) -> str:
        return "set" if (obj.config or {}).get("secret") else "none"

    def save_model(self, request: HttpRequest, obj: Channel, form, change: bool) -> None:
        was_disabled = change and Channel.objects.filter(pk=obj.pk, disabled=True).exists()
        if was_disabled and not obj.disabled:
            obj.last_error = ""
        super().save_model(request, obj, form, change)
        if was_disabled and not obj.disabled:
            queued = alerts_module.reenable(obj)
            if queued:
                messages.info(request, f"{queued} failed alerts will be sent again.")

    @admin.action(description="Send a test alert", permissions=["change"])
    def send_test_alert(self, request: HttpRequest, queryset) -> None:
        for channel in queryset:
            result = alerts_module.send_test(channel)
            if result.ok:
                self.message_user(request, f"{channel}: test alert sent to {result.detail}.")
            else:
                self.message_user(
                    request, f"{channel}: test alert failed: {result.detail}", messages.ERROR
                )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = ["created", "kind", "severity", "subject", "pool", "suppressed", "processed"]
    list_filter = ["kind", "severity", ("processed", admin.EmptyFieldListFilter)]
    search_fields = ["subject", "address", "zone"]
    date_hierarchy = "created"


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdmin):
    """The alert history: what was sent, to whom and when, and what failed."""

    list_display = [
        "created",
        "event",
        "channel",
        "status",
        "recipients",
        "sent",
        "attempts",
        "error",
    ]
    list_filter = ["status", "channel"]
    search_fields = ["event__subject", "recipients", "error"]
    list_select_related = ["event", "channel"]
    date_hierarchy = "created"


# --- schedules (django-celery-beat) --------------------------------------------------------------

from django_celery_beat import admin as beat_admin  # noqa: E402 - registers its admin classes
from django_celery_beat.models import (  # noqa: E402
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)


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
