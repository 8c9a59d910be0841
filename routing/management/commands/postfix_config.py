from django.core.management.base import BaseCommand, CommandError

from routing.mta import postfix

SECTIONS = ("all", "main", "master", "header-checks")


class Command(BaseCommand):
    help = (
        "Print the Postfix main.cf and master.cf lines for the configured pools: one smtp "
        "transport per source address, the milter (or policy service) lines, the "
        "milter_header_checks table and the null-sender map for Postfix's own bounces."
    )

    def add_arguments(self, parser):
        parser.add_argument("--adapter", choices=postfix.ADAPTERS, default="milter")
        parser.add_argument(
            "--milter", default="127.0.0.1:8891", help="where `milter --listen` listens"
        )
        parser.add_argument(
            "--policyd", default="127.0.0.1:8892", help="where `policyd --listen` listens"
        )
        parser.add_argument(
            "--header-checks", default=postfix.HEADER_CHECKS_PATH, help="path of the table"
        )
        parser.add_argument(
            "--nexthop", default="", help="next hop for every pool transport, e.g. [relay]:25"
        )
        parser.add_argument("--section", choices=SECTIONS, default="all")

    def handle(self, *args, **options):
        try:
            settings = postfix.Options(
                adapter=options["adapter"],
                milter=postfix.postfix_socket(options["milter"]),
                policyd=postfix.postfix_socket(options["policyd"]),
                header_checks=options["header_checks"],
                nexthop=options["nexthop"],
            )
        except postfix.ListenError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if options["section"] == "header-checks" and settings.adapter != "milter":
            raise CommandError("--section header-checks is for --adapter milter", returncode=2)
        addresses = postfix.load_addresses()
        if not addresses:
            self.stderr.write("warning: no pool has an address; configure pools first")
        self.stdout.write(postfix.render(addresses, settings, options["section"]), ending="")
