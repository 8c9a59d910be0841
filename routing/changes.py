"""The settings audit trail: who changed what and when, old → new, as `SettingChange` rows.

The admin records through the `RecordChanges` mixin; bulk actions that bypass `save()` call
`record()` or wrap their update in `recorded()`. Values are kept as short readable text.
A secret is recorded as changed, never by value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import models

from routing.models import SettingChange

SECRET = "(secret)"
NONE = "(none)"
MAX_TEXT = 500
# Set by the system (sweeps, beat, delivery), not by an admin: never recorded.
SYSTEM_FIELDS = frozenset(
    {"state_changed", "last_error", "last_used", "last_run_at", "total_run_count", "date_changed"}
)
Action = SettingChange.Action


@dataclass(frozen=True)
class Change:
    field: str
    old: str
    new: str


def readable(value: Any, *, secret_keys: Sequence[str] = ()) -> str:
    """A value as short text: "yes"/"no", compact JSON (with `secret_keys` masked), objects by
    str(), None as "(none)"."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        text = json.dumps(
            masked(value, secret_keys), sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
    elif isinstance(value, datetime):
        text = value.isoformat(timespec="seconds")
    elif isinstance(value, date):
        text = value.isoformat()
    else:
        text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def masked(value: Any, secret_keys: Sequence[str]) -> Any:
    """JSON with the values of `secret_keys` (at any depth) replaced by "(secret)"."""
    if isinstance(value, dict):
        return {
            k: SECRET if k in secret_keys and v not in ("", None) else masked(v, secret_keys)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v, secret_keys) for v in value]
    return value


def fields_to_record(
    model: type[models.Model], names: Iterable[str] | None = None
) -> list[models.Field]:
    """The fields an admin sets: `names`, or every concrete editable field but the primary key,
    automatic timestamps and `SYSTEM_FIELDS`."""
    if names is not None:
        return [model._meta.get_field(name) for name in names]
    return [
        f
        for f in model._meta.concrete_fields
        if f.editable
        and not f.primary_key
        and not getattr(f, "auto_now", False)
        and not getattr(f, "auto_now_add", False)
        and f.name not in SYSTEM_FIELDS
    ]


def changes_between(
    before: models.Model,
    after: models.Model,
    *,
    fields: Iterable[str] | None = None,
    secret_fields: Sequence[str] = (),
    secret_keys: Sequence[str] = (),
) -> list[Change]:
    """One `Change` per field whose stored value differs between two copies of a row."""
    changes = []
    for field in fields_to_record(type(after), fields):
        old, new = field.value_from_object(before), field.value_from_object(after)
        if old == new:
            continue
        if field.name in secret_fields:
            changes.append(Change(field.name, _secret(old), _secret(new)))
            continue
        if field.is_relation:  # by the related object's name, not its id
            old, new = getattr(before, field.name), getattr(after, field.name)
        text = [readable(v, secret_keys=secret_keys) for v in (old, new)]
        changes.append(Change(field.name, *text))
    return changes


def _secret(value: Any) -> str:
    return SECRET if value not in ("", None) else ""


def entry(
    *,
    user,
    obj: models.Model,
    field: str = "",
    old: str = "",
    new: str = "",
    action: str = Action.CHANGED,
) -> SettingChange:
    """An unsaved `SettingChange` row (for `bulk_create`)."""
    authenticated = user is not None and user.is_authenticated
    return SettingChange(
        user=user if authenticated else None,
        username=user.get_username() if authenticated else "",
        action=action,
        model=obj._meta.label_lower,
        object_id=str(obj.pk or ""),
        object_repr=str(obj)[:200],
        field=field,
        old=old,
        new=new,
    )


def record(
    *,
    user,
    obj: models.Model,
    field: str = "",
    old: str = "",
    new: str = "",
    action: str = Action.CHANGED,
) -> SettingChange:
    """Record one change of `obj` by `user` (None: by the system)."""
    row = entry(user=user, obj=obj, field=field, old=old, new=new, action=action)
    row.save()
    return row


def record_changes(*, user, obj: models.Model, changes: Iterable[Change]) -> list[SettingChange]:
    rows = [entry(user=user, obj=obj, field=c.field, old=c.old, new=c.new) for c in changes]
    return SettingChange.objects.bulk_create(rows)


