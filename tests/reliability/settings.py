"""The test settings (a namespace of this run for cache keys) with the policy refresher in a
background thread, as deployed: the processes of the outage tests must route as real ones do."""

from tests.settings import *  # noqa: F403

POOLWARDEN_REFRESH_IN_BACKGROUND = True
