"""Admin roles. *viewers* read everything Poolwarden shows; *operators* also change
thresholds, pools, blocklists, schedules and alert channels. Superusers do anything.

The groups are created by a migration; their permissions are granted after every
`migrate`, so models added later are covered. Permissions an admin added by hand stay.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

VIEWERS = "viewers"
OPERATORS = "operators"
MANAGED_APPS = ("routing", "reputation", "django_celery_beat")


def grant_group_permissions(**kwargs) -> None:
    managed = Permission.objects.filter(content_type__app_label__in=MANAGED_APPS)
    for name, perms in (
        (VIEWERS, managed.filter(codename__startswith="view_")),
        (OPERATORS, managed),
    ):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*perms)