@contextmanager
def recorded(*, user, queryset: models.QuerySet, fields: Sequence[str]) -> Iterator[None]:
    """Record, per object of `queryset`, each of `fields` that the block changes: for bulk
    actions that call `queryset.update()`, which bypasses `save()`."""
    before = {obj.pk: obj for obj in queryset}
    yield
    after = queryset.model._default_manager.in_bulk(list(before))
    rows = [
        entry(user=user, obj=new, field=c.field, old=c.old, new=c.new)
        for pk, new in after.items()
        for c in changes_between(before[pk], new, fields=fields)
    ]
    SettingChange.objects.bulk_create(rows, batch_size=500)


class RecordChanges:
    """ModelAdmin mixin recording every add, change and delete made in admin.

    `recorded_fields`: the fields to compare (None: all an admin sets, see `fields_to_record()`);
    `secret_fields`: recorded as "(secret)"; `secret_keys`: JSON keys whose values are masked;
    `recorded_relations`: reverse relations edited inline, recorded as one field listing the
    related objects by an attribute, e.g. {"ranges": "cidr"}.
    """

    recorded_fields: Sequence[str] | None = None
    secret_fields: Sequence[str] = ()
    secret_keys: Sequence[str] = ()
    recorded_relations: dict[str, str] = {}

    def save_model(self, request, obj, form, change) -> None:
        before = self._stored(obj) if change else None
        super().save_model(request, obj, form, change)
        if not change:
            record(user=request.user, obj=obj, action=Action.ADDED)
        elif before is not None and (after := self._stored(obj)) is not None:
            changes = changes_between(
                before,
                after,
                fields=self.recorded_fields,
                secret_fields=self.secret_fields,
                secret_keys=self.secret_keys,
            )
            record_changes(user=request.user, obj=after, changes=changes)

    def save_related(self, request, form, formsets, change) -> None:
        obj = form.instance
        before = {name: self._related(obj, name) for name in self.recorded_relations}
        super().save_related(request, form, formsets, change)
        if not change:  # a new object is recorded as added, with no field changes
            return
        for name, old in before.items():
            new = self._related(obj, name)
            if new != old:
                record(user=request.user, obj=obj, field=name, old=_listed(old), new=_listed(new))

    def delete_model(self, request, obj) -> None:
        row = entry(user=request.user, obj=obj, action=Action.DELETED)
        super().delete_model(request, obj)
        row.save()

    def delete_queryset(self, request, queryset) -> None:
        rows = [entry(user=request.user, obj=obj, action=Action.DELETED) for obj in queryset]
        super().delete_queryset(request, queryset)
        SettingChange.objects.bulk_create(rows, batch_size=500)

    def _stored(self, obj: models.Model) -> models.Model | None:
        # Re-read: the form's instance already holds the new values before save().
        return type(obj)._default_manager.filter(pk=obj.pk).first()

    def _related(self, obj: models.Model, name: str) -> list[str]:
        if obj.pk is None:
            return []
        # Query afresh: the admin's queryset may have prefetched a now stale list.
        relation = obj._meta.get_field(name)
        related = relation.related_model._default_manager.filter(**{relation.field.name: obj})
        attr = self.recorded_relations[name]
        return sorted(str(v) for v in related.values_list(attr, flat=True))


def _listed(values: list[str]) -> str:
    return readable(", ".join(values)) if values else NONE


# "~ routing: spam_threshold 5.0 -> 3.0", "+ pool extra", "- blocklist x: ...", as planned by
# routing.configdoc.
PLAN_LINE = re.compile(r"^(?P<sign>[~+-]) (?P<what>[^:]+?)(?:: (?P<detail>.*))?$")
VALUE_CHANGE = re.compile(r"^(?P<field>\w+) (?P<old>.*) -> (?P<new>.*)$")
SIGNS = {"+": Action.ADDED, "~": Action.CHANGED, "-": Action.DELETED}


def plan_entry(line: str, *, username: str) -> SettingChange:
    """One change line of a configuration import as a SettingChange (who: `username`)."""
    match = PLAN_LINE.match(line)
    if match is None:
        return SettingChange(username=username, model="config", object_repr=line[:200])
    what, detail = match["what"].strip(), match["detail"] or ""
    value = VALUE_CHANGE.match(detail)
    row = SettingChange(
        username=username,
        action=SIGNS[match["sign"]],
        model="config",
        object_repr="routing policy" if what == "routing" else what[:200],
    )
    if value:
        row.field = value["field"]
        row.old, row.new = value["old"].strip("'\""), value["new"].strip("'\"")
    else:
        row.new = detail[:500]
    return row


def record_plan(lines: Iterable[str], *, username: str) -> None:
    """Record the changes a configuration import applied (config_import)."""
    SettingChange.objects.bulk_create(plan_entry(line, username=username) for line in lines)
