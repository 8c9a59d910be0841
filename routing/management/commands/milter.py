from django.core.management.base import BaseCommand, CommandError

from routing.engine import get_engine, stop_engine
from routing.mta import milter
from routing.mta.postfix import ListenError, parse_listen


class Command(BaseCommand):
    help = (
        "Run the Postfix milter: add X-Delivery-Pool and X-Delivery-Reasons to each message "
        "(removing client copies). Stops cleanly on SIGTERM, flushing its counters."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--listen", required=True, help="HOST:PORT, inet:HOST:PORT or unix:/path"
        )
        parser.add_argument(
            "--timeout",
            type=int,
            default=60,
            help="seconds an MTA connection may stay silent before it is closed",
        )

    def handle(self, *args, listen: str, timeout: int, **options):
        try:
            where = parse_listen(listen)
        except ListenError as exc:
            raise CommandError(str(exc), returncode=2) from None
        engine = get_engine()  # loads the policy; if it cannot, messages wait (451) until it can
        try:
            milter.serve(engine, where, timeout=timeout)
        except OSError as exc:
            raise CommandError(f"cannot listen on {listen}: {exc.strerror or exc}") from None
        finally:
            stop_engine()
