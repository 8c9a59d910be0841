from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from routing.configdoc import export_document


class Command(BaseCommand):
    help = "Write the whole configuration as one TOML document (to FILE; stdout when omitted or -)."

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="where to write; stdout when omitted or -")

    def handle(self, *args, file=None, **options):
        text = export_document()
        if file in (None, "-"):
            self.stdout.write(text, ending="")
            return
        try:
            Path(file).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {file}: {exc.strerror}", returncode=2) from None
        self.stderr.write(f"configuration written to {file}")
