from django.core.management.base import BaseCommand, CommandError

from routing.mta import host, postfix

SECTIONS = ("all", "main", "master", "header-checks")


class Command(BaseCommand):
    help = (
        "Print the Postfix main.cf and master.cf lines for the configured pools: one smtp "
        "transport per source address, the milter (or policy service) lines, the "
        "milter_header_checks table and the null-sender map for Postfix's own bounces. "
        "With --check, list the pool addresses in rotation that this host cannot send from."
    )

    def add_arguments(self, parser):
        parser.add_argument("--adapter", choices=postfix.ADAPTERS, default="milter")
        parser.add_argument(
            "--milter",
            default=postfix.MILTER_SOCKET,
            help="where `milter --listen` listens: unix:/path (the default) or HOST:PORT",
        )
        parser.add_argument(
            "--policyd",
            default=postfix.POLICYD_SOCKET,
            help="where `policyd --listen` listens: unix:/path (the default) or HOST:PORT",
        )
        parser.add_argument(
            "--header-checks", default=postfix.HEADER_CHECKS_PATH, help="path of the table"
        )
        parser.add_argument(
            "--nexthop", default="", help="next hop for every pool transport, e.g. [relay]:25"
        )
        parser.add_argument("--section", choices=SECTIONS, default="all")
        parser.add_argument(
            "--check",
            action="store_true",
            help="print nothing else; exit 1 if a pool address in rotation is not on this host",
        )

    def handle(self, *args, **options):
        if options["check"]:
            return self.check_host()
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

    def check_host(self) -> None:
        addresses = postfix.load_addresses()
        absent = host.missing(addresses)
        for source in absent:
            self.stdout.write(
                f"missing: {source.address} (pool {source.pool}, "
                f"{postfix.transport_name(source.address)}) is in rotation but not configured "
                "on this host: its mail is deferred"
            )
        if absent:
            raise CommandError(f"{len(absent)} pool address(es) not on this host", returncode=1)
        in_rotation = sum(a.in_rotation for a in addresses)
        self.stdout.write(f"ok: all {in_rotation} pool addresses in rotation are on this host")
