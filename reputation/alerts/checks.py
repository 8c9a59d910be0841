"""System checks of the alert settings: every send must end well within its claim lease."""

from __future__ import annotations

from django.conf import settings
from django.core import checks

from reputation.alerts import sending
from reputation.alerts.transports import http
from reputation.alerts.transports.base import MAX_TIMEOUT


def timeouts_below_lease(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """EMAIL_TIMEOUT at most MAX_TIMEOUT (a fifth of the claim lease; larger ones are clamped)
    and a webhook request, retries included, within half the lease: a silent server then
    fails a send long before another worker could claim it again."""
    lease = sending.LEASE.total_seconds()
    problems = []
    timeout = getattr(settings, "EMAIL_TIMEOUT", None)
    if not timeout or timeout > MAX_TIMEOUT:
        problems.append(
            checks.Warning(
                f"EMAIL_TIMEOUT is {f'{timeout:g} s' if timeout else 'unset'}: alert mail "
                f"uses {MAX_TIMEOUT:g} s.",
                hint=f"Set EMAIL_TIMEOUT to at most {MAX_TIMEOUT:g} s (a fifth of the "
                f"{lease:g} s alert claim lease), so that a silent SMTP server fails the send "
                "before the alert could be claimed and sent again.",
                id="reputation.W010",
            )
        )
    if http.longest() > lease / 2:
        problems.append(
            checks.Error(
                f"An alert webhook request can take {http.longest():g} s, more than half "
                f"the {lease:g} s alert claim lease.",
                id="reputation.E011",
            )
        )
    return problems
