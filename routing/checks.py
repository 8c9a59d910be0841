"""System checks for the routing app (registered in `RoutingConfig.ready()`)."""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError


def pool_addresses_on_host(app_configs=None, databases=None, **kwargs) -> list[checks.Warning]:
    """routing.W001 for each pool address in rotation that this host cannot send from: its
    `pw-*` transport defers all its mail. Reads the database, so, like Django's own database
    checks, it runs only when asked for one (`check --database default`, `migrate`)."""
    from routing.mta import host, postfix

    if not databases:
        return []
    try:
        absent = host.missing(postfix.load_addresses())
    except DatabaseError:  # not migrated yet: nothing to check
        return []
    return [
        checks.Warning(
            f"Pool address {source.address} (pool {source.pool}) is in rotation but not "
            "configured on this host: its Postfix transport defers all its mail.",
            hint="Add the address to an interface, or take it out of rotation. On a host "
            "that does not run Postfix this warning does not apply.",
            obj=f"{source.pool}/{source.address}",
            id="routing.W001",
        )
        for source in absent
    ]
