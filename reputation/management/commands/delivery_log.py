"""manage.py delivery_log FILE|- [--follow]: Postfix's log into per-address delivery counts."""

from __future__ import annotations

import contextlib
import sys
import time
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from reputation.deliveries import reader


class Command(BaseCommand):
    help = (
        "Read Postfix log lines (classic syslog or RFC 3339 timestamps) from FILE, from where the "
        "last run stopped, or from standard input (-), and count each delivery attempt per "
        "source address, provider, outcome and reply class."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("file", help="a Postfix log file, or - for standard input")
        parser.add_argument(
            "--follow", action="store_true", help="keep reading as the file grows and rotates"
        )
        parser.add_argument(
            "--interval", type=float, default=1.0, help="seconds between reads with --follow"
        )
        parser.add_argument(
            "--log-time-zone",
            default=settings.TIME_ZONE,
            help="zone of classic syslog timestamps, which carry none (default: TIME_ZONE)",
        )

    def handle(self, *args, **options) -> None:
        try:
            zone = ZoneInfo(options["log_time_zone"])
        except Exception as exc:
            raise CommandError(
                f"unknown time zone {options['log_time_zone']!r}", returncode=2
            ) from exc
        if options["interval"] <= 0:
            raise CommandError(
                f"--interval {options['interval']:g}: expected seconds above 0", returncode=2
            )
        totals = reader.Totals()
        classifier = reader.Classifier(zone=zone)
        path = options["file"]
        try:
            if path == "-":
                reader.read_stream(sys.stdin.buffer, classifier, totals)
            elif options["follow"]:
                self.follow(path, classifier, totals, options["interval"])
            else:
                reader.read_file(path, classifier, totals)
        except FileNotFoundError as exc:
            raise CommandError(f"{path}: no such file", returncode=2) from exc
        except PermissionError as exc:
            raise CommandError(f"{path}: not readable ({exc.strerror})", returncode=2) from exc
        except KeyboardInterrupt:
            pass
        self.report(totals)

    def follow(self, path: str, classifier, totals, interval: float) -> None:
        """Read, sleep, read again; a rotated or truncated file is read from its start."""
        while True:
            with contextlib.suppress(FileNotFoundError):  # between a rotation and the new file
                reader.read_file(path, classifier, totals)
            time.sleep(interval)

    def report(self, totals: reader.Totals) -> None:
        outcomes = ", ".join(f"{n} {name}" for name, n in totals.outcomes.most_common()) or "none"
        self.stdout.write(
            f"{totals.lines} lines, {totals.attempts} delivery attempts ({outcomes}); "
            f"{totals.unattributed} by transports other than the pool addresses'"
        )
