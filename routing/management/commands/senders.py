"""`senders [--restricted] [--json]`: senders near or over their limits;
`senders --release SENDER [--note TEXT]`: release a restricted sender."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from routing.limits import restrictions
from routing.limits.store import Unavailable
from routing.policy import PolicyUnavailable


class Command(BaseCommand):
    help = (
        "List the senders near (80%) or over a sender limit and every restriction in force; "
        "or release a restricted sender (its mail flows again at once)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--restricted", action="store_true", help="restricted senders only")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument("--release", metavar="SENDER", help="release this sender")
        parser.add_argument("--note", default="", help="why it is released (audited)")

    def handle(self, *args, **options):
        if options["release"]:
            self.release(options["release"], options["note"])
            return
        try:
            found = restrictions.senders(restricted_only=options["restricted"])
        except PolicyUnavailable as exc:
            raise CommandError(str(exc), returncode=75) from None
        if options["json"]:
            self.stdout.write(json.dumps({"senders": found}, indent=2, sort_keys=True))
            return
        self.stdout.write("\n".join(map(line, found)) or "no sender near or over a limit")

    def release(self, sender: str, note: str) -> None:
        try:
            count = restrictions.release(sender=sender, note=note, username="command line")
        except restrictions.NotRestricted as exc:
            raise CommandError(str(exc), returncode=2) from None
        except Unavailable as exc:
            raise CommandError(f"not released: the limit store: {exc}", returncode=75) from None
        self.stdout.write(f"{sender} released ({count} restriction(s))")


def line(sender: dict) -> str:
    parts = [sender["sender"]]
    for r in sender["restrictions"]:
        until = r["until"] or "released"
        limit = r["limit"]
        parts.append(
            f"{r['action']} on {limit['name']} ({limit['count']}/{limit['maximum']}) "
            f"since {r['since']} until {until}, {r['rejected']} rejected"
        )
    for u in sender["usage"]:
        parts.append(f"{u['limit']} {u['count']}/{u['maximum'] or '-'}")
    return "  ".join(parts)
