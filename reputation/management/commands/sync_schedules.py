from django.core.management.base import BaseCommand

from reputation import schedules


class Command(BaseCommand):
    help = (
        "Write the periodic tasks' defaults (POOLWARDEN_SWEEP_INTERVAL, POOLWARDEN_SWEEP_JITTER "
        "and the built-in ones) into the schedules beat runs: creates missing ones, and applies "
        "an environment value only when it changed since it was last applied, so edits made "
        "in the admin stand. Run by `make run`; safe to run any time."
    )

    def handle(self, *args, **options):
        for line in schedules.sync():
            self.stdout.write(f"schedule {line}")
