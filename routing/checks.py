"""System checks for the routing app (registered in `RoutingConfig.ready()`)."""

from __future__ import annotations

from django.core import checks
from django.db import DatabaseError

NAMED = 5  # addresses named in the warning; the rest are counted


def pool_addresses_on_host(app_configs=None, databases=None, **kwargs) -> list[checks.Warning]:
    """One routing.W001 when pool addresses in rotation are not configured on this host (each
    one's `pw-*` transport defers all its mail), naming the first few: an operator with
    thousands of addresses on other hosts gets one warning, not thousands. Reads the
    database, so, like Django's own database checks, it runs only when asked for one (`check
    --database default`, `migrate`)."""
    from routing.mta import host, postfix

    if not databases:
        return []
    try:
        absent = host.missing(postfix.load_addresses())
    except DatabaseError:  # not migrated yet: nothing to check
        return []
    if not absent:
        return []
    named = ", ".join(f"{s.address} (pool {s.pool})" for s in absent[:NAMED])
    more = f" and {len(absent) - NAMED} more" if len(absent) > NAMED else ""
    return [
        checks.Warning(
            f"{len(absent)} pool address(es) in rotation are not configured on this host: "
            f"{named}{more}. The Postfix transport of each defers all its mail.",
            hint="Add the addresses to an interface, or take them out of rotation "
            "(`postfix_config --check` lists them all). On a host that does not run Postfix "
            "this warning does not apply.",
            obj="pool addresses",
            id="routing.W001",
        )
    ]
