import json
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing.counters import flush_within
from routing.engine import get_engine
from routing.facts import decision_json
from routing.message import MAX_READ
from routing.policy import PolicyUnavailable

# How long the decision's count may take to reach the database before the command gives up.
FLUSH_WAIT = 5.0


class Command(BaseCommand):
    help = (
        "Decide the pool for one message: an RFC 5322 file, - for stdin, or only an envelope "
        "(--mail-from without FILE). Standard input is read only when FILE is -."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="the message; - for stdin")
        parser.add_argument("--mail-from", help='envelope sender; "" or "<>" for the null sender')
        parser.add_argument("--rcpt-to", action="append", default=[], help="envelope recipient")
        parser.add_argument("--spam-score", type=float, help="score from your own filter")
        parser.add_argument("--source", default="", help="SASL login or client address")
        parser.add_argument("--json", action="store_true", help="print the decision as JSON")

    def handle(self, *args, file=None, **options):
        envelope = {
            "mail_from": options["mail_from"],
            "rcpt_to": options["rcpt_to"],
            "spam_score": options["spam_score"],
            "source": options["source"],
        }
        raw = self.read(file, envelope["mail_from"])
        engine = get_engine(flush_in_background=False)
        try:
            if raw is None:
                facts, decision = engine.route_envelope(**envelope)
            else:
                facts, decision = engine.route_message(raw, **envelope)
        except PolicyUnavailable as exc:  # the database was unreachable: no decision to give
            raise CommandError(str(exc), returncode=75) from None  # EX_TEMPFAIL
        self.show(decision_json(facts, decision), as_json=options["json"])
        # The decision stands without its count: a database down or hung is one line on stderr.
        if problem := flush_within(engine.counters, FLUSH_WAIT):
            self.stderr.write(f"counts not saved: {problem}")

    def read(self, file: str | None, mail_from: str | None) -> bytes | None:
        """The message named by `file`, or None for an envelope-only decision. Never reads
        stdin unless asked with `-`: in cron or a script stdin may never end."""
        if file is None:
            if mail_from is None:
                raise CommandError("give a message FILE, - for stdin, or --mail-from", returncode=2)
            return None
        try:
            if file == "-":
                return sys.stdin.buffer.read(MAX_READ + 1)
            with Path(file).open("rb") as handle:
                return handle.read(MAX_READ + 1)
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}", returncode=2) from None

    def show(self, data: dict, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(data, indent=2, sort_keys=True))
            return
        score = "none" if data["spam_score"] is None else f"{data['spam_score']:g}"
        lines = [
            f"pool:          {data['pool']} ({data['pool_kind']})",
            f"source ip:     {data['source_ip'] or '-'}",
            f"reasons:       {', '.join(data['reasons']) or 'none'}",
            f"sender domain: {data['sender_domain'] or '-'}",
            f"spam score:    {score}",
            f"dsn:           {', '.join(data['dsn_signals']) or 'no'}",
        ]
        if data["limit"]:
            limit = data["limit"]
            lines.append(
                f"sender limit:  {limit['name']} {limit['count']}/{limit['maximum']} "
                f"({limit['action']}, sender {limit['sender']})"
            )
        lines.insert(0, f"action:        {data['action']}")
        lines += [f"problem:       {p}" for p in data["problems"]]
        self.stdout.write("\n".join(lines))
