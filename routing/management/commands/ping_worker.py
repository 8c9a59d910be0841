import secrets

from celery.exceptions import TimeoutError as CeleryTimeout
from django.core.management.base import BaseCommand, CommandError
from kombu.exceptions import OperationalError

from config.celery import ping


class Command(BaseCommand):
    help = "Send a task through the broker and wait for a Celery worker to answer it."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=10.0, help="seconds [10]")

    def handle(self, *args, timeout, **options):
        token = secrets.token_hex(8)
        try:
            answer = ping.delay(token).get(timeout=timeout)
        except CeleryTimeout:
            raise CommandError(f"no worker answered within {timeout:g} s", returncode=1) from None
        except OperationalError as exc:
            raise CommandError(f"cannot reach the broker: {exc}", returncode=1) from None
        if answer.get("token") != token:
            raise CommandError(f"unexpected answer {answer!r}", returncode=1)
        self.stdout.write(
            f"worker answered (database {answer['database']}, broker {answer['broker']})"
        )
