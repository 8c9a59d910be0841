"""The `[[alert_channels]]` part of the configuration document, without secrets.

The HMAC secret of a generic webhook, and the whole URL of Slack/Mattermost and Teams
webhooks (their path is the credential), are never exported. On import they are kept from
the existing channel of that name; a new channel without its URL is created disabled, with a
last error saying to set it in admin.
"""

from __future__ import annotations

from typing import Any

from reputation.models.alerts import Channel, Severity, config_problems
from routing.configdoc import DocumentError, Plan, Section

SECRET_URL_KINDS = {Channel.Kind.SLACK, Channel.Kind.TEAMS}
NO_URL = "Set the webhook URL in admin: configuration documents do not carry it."
TYPES: dict[str, type] = {
    "name": str,
    "kind": str,
    "min_severity": str,
    "pools": list,
    "digest_seconds": int,
    "disabled": bool,
    "to": list,
    "url": str,
}


def public(channel: Channel) -> dict:
    """The channel as exported: its settings, the recipients, the generic webhook's URL."""
    data = {
        "name": channel.name,
        "kind": channel.kind,
        "min_severity": channel.min_severity,
        "pools": list(channel.pools),
        "digest_seconds": channel.digest_seconds,
        "disabled": channel.disabled,
    }
    config = channel.config or {}
    if channel.kind == Channel.Kind.EMAIL:
        data["to"] = list(config.get("to", []))
    elif channel.kind == Channel.Kind.WEBHOOK:
        data["url"] = config.get("url", "")
    return data


class ChannelSection(Section):
    key = "alert_channels"

    def export(self) -> list[dict]:
        return [public(c) for c in Channel.objects.order_by("name")]

    def plan(self, value: Any, *, prune: bool) -> Plan:
        wanted = parse(value)
        current = {c.name: c for c in Channel.objects.all()}
        plan = Plan()
        for name, data in wanted.items():
            old = current.get(name)
            if old is None or public(old) != data:
                plan.changes.append(f"{'~' if old else '+'} alert channel {name}")
                plan.actions.append(lambda data=data: store(data))
        for name in sorted(set(current) - set(wanted)) if prune else []:
            plan.changes.append(f"- alert channel {name}")
            plan.actions.append(lambda name=name: Channel.objects.filter(name=name).delete())
        return plan


def parse(value: Any) -> dict[str, dict]:
    """Check every entry; raises DocumentError listing every problem."""
    if not isinstance(value, list):
        raise DocumentError(["alert_channels: expected an array of tables"])
    wanted, problems = {}, []
    for index, entry in enumerate(value):
        where = f"alert_channels[{index}]"
        found = entry_problems(entry)
        problems += [f"{where}: {p}" for p in found]
        if found:
            continue
        if entry["name"] in wanted:
            problems.append(f"{where}: channel {entry['name']!r} appears twice")
        wanted[entry["name"]] = normal(entry)
    if problems:
        raise DocumentError(problems)
    return wanted


def entry_problems(entry: Any) -> list[str]:
    if not isinstance(entry, dict):
        return ["expected a table"]
    problems = [f"unknown key {k!r}" for k in sorted(set(entry) - set(TYPES))]
    problems += [f"{k}: missing" for k in ("name", "kind") if k not in entry]
    problems += [
        f"{k}: wrong type {type(v).__name__}"
        for k, v in entry.items()
        if k in TYPES and (not isinstance(v, TYPES[k]) or (TYPES[k] is int and v is True))
    ]
    if problems:
        return problems
    if entry["kind"] not in Channel.Kind.values:
        return [f"kind: one of {Channel.Kind.values}"]
    if entry.get("min_severity", Severity.WARNING) not in Severity.values:
        return [f"min_severity: one of {Severity.values}"]
    if entry["kind"] == Channel.Kind.EMAIL or "url" in entry:
        return config_problems(entry["kind"], _config(entry))
    return []


def _config(entry: dict) -> dict:
    if entry["kind"] == Channel.Kind.EMAIL:
        return {"to": entry.get("to", [])}
    return {"url": entry.get("url", "")}


def normal(entry: dict) -> dict:
    data = {
        "name": entry["name"],
        "kind": entry["kind"],
        "min_severity": entry.get("min_severity", Severity.WARNING),
        "pools": sorted(set(entry.get("pools", []))),
        "digest_seconds": entry.get("digest_seconds", 60),
        "disabled": entry.get("disabled", False),
    }
    if entry["kind"] == Channel.Kind.EMAIL:
        data["to"] = list(entry.get("to", []))
    elif entry["kind"] == Channel.Kind.WEBHOOK:
        data["url"] = entry.get("url", "")
    return data


def store(data: dict) -> None:
    """Create or update the channel, keeping the secrets it has."""
    data = dict(data)
    channel = Channel.objects.filter(name=data["name"]).first() or Channel(name=data["name"])
    old = dict(channel.config or {}) if channel.kind == data["kind"] else {}
    config = {k: v for k, v in old.items() if k in ("secret", "url")}
    for key in ("to", "url"):
        if key in data:
            config[key] = data.pop(key)
    for key, value in data.items():
        setattr(channel, key, value)
    channel.config = config
    if channel.kind != Channel.Kind.EMAIL and not config.get("url"):
        channel.disabled, channel.last_error = True, NO_URL
    channel.save()
