from django.apps import AppConfig


class ReputationConfig(AppConfig):
    name = "reputation"
    verbose_name = "Reputation"

    def ready(self) -> None:
        from reputation import catalogue, channel_config, spike_config
        from routing import configdoc

        for section in (
            catalogue.BlocklistSection(),
            spike_config.SpikeThresholdSection(),
            channel_config.ChannelSection(),
        ):
            if not any(s.key == section.key for s in configdoc.SECTIONS):
                configdoc.register(section)
