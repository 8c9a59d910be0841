import signal
import threading

from django.core.management.base import BaseCommand, CommandError

from routing.engine import get_engine, stop_engine
from routing.mta.policyd import PolicyServer
from routing.mta.postfix import ListenError, parse_listen
from routing.policy import PolicyUnavailable


class Command(BaseCommand):
    help = (
        "Run the Postfix policy delegation service (envelope rules only): answers "
        "FILTER <transport>: or DUNNO. Stops cleanly on SIGTERM, flushing its counters."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--listen", required=True, help="HOST:PORT, inet:HOST:PORT or unix:/path"
        )
        parser.add_argument(
            "--nexthop", default="", help="next hop in FILTER answers, as in postfix_config"
        )

    def handle(self, *args, listen: str, nexthop: str, **options):
        try:
            where = parse_listen(listen)
        except ListenError as exc:
            raise CommandError(str(exc), returncode=2) from None
        engine = get_engine()
        stop = stop_signal()
        try:
            engine.snapshots.get()
        except PolicyUnavailable as exc:  # requests are deferred (451) until it loads
            self.stderr.write(f"policyd: {exc}; requests are deferred until it loads")
        try:
            server = PolicyServer(where, engine, nexthop).start()
        except OSError as exc:
            stop_engine()
            raise CommandError(f"cannot listen on {listen}: {exc.strerror}") from None
        stop.wait()
        server.stop()
        stop_engine()


def stop_signal() -> threading.Event:
    """An event that SIGTERM or SIGINT sets. Installed before the socket exists, so a
    supervisor that signals as soon as it sees the socket still gets a clean stop."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop
