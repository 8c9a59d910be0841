import getpass
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing.configdoc import DocumentError, apply_plan, plan_document


class Command(BaseCommand):
    help = (
        "Import a configuration document (TOML, as written by config_export). Everything is "
        "validated first; on any error nothing changes. Objects missing from the document "
        "stay unless --prune is given."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="the TOML document, or - for stdin")
        parser.add_argument("--dry-run", action="store_true", help="show the changes only")
        parser.add_argument(
            "--prune", action="store_true", help="remove objects the document does not name"
        )

    def handle(self, *args, file, dry_run=False, prune=False, **options):
        text = self.read(file)
        try:
            plan = plan_document(text, prune=prune)
        except DocumentError as exc:
            for problem in exc.problems[1:]:
                self.stderr.write(f"  {problem}")
            raise CommandError(
                f"{file}: {len(exc.problems)} problem(s), nothing changed: {exc.problems[0]}",
                returncode=2,
            ) from None
        for change in plan.changes:
            self.stdout.write(change)
        if not plan.changes:
            self.stdout.write("no changes")
        elif dry_run:
            self.stdout.write(f"dry run: {len(plan.changes)} change(s) not applied")
        else:
            apply_plan(plan, record_as=f"config_import ({login_name()})")
            self.stdout.write(f"{len(plan.changes)} change(s) applied")

    def read(self, file: str) -> str:
        try:
            raw = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
            return raw.decode("utf-8")
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}", returncode=2) from None
        except UnicodeDecodeError:
            raise CommandError(f"{file}: not UTF-8 text", returncode=2) from None


def login_name() -> str:
    """Who ran the import, for the change history."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
