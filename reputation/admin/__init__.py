"""The reputation admin, one module per capability; importing this package registers them all
(Django's admin autodiscovery imports `reputation.admin`)."""

from reputation.admin import alerts, blocklists, schedules, spikes  # noqa: F401
