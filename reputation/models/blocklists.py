"""Blocklists (the catalogue), check runs, the per-address state and listing history.

State changes are rows: a `Listing` opens and closes, a `BlocklistEvent` records each
transition (listing opened or closed, list misbehaving or back) for the alerts to send.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone

from reputation.blocklists import catalogue, dnsbl


class Blocklist(models.Model):
    """One DNS blocklist and how to read its answers."""

    class Kind(models.TextChoices):
        IP = dnsbl.IP, "IP addresses"
        DOMAIN = dnsbl.DOMAIN, "Domain names (HELO / rDNS names)"

    class Weight(models.TextChoices):
        MAJOR = catalogue.MAJOR, "Major (takes normal-pool addresses out of rotation)"
        MINOR = catalogue.MINOR, "Minor (recorded only)"

    zone = models.CharField(
        max_length=253, unique=True, help_text="The list's DNS zone, e.g. zen.spamhaus.org."
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.IP)
    enabled = models.BooleanField(default=True, help_text="Sweeps query enabled lists only.")
    weight = models.CharField(max_length=8, choices=Weight.choices, default=Weight.MINOR)
    ipv4 = models.BooleanField(
        "answers for IPv4",
        default=True,
        help_text="Query IPv4 addresses; its self-test asks 127.0.0.2 and 127.0.0.1. Off for an "
        "IPv6-only list. Ignored for domain lists.",
    )
    ipv6 = models.BooleanField(
        "answers for IPv6",
        default=False,
        help_text="Query IPv6 addresses (32 reversed nibbles); its self-test asks ::FFFF:7F00:2 "
        "and ::FFFF:7F00:1. Ignored for domain lists.",
    )
    codes = models.JSONField(
        "return codes",
        default=dict,
        blank=True,
        help_text='Meaning of each listing code, e.g. {"127.0.0.2": "SBL"}. For a bitmask list, '
        "each code's last octet is one bit.",
    )
    bitmask = models.BooleanField(default=False, help_text="Codes combine bits (SURBL, URIBL).")
    error_codes = models.JSONField(
        default=list,
        blank=True,
        help_text='Answers that are errors, not listings, e.g. ["127.255.255.254"] or '
        '["127.255.255.0/24"]. They never open or close a listing.',
    )
    not_listing_codes = models.JSONField(
        default=list,
        blank=True,
        help_text="Positive answers that list nothing (e.g. a whitelist code).",
    )
    delist_url = models.URLField("delisting URL", blank=True)
    nameservers = models.TextField(
        "own nameservers",
        blank=True,
        help_text="Resolvers that serve this list, if not POOLWARDEN_NAMESERVERS (empty): IP "
        "addresses as host, host:port or [v6]:port, comma-separated. E.g. a local rbldnsd "
        "serving an rsync copy, or a DQS endpoint.",
    )
    mirror = models.BooleanField(
        "local mirror",
        default=False,
        help_text="The nameservers serve a local copy of the list (rsync + rbldnsd): no daily "
        "cap and no query limits apply (the values below are kept, and ignored).",
    )
    max_in_flight = models.PositiveIntegerField(
        "queries in flight",
        default=catalogue.DEFAULT_IN_FLIGHT,
        help_text="At most this many queries at once (0: only the sweep's overall window). "
        "Through your own resolver the round-trip time then paces the list.",
    )
    max_qps = models.PositiveIntegerField(
        "queries per second",
        default=catalogue.DEFAULT_QPS,
        help_text="At most this many per second (0: no limit). Public lists cap the daily "
        "volume, not the rate: set this only for a list that asks for it.",
    )
    max_per_day = models.PositiveIntegerField(
        "queries per day",
        default=0,
        help_text="Daily cap of the list's free tier (0: none). Sweeps spread their work to "
        "stay inside it and re-check an address only when its last answer's TTL has passed.",
    )
    clean_to_close = models.PositiveSmallIntegerField(
        "clean answers to close",
        default=2,
        help_text="A listing closes after this many consecutive clean answers.",
    )
    requires_key = models.BooleanField(
        default=False, help_text="The list is queried only with an access key (DQS-style)."
    )
    access_key = models.CharField(
        max_length=63,
        blank=True,
        help_text="Queried as <key>.<zone>. Never shown after saving, logged or exported.",
    )
    description = models.TextField(blank=True)
    misbehaving = models.BooleanField(
        default=False,
        editable=False,
        help_text="Failed its last self-test (RFC 5782 §5): its answers are not applied.",
    )
    misbehaving_reason = models.CharField(max_length=300, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["zone"]

    def __str__(self) -> str:
        return self.zone

    def clean(self) -> None:
        self.nameservers = catalogue.join_servers(catalogue.split_servers(self.nameservers))
        problems = catalogue.spec_problems(catalogue.state_of(self))
        if problems:
            raise ValidationError(problems)

    def servers(self) -> list[tuple[str, int]]:
        """This list's own resolvers as (address, port); [] means POOLWARDEN_NAMESERVERS.
        Raises ValueError on an entry that clean() refuses."""
        return [catalogue.parse_server(e) for e in catalogue.split_servers(self.nameservers)]

    @property
    def daily_cap(self) -> int:
        """Queries allowed a day, 0 for no cap: `max_per_day`, none for a mirror."""
        return 0 if self.mirror else self.max_per_day

    @property
    def query_limits(self) -> tuple[int, int]:
        """(queries in flight, queries per second) for the sweeper, 0 meaning no limit of
        the list's own (the sweep's overall window applies): `max_in_flight` and
        `max_qps`, none for a mirror."""
        return (0, 0) if self.mirror else (self.max_in_flight, self.max_qps)

    def spec(self) -> dnsbl.ListSpec:
        return dnsbl.ListSpec(
            zone=self.zone,
            kind=self.kind,
            ipv4=self.ipv4,
            ipv6=self.ipv6,
            codes=dict(self.codes),
            error_codes=tuple(self.error_codes),
            not_listing=tuple(self.not_listing_codes),
            bitmask=self.bitmask,
            access_key=self.access_key,
        )


class CheckRun(models.Model):
    """One sweep: when, what it covered, and what came back."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        COMMAND = "command", "check_blocklists"
        ADDRESS = "address", "Check now (one address)"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    pool = models.CharField(max_length=64, blank=True, help_text="Only this pool, if set.")
    address = models.CharField(
        max_length=255,
        blank=True,
        help_text="Only this pool address (and its HELO name), if set: a dashboard "
        '"check now". Its answers apply as a sweep\'s, but it records no list sweep.',
    )
    zones = models.JSONField(default=list, blank=True, help_text="Only these lists, if set.")
    started = models.DateTimeField(default=timezone.now)
    finished = models.DateTimeField(null=True, blank=True)
    chunks = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    addresses = models.PositiveIntegerField(default=0)
    queries = models.PositiveIntegerField(default=0)
    listed = models.PositiveIntegerField("listed answers", default=0)
    clean = models.PositiveIntegerField("clean answers", default=0)
    unknown = models.PositiveIntegerField("unknown answers", default=0)
    deferred = models.PositiveIntegerField(
        default=0, help_text="Lookups left for a later sweep (TTL not expired, daily cap)."
    )
    errors = models.JSONField(default=dict, blank=True, help_text="Unknown answers per list.")
    misbehaving = models.JSONField(default=dict, blank=True, help_text="Lists failing self-test.")
    skipped = models.JSONField(
        default=dict,
        blank=True,
        help_text="Lists this run left out because another run was still sweeping them.",
    )
    swept = models.JSONField(
        default=dict,
        blank=True,
        editable=False,
        help_text="Per list while the run is going on: first answer time, shortest TTL, "
        "answers; each becomes a ListSweep when the run is complete.",
    )

    class Meta:
        ordering = ["-started"]
        verbose_name = "check run"
        indexes = [models.Index(fields=["started"])]

    def __str__(self) -> str:
        what = f"check now {self.address}" if self.address else self.trigger
        return f"{what} {self.started:%Y-%m-%d %H:%M}"

    @property
    def partial(self) -> bool:
        """Whether the run covers less than every enabled list on every pool address: one
        pool, named lists, one address, or lists left out because another run held them."""
        return bool(self.pool or self.zones or self.address or self.skipped)


