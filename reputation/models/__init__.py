"""The reputation app's models, one module per capability, re-exported here for Django (and so
that `from reputation.models import Listing` names every model in one place)."""

from reputation.models.alerts import Channel, Event, KnownAddress, Notification
from reputation.models.blocklists import (
    AddressCheck,
    Blocklist,
    BlocklistEvent,
    CheckRun,
    ChunkDone,
    Listing,
    ListSweep,
    QueryUsage,
    SweepLease,
)
from reputation.models.deliveries import DeliveryCount, DeliveryHourly, LogPosition
from reputation.models.rdns import ReverseDNSCheck
from reputation.models.schedules import ScheduleDefault
from reputation.models.shares import ZoneHolder
from reputation.models.spikes import DSNHourly, Spike, SpikeThreshold

__all__ = [
    "AddressCheck",
    "Blocklist",
    "BlocklistEvent",
    "Channel",
    "CheckRun",
    "ChunkDone",
    "DSNHourly",
    "DeliveryCount",
    "DeliveryHourly",
    "Event",
    "KnownAddress",
    "ListSweep",
    "Listing",
    "LogPosition",
    "Notification",
    "QueryUsage",
    "ReverseDNSCheck",
    "ScheduleDefault",
    "Spike",
    "SpikeThreshold",
    "SweepLease",
    "ZoneHolder",
]
