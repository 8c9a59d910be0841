import json
import sys

from django.core.management.base import BaseCommand, CommandError

from reputation.blocklists import runs


class Command(BaseCommand):
    help = (
        "Check every address of the pools against the blocklists now: a progress bar on a "
        "terminal, then a summary (or one JSON object with --json)."
    )
    requires_system_checks = []  # an operational command: `manage.py check` runs them

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.print_usage = lambda file=None: None  # a bad option: the one-line error only
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--pool", help="only this pool's addresses")
        parser.add_argument(
            "--list", dest="zones", action="append", metavar="ZONE", help="only this list"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, pool=None, zones=None, json=False, **options):
        progress = ProgressBar(self.stderr) if sys.stderr.isatty() and not json else None
        try:
            report = runs.run_now(pool=pool, zones=zones, progress=progress)
        except runs.RunError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except (OSError, ValueError) as exc:
            raise CommandError(f"cannot query the resolvers: {exc}", returncode=2) from None
        finally:
            if progress is not None:
                progress.finish()
        if json:
            self.stdout.write(dumps(report.as_json()))
        else:
            self.summary(report)

    def summary(self, report: runs.Report) -> None:
        self.stdout.write(
            f"{report.addresses} addresses, {report.queries} queries in {report.seconds:.2f} s"
        )
        for item in report.listed:
            reason = f" ({item['reason']})" if item["reason"] else ""
            self.stdout.write(
                f"LISTED  {item['address']} on {item['zone']}: {', '.join(item['codes'])}{reason}"
            )
        for zone in report.misbehaving:
            self.stdout.write(f"MISBEHAVING  {zone}: self-test failed, not asked in this run")
        for zone, why in sorted(report.skipped.items()):
            self.stdout.write(f"SKIPPED  {zone}: {why}")
        if report.errors:
            self.stdout.write(f"{len(report.errors)} unknown answers (timeouts, refusals, errors)")
        if not report.listed:
            self.stdout.write("no address is listed")


def dumps(data: dict) -> str:
    return json.dumps(data, sort_keys=True)


class ProgressBar:
    """A one-line bar on the terminal, redrawn in place."""

    WIDTH = 40

    def __init__(self, stream):
        self.stream, self.last = stream, -1

    def __call__(self, done: int, total: int) -> None:
        filled = self.WIDTH * done // max(total, 1)
        if filled == self.last:
            return
        self.last = filled
        bar = "#" * filled + "." * (self.WIDTH - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} look-ups", ending="")
        self.stream.flush()

    def finish(self) -> None:
        if self.last >= 0:
            self.stream.write("")