class ChunkDone(models.Model):
    """A chunk of a run whose results were applied: a retried chunk applies nothing twice."""

    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="chunks_applied")
    index = models.PositiveIntegerField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="chunkdone_key")]

    def __str__(self) -> str:
        return f"run {self.run_id} chunk {self.index}"


class AddressCheck(models.Model):
    """The latest trusted answer for one address on one list, and the clean-answer streak.

    Written only when something changes (the answer, the streak up to `clean_to_close`, an
    unknown answer), and on every answer of a list with a daily cap: a sweep that finds what
    the last one found writes none of these. When the pair was last asked is then the later
    of `checked` and the list's last complete `ListSweep` that covered it (see
    `reputation.blocklists.listings.last_answered`).
    """

    address = models.CharField(max_length=255)
    blocklist = models.ForeignKey(Blocklist, on_delete=models.CASCADE, related_name="checks")
    status = models.CharField(max_length=8)
    codes = models.JSONField(default=list, blank=True)
    clean_streak = models.PositiveIntegerField(
        default=0, help_text="Clean answers in a row, counted up to the list's clean_to_close."
    )
    checked = models.DateTimeField(help_text="The last trusted answer written here.")
    fresh_until = models.DateTimeField(help_text="The answer's TTL: no re-check before.")
    missed_run = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The run whose answer was unknown since `checked` (its sweep, and earlier "
        "ones, did not answer this pair).",
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["address", "blocklist"], name="addresscheck_key")
        ]

    def __str__(self) -> str:
        return f"{self.address} on {self.blocklist}: {self.status}"


