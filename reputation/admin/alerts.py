"""Alert admin: channels (operators edit them and send test alerts), and the events and
notifications sent (the alert history, read-only)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest

from reputation.admin.base import ReadOnlyAdmin
from reputation.alerts import sending
from reputation.alerts.config import SECRET_URL_KINDS
from reputation.models.alerts import Channel, Event, Notification, config_problems
from routing.changes import RecordChanges


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
            queued = sending.reenable(obj)
            if queued:
                messages.info(
                    request,
                    f"{queued} alerts that failed or were missed while disabled will be sent.",
                )

    @admin.action(description="Send a test alert", permissions=["change"])
    def send_test_alert(self, request: HttpRequest, queryset) -> None:
        for channel in queryset:
            result = sending.send_test(channel)
            if result.ok:
                self.message_user(request, f"{channel}: test alert sent to {result.detail}.")
            else:
                self.message_user(
                    request, f"{channel}: test alert failed: {result.detail}", messages.ERROR
                )


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
