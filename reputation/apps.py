from django.apps import AppConfig
from django.core import checks


class ReputationConfig(AppConfig):
    name = "reputation"
    verbose_name = "Reputation"

    def ready(self) -> None:
        from reputation.alerts.checks import timeouts_below_lease
        from reputation.alerts.config import ChannelSection
        from reputation.blocklists.config import BlocklistSection
        from reputation.spikes.config import SpikeThresholdSection
        from routing import configdoc

        for section in (BlocklistSection(), SpikeThresholdSection(), ChannelSection()):
            if not any(s.key == section.key for s in configdoc.SECTIONS):
                configdoc.register(section)
        checks.register(timeouts_below_lease)
