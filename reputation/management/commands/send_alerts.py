"""Send alerts from cron or as a long-running process (stops cleanly on SIGTERM)."""

from __future__ import annotations

import os
import signal
import socket
import threading

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from reputation.alerts import sending


class Command(BaseCommand):
    help = "Turn new events into alerts and send them: once with --once, else every --interval."

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None  # a bad option: the one-line error only
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="one round, then exit")
        parser.add_argument(
            "--interval", type=float, default=10.0, help="seconds between rounds (default 10)"
        )

    def handle(self, *args, once: bool = False, interval: float = 10.0, **options):
        if interval <= 0:
            raise CommandError("--interval must be above 0", returncode=2)
        worker = f"command:{socket.gethostname()}:{os.getpid()}"
        stop = threading.Event()
        if not once:
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while True:
            self.round(worker)
            if once or stop.wait(interval):
                return

    def round(self, worker: str) -> None:
        try:
            report = sending.run_once(worker=worker)
        except DatabaseError as exc:
            raise CommandError(f"database error: {exc}", returncode=2) from None
        if report.events or report.sent or report.failed:
            self.stdout.write(f"{report.events} new events, {len(report.sent)} notifications sent")
        for failure in report.failed:
            self.stderr.write(f"failed: {failure}")