class ListSweep(models.Model):
    """One list in one complete run: every pair of the run's scope (all pools, or its pool)
    that the run asked was answered at `checked` or later, except the pairs whose
    AddressCheck names a later `missed_run`. `fresh_until` is the shortest TTL of the answers."""

    run = models.ForeignKey(CheckRun, on_delete=models.CASCADE, related_name="list_sweeps")
    blocklist = models.ForeignKey(Blocklist, on_delete=models.CASCADE, related_name="sweeps")
    pool = models.CharField(max_length=64, blank=True, help_text="The run's pool; '' = all.")
    checked = models.DateTimeField(help_text="The first answer of this list in the run.")
    fresh_until = models.DateTimeField()
    answers = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "blocklist"], name="listsweep_key")]
        indexes = [models.Index(fields=["blocklist", "pool", "run"], name="listsweep_latest")]

    def __str__(self) -> str:
        return f"{self.blocklist} in run {self.run_id}"


class SweepLease(models.Model):
    """Which run is sweeping a list, until when: a run never overlaps another on one list.
    Renewed by every chunk the run applies, released when the run is complete."""

    blocklist = models.OneToOneField(
        Blocklist, on_delete=models.CASCADE, primary_key=True, related_name="lease"
    )
    run = models.ForeignKey(
        CheckRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    until = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.blocklist}: run {self.run_id} until {self.until:%H:%M:%S}"


class Listing(models.Model):
    """An address listed on a list from `opened` until `closed` (open while null)."""

    address = models.CharField(max_length=255)
    pool = models.CharField(max_length=64, blank=True)
    blocklist = models.ForeignKey(Blocklist, on_delete=models.CASCADE, related_name="listings")
    codes = models.JSONField(default=list)
    meanings = models.JSONField(default=list)
    reason = models.TextField(blank=True)
    opened = models.DateTimeField(default=timezone.now)
    closed = models.DateTimeField(null=True, blank=True)
    opened_by = models.ForeignKey(
        CheckRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    closed_by = models.ForeignKey(
        CheckRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-opened"]
        indexes = [
            models.Index(fields=["opened"]),
            models.Index(fields=["address", "opened"]),
            models.Index(fields=["closed"], name="listing_closed"),  # recently closed ones
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["address", "blocklist"],
                condition=Q(closed__isnull=True),
                name="listing_one_open",
            )
        ]

    def __str__(self) -> str:
        return f"{self.address} on {self.blocklist}"

    @property
    def is_open(self) -> bool:
        return self.closed is None


class BlocklistEvent(models.Model):
    """A transition to tell admins about; `processed` is set once an alert went out."""

    class Kind(models.TextChoices):
        OPENED = "opened", "Listing opened"
        CLOSED = "closed", "Listing closed"
        MISBEHAVING = "misbehaving", "List failed its self-test"
        RECOVERED = "recovered", "List passes its self-test again"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    blocklist = models.ForeignKey(Blocklist, on_delete=models.CASCADE, related_name="events")
    address = models.CharField(max_length=255, blank=True)
    detail = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    processed = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created"]
        indexes = [
            models.Index(
                fields=["created"], condition=Q(processed__isnull=True), name="event_unprocessed"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()}: {self.blocklist} {self.address}".strip()


class QueryUsage(models.Model):
    """Queries sent to one list on one day, against its daily cap."""

    blocklist = models.ForeignKey(Blocklist, on_delete=models.CASCADE, related_name="usage")
    day = models.DateField()
    queries = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["blocklist", "day"], name="usage_key")]

    def __str__(self) -> str:
        return f"{self.blocklist} {self.day}: {self.queries}"
