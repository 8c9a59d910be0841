"""Alerts: events collected from what the monitoring records, their sending to channels, the
channels' configuration, and one transport per channel kind."""
