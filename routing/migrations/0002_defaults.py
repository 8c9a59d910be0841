"""The admin groups and the two default pools.

The default ranges are documentation prefixes (RFC 5737, RFC 3849): replace them with your
own in the admin or with `config_import`.
"""

import ipaddress

from django.db import migrations

from routing import pools

DEFAULT_POOLS = [
    {
        "name": "normal",
        "kind": "normal",
        "description": "Mail of good quality. A listing of one of these addresses is an incident.",
        "take_listed_out": True,
        "ranges": ["192.0.2.0/28", "2001:db8::25/128"],
    },
    {
        "name": "high-risk",
        "kind": "high-risk",
        "description": "Mail over the spam threshold, from senders without A/MX, and all DSNs. "
        "Listings here are expected.",
        "take_listed_out": False,
        "ranges": ["198.51.100.0/28", "2001:db8::26/128"],
    },
]


def create_defaults(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ("viewers", "operators"):
        Group.objects.get_or_create(name=name)
    Pool = apps.get_model("routing", "Pool")
    IPRange = apps.get_model("routing", "IPRange")
    PoolAddress = apps.get_model("routing", "PoolAddress")
    if Pool.objects.exists():
        return
    for spec in DEFAULT_POOLS:
        spec = dict(spec)  # the module's list stays whole: migrate may run twice in a process
        ranges = spec.pop("ranges")
        pool = Pool.objects.create(**spec)
        for cidr in ranges:
            ip_range = IPRange.objects.create(pool=pool, cidr=cidr)
            PoolAddress.objects.bulk_create(
                PoolAddress(
                    pool=pool,
                    ip_range=ip_range,
                    address=a.address,
                    active=a.active,
                    reason=a.reason,
                )
                for a in pools.enumerated(ipaddress.ip_network(cidr))
            )


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
