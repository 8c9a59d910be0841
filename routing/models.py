from __future__ import annotations

import ipaddress
import math

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from routing import pools


class Pool(models.Model):
    """An outbound IP pool: the normal pool carries good mail, the high-risk pool the rest."""

    class Kind(models.TextChoices):
        NORMAL = "normal", "Normal"
        HIGH_RISK = "high-risk", "High-risk"

    name = models.SlugField(
        max_length=64,
        unique=True,
        help_text="Short name used in headers, transports and the configuration file.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.NORMAL)
    description = models.TextField(blank=True)
    take_listed_out = models.BooleanField(
        "take listed addresses out of rotation",
        default=True,
        help_text="Stop sending from an address while a major blocklist lists it "
        "(usual for the normal pool; the high-risk pool is expected to be listed).",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return self.name

    @transaction.atomic
    def sync_addresses(self) -> tuple[int, int]:
        """Create the addresses this pool's ranges imply and delete those no range holds.

        Returns (created, deleted). Addresses that stay keep their rotation state.
        """
        # Query afresh: the admin may hold a prefetched, now stale, list of ranges.
        ranges = list(IPRange.objects.filter(pool=self))
        networks = [(ipaddress.ip_network(r.cidr), r) for r in ranges]
        wanted = {}
        for network, ip_range in networks:
            for spec in pools.enumerated(network):
                wanted[spec.address] = (ip_range, spec)
        deleted = 0
        for address in PoolAddress.objects.filter(pool=self).select_related("ip_range"):
            holder = _holder(address.address, networks)
            if holder is None:
                address.delete()
                deleted += 1
            elif address.ip_range_id != holder.pk:
                address.ip_range = holder
                address.save(update_fields=["ip_range"])
            wanted.pop(address.address, None)
        PoolAddress.objects.bulk_create(
            PoolAddress(
                pool=self,
                ip_range=ip_range,
                address=spec.address,
                active=spec.active,
                reason=spec.reason,
            )
            for ip_range, spec in wanted.values()
        )
        return len(wanted), deleted


def _holder(address: str, networks: list[tuple[pools.IPNetwork, IPRange]]) -> IPRange | None:
    ip = ipaddress.ip_address(address)
    return next((r for net, r in networks if net.version == ip.version and ip in net), None)


class IPRange(models.Model):
    """A block of source addresses owned by a pool (IPv4 up to a /20, or any IPv6 prefix)."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="ranges")
    cidr = models.CharField(
        "range",
        max_length=49,
        unique=True,
        help_text="CIDR, e.g. 192.0.2.0/28 or 2001:db8::25/128. IPv4 ranges are enumerated "
        "(at most a /20); for larger IPv6 ranges list the addresses in use explicitly.",
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["cidr"]
        verbose_name = "IP range"

    def __str__(self) -> str:
        return self.cidr

    def clean(self) -> None:
        try:
            self.cidr = pools.normalized(self.cidr)
        except pools.RangeError as exc:
            raise ValidationError({"cidr": str(exc)}) from None


class PoolAddress(models.Model):
    """One source address of a pool, with its rotation state."""

    pool = models.ForeignKey(Pool, on_delete=models.CASCADE, related_name="addresses")
    ip_range = models.ForeignKey(
        IPRange,
        on_delete=models.CASCADE,
        related_name="addresses",
        verbose_name="range",
        blank=True,  # found from the address by clean()
    )
    address = models.GenericIPAddressField(unique=True)
    active = models.BooleanField(
        "in rotation", default=True, help_text="Routing chooses only addresses in rotation."
    )
    reason = models.CharField(
        max_length=200, blank=True, help_text="Why the address is out of rotation."
    )
    state_changed = models.DateTimeField(default=timezone.now)
    hostname = models.CharField(
        "HELO / rDNS name",
        max_length=253,
        blank=True,
        help_text="The name this address says in HELO and its PTR record: checked on the "
        "domain blocklists (e.g. Spamhaus DBL) at every sweep.",
    )
    listed = models.BooleanField(
        "out: listed",
        default=False,
        help_text="Set by blocklist sweeps while a major list lists the address and its pool "
        "takes listed addresses out of rotation.",
    )
    listed_reason = models.CharField(max_length=300, blank=True)
    keep_in_rotation = models.BooleanField(
        "keep in rotation although listed",
        default=False,
        help_text="Admin override: keep sending from this address even while it is listed.",
    )

    class Meta:
        ordering = ["pool", "id"]
        verbose_name = "pool address"
        verbose_name_plural = "pool addresses"
        indexes = [models.Index(fields=["pool", "active"])]

    def __str__(self) -> str:
        return self.address

    @property
    def in_rotation(self) -> bool:
        """Whether routing may choose this address now."""
        return self.active and (not self.listed or self.keep_in_rotation)

    @staticmethod
    def in_rotation_q(prefix: str = "") -> models.Q:
        """`in_rotation` as a query; `prefix` reaches the address through a relation (e.g.
        "addresses__" from Pool)."""
        field = {name: f"{prefix}{name}" for name in ("active", "listed", "keep_in_rotation")}
        return models.Q(**{field["active"]: True}) & (
            models.Q(**{field["listed"]: False}) | models.Q(**{field["keep_in_rotation"]: True})
        )

    def clean(self) -> None:
        try:
            self.address = str(pools.parse_address(self.address))
        except pools.RangeError as exc:
            raise ValidationError({"address": str(exc)}) from None
        if self.hostname:
            try:
                self.hostname = pools.normalized_hostname(self.hostname)
            except pools.RangeError as exc:
                raise ValidationError({"hostname": str(exc)}) from None
        if not self.active and not self.reason.strip():
            raise ValidationError({"reason": "Say why the address is out of rotation."})
        if self.pool_id is None or self.ip_range_id is not None:
            return
        # A new explicit address: it must lie in one of its pool's IPv6 ranges.
        ranges = [r.cidr for r in self.pool.ranges.all()]
        holder = pools.containing_range(self.address, ranges)
        if holder is None:
            raise ValidationError(
                {"address": f"{self.address} is in none of pool {self.pool}'s ranges."}
            )
        self.ip_range = self.pool.ranges.get(cidr=holder)


class SenderIdentity(models.TextChoices):
    AUTO = "auto", "SASL login, else the API's source, else the envelope sender"
    SASL = "sasl", "SASL login only (mail without one is not limited)"
    ENVELOPE = "envelope", "Envelope sender"


class OnLimitStoreFailure(models.TextChoices):
    DELIVER = "deliver", "Deliver without limits"
    DEFER = "defer", "Defer (the MTA answers 4xx, mail waits)"


class RoutingPolicy(models.Model):
    """The routing rules' settings: one row (pk=1), edited in admin or by config_import."""

    class OnDNSFailure(models.TextChoices):
        IGNORE = "ignore", "Route by the other rules (record dns-unknown)"
        HIGH_RISK = "high-risk", "Use the high-risk pool"

    class Fallback(models.TextChoices):
        HIGH_RISK = "high-risk", "Use the high-risk pool's addresses"
        NONE = "none", "No source address (the MTA defers the message)"

    spam_threshold = models.FloatField(
        default=5.0,
        help_text="Mail scoring above this goes through the high-risk pool "
        "(5.0 is SpamAssassin's required_score).",
    )
    trusted_score_headers = models.JSONField(
        default=list,
        blank=True,
        help_text="Spam-score headers that your own filter adds, in order of preference, e.g. "
        '["X-Spam-Status", "X-Rspamd-Score"]. Only the topmost copy of each counts; strip '
        "copies sent by clients before your filter runs.",
    )
    on_dns_failure = models.CharField(
        "when a sender-domain lookup fails",
        max_length=16,
        choices=OnDNSFailure.choices,
        default=OnDNSFailure.IGNORE,
    )
    fallback = models.CharField(
        "when a pool has no address in rotation",
        max_length=16,
        choices=Fallback.choices,
        default=Fallback.HIGH_RISK,
    )
    spamd_enabled = models.BooleanField(
        "ask spamd for the score",
        default=False,
        help_text="The milter asks SpamAssassin's spamd for each message's score, so a sender "
        "cannot forge it. Off: only the trusted headers count.",
    )
    spamd_address = models.CharField(
        max_length=200,
        default="127.0.0.1:783",
        help_text="host:port of spamd, or unix:/path/to/socket.",
    )
    spamd_timeout = models.FloatField(
        default=5.0, help_text="Seconds to wait for spamd before routing without its score."
    )
    spamd_max_bytes = models.PositiveIntegerField(
        default=512 * 1024, help_text="Larger messages are not sent to spamd (as spamc -s)."
    )
    internal_domains = models.JSONField(
        default=list,
        blank=True,
        help_text='Your own domains, e.g. ["example.com"]: recipients there (and in their '
        "subdomains) count as internal for the sender limits.",
    )
    sender_identity = models.CharField(
        "sender identity for limits",
        max_length=16,
        choices=SenderIdentity.choices,
        default=SenderIdentity.AUTO,
    )
    on_limit_store_failure = models.CharField(
        "when the sender-limit store cannot be reached",
        max_length=16,
        choices=OnLimitStoreFailure.choices,
        default=OnLimitStoreFailure.DELIVER,
        help_text="Redis (or the database) down or slow: deliver without limits, or make "
        "mail wait (4xx) until it answers. Never a rejection.",
    )
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "routing policy"
        verbose_name_plural = "routing policy"

    def __str__(self) -> str:
        return "routing policy"

    @classmethod
    def load(cls) -> RoutingPolicy:
        policy, _ = cls.objects.get_or_create(
            pk=1, defaults={"trusted_score_headers": list(DEFAULT_SCORE_HEADERS)}
        )
        return policy

    def clean(self) -> None:
        from routing import scores

        problems = scores.header_list_problems(self.trusted_score_headers)
        if problems:
            raise ValidationError({"trusted_score_headers": problems})


DEFAULT_SCORE_HEADERS = ("X-Spam-Score", "X-Spam-Status")


class ApiToken(models.Model):
    """A bearer token for the HTTP API. Only its SHA-256 is stored; the token is shown once."""

    name = models.CharField(max_length=100, unique=True, help_text="Who or what uses it.")
    prefix = models.CharField(max_length=12, editable=False, help_text="First characters.")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)
    revoked = models.BooleanField(default=False)

    class Meta:
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class RoutingCount(models.Model):
    """Decisions per minute, pool, reasons and emitting source (flushed in batches)."""

    minute = models.DateTimeField()
    pool = models.CharField(max_length=64)
    reasons = models.CharField(max_length=120, help_text='e.g. "dsn+spam-score", or "none"')
    source = models.CharField(max_length=255, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["minute", "pool", "reasons", "source"], name="routingcount_key"
            )
        ]
        indexes = [models.Index(fields=["minute", "pool"])]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.pool} {self.reasons}: {self.count}"


class RoutingHourly(models.Model):
    """Decisions per hour, rolled up from RoutingCount once older than the per-minute
    retention (POOLWARDEN_DSN_MINUTE_DAYS)."""

    hour = models.DateTimeField()
    pool = models.CharField(max_length=64)
    reasons = models.CharField(max_length=120)
    source = models.CharField(max_length=255, blank=True)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "routing count per hour"
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "pool", "reasons", "source"], name="routinghourly_key"
            )
        ]
        indexes = [models.Index(fields=["hour", "pool"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.pool} {self.reasons}: {self.count}"


class RoutingDaily(models.Model):
    """Decisions per UTC day, pool and reasons (no source): a year's traffic chart reads a few
    thousand of these instead of a hundred thousand hourly rows (flushed with the counters)."""

    day = models.DateTimeField(help_text="Midnight UTC of the day.")
    pool = models.CharField(max_length=64)
    reasons = models.CharField(max_length=120)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "routing count per day"
        constraints = [
            models.UniqueConstraint(fields=["day", "pool", "reasons"], name="routingdaily_key")
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.pool} {self.reasons}: {self.count}"


class AddressCount(models.Model):
    """Messages routed per hour and source address (flushed in batches with the counters)."""

    hour = models.DateTimeField()
    address = models.CharField(max_length=45)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["hour", "address"], name="addresscount_key")]
        indexes = [models.Index(fields=["address", "hour"])]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.address}: {self.count}"


SCORE_BIN_MIN, SCORE_BIN_MAX = -20, 60  # half-point bins: scores from -10 to 30, clamped


def score_bin(score: float) -> int:
    """The half-point bin of a spam score: floor(score * 2), clamped to -10…30 points.
    Clamped before the floor, which overflows on an infinite float (1e308 * 2)."""
    return math.floor(max(SCORE_BIN_MIN, min(SCORE_BIN_MAX, score * 2)))


class ScoreCount(models.Model):
    """Scored messages per UTC day, pool and half-point score bin (the dashboard's spam-score
    distribution: days keep a year to a few tens of thousands of rows); messages without a
    score are not counted here."""

    day = models.DateTimeField(help_text="Midnight UTC of the day.")
    pool = models.CharField(max_length=64)
    bin = models.SmallIntegerField(help_text="floor(score * 2): 9 holds scores 4.5 to 4.99")
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "spam-score count"
        constraints = [
            models.UniqueConstraint(fields=["day", "pool", "bin"], name="scorecount_key")
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.pool} {self.bin / 2:g}: {self.count}"


class DSNTotal(models.Model):
    """DSNs per hour and pool, without DSNCount's other dimensions: the dashboard's DSN volume
    over months reads a few thousand rows instead of a million (flushed with the counters)."""

    hour = models.DateTimeField()
    pool = models.CharField(max_length=64)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name = "DSN total per hour"
        constraints = [models.UniqueConstraint(fields=["hour", "pool"], name="dsntotal_key")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.pool}: {self.count}"


class SettingChange(models.Model):
    """One change an admin made to a setting (who, when, old → new): the audit trail, and the
    markers on the dashboard's charts. Secrets are recorded as changed, never their values."""

    class Action(models.TextChoices):
        ADDED = "added", "Added"
        CHANGED = "changed", "Changed"
        DELETED = "deleted", "Deleted"

    created = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150, help_text="Kept when the user is deleted.")
    action = models.CharField(max_length=8, choices=Action.choices, default=Action.CHANGED)
    model = models.CharField(max_length=100, help_text='e.g. "routing.routingpolicy"')
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField("object", max_length=200, blank=True)
    field = models.CharField(max_length=100, blank=True)
    old = models.TextField(blank=True)
    new = models.TextField(blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        verbose_name = "setting change"
        indexes = [models.Index(fields=["field", "created"])]

    def __str__(self) -> str:
        what = f"{self.object_repr} {self.field}" if self.field else self.object_repr
        if self.action == self.Action.CHANGED:
            return f"{self.username}: {what} {self.old} → {self.new}"
        return f"{self.username}: {self.get_action_display().lower()} {what}"


REFINED_CLASS_HELP = (
    "What the failure means, read from the report: unknown-user, mailbox-full, blocked, "
    "rate-limited, spam or other (empty: no report)."
)


class DSNDimensions(models.Model):
    """The dimensions DSNs are counted by; DSNCount adds the minute, and the hourly roll-up
    (reputation.DSNHourly) the hour."""

    KEY = (
        "pool",
        "source",
        "recipient_domain",
        "original_domain",
        "status",
        "reporting_mta",
        "refined_class",
    )

    pool = models.CharField(max_length=64)
    source = models.CharField(max_length=255, blank=True)
    recipient_domain = models.CharField(max_length=255, blank=True)
    original_domain = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, blank=True)
    reporting_mta = models.CharField(max_length=255, blank=True)
    refined_class = models.CharField(max_length=16, blank=True, help_text=REFINED_CLASS_HELP)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        abstract = True


class DSNCount(DSNDimensions):
    """DSNs per minute, pool, emitting source, recipient domain, original-recipient domain,
    status, reporting MTA and refined class (flushed in batches)."""

    minute = models.DateTimeField()

    class Meta:
        verbose_name = "DSN count"
        constraints = [
            models.UniqueConstraint(fields=["minute", *DSNDimensions.KEY], name="dsncount_key")
        ]
        indexes = [models.Index(fields=["minute", "pool"])]

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.pool} {self.status}: {self.count}"


class DSNSample(models.Model):
    """A DSN recipient kept as evidence for spike causes: a bounded random sample per flush
    interval and process (`routing.counters.SAMPLES_PER_FLUSH`), not every DSN."""

    minute = models.DateTimeField(db_index=True)
    pool = models.CharField(max_length=64)
    source = models.CharField(max_length=255, blank=True)
    recipient = models.CharField(max_length=255, blank=True, help_text="who receives the DSN")
    original_recipient = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=16, blank=True)
    diagnostic = models.CharField(max_length=500, blank=True)
    reporting_mta = models.CharField(max_length=255, blank=True)
    refined_class = models.CharField(max_length=16, blank=True, help_text=REFINED_CLASS_HELP)
    routed_by_us = models.BooleanField(
        null=True, help_text="The bounced message's Message-ID was routed here (None: no ID)."
    )

    class Meta:
        verbose_name = "DSN sample"

    def __str__(self) -> str:
        return f"{self.minute:%Y-%m-%d %H:%M} {self.original_recipient} {self.status}"


class RoutedMessage(models.Model):
    """A Message-ID routed here lately (routing.routed, when the cache is not Redis): DSNs
    about a message never routed here are backscatter evidence. Only the hash is kept."""

    # The key itself, no surrogate id: one index less per remembered message.
    digest = models.BigIntegerField(
        primary_key=True, help_text="64-bit BLAKE2b of the normalized Message-ID, signed."
    )
    hour = models.DateTimeField(db_index=True, help_text="When it was routed, to the hour.")

    class Meta:
        verbose_name = "routed message"

    def __str__(self) -> str:
        return f"{self.digest:016x} {self.hour:%Y-%m-%d %H:00}"


# --- sender limits ----------------------------------------------------------------------------

LIMIT_HELP = "Recipients (high-risk: messages) in the window; empty: no limit."


class SenderLimit(models.Model):
    """Per-sender limits for the senders whose identity matches a glob; the most specific
    match wins (an exact identity, then the glob with the most literal characters)."""

    class Action(models.TextChoices):
        ALERT = "alert", "Alert only"
        HIGH_RISK = "high-risk", "High-risk pool for the rest of the window"
        BLOCK_TODAY = "block-today", "Reject until the window ends"
        BLOCK = "block", "Reject until an operator releases the sender"

    match = models.CharField(
        max_length=255,
        unique=True,
        help_text='Glob on the sender identity (SASL login or address), e.g. "*", '
        '"*@example.com", "alice@example.com".',
    )
    external_per_hour = models.PositiveIntegerField(
        "external recipients per hour", null=True, blank=True, help_text=LIMIT_HELP
    )
    internal_per_hour = models.PositiveIntegerField(
        "internal recipients per hour", null=True, blank=True, help_text=LIMIT_HELP
    )
    per_day = models.PositiveIntegerField(
        "recipients per day", null=True, blank=True, help_text=LIMIT_HELP
    )
    high_risk_per_hour = models.PositiveIntegerField(
        "high-risk messages per hour",
        null=True,
        blank=True,
        help_text="Messages that went high-risk for their spam score; empty: no limit.",
    )
    action = models.CharField(
        max_length=16,
        choices=Action.choices,
        default=Action.BLOCK_TODAY,
        help_text="What happens when one of these limits is reached.",
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["match"]
        verbose_name = "sender limit"

    def __str__(self) -> str:
        return self.match


class RestrictionQuerySet(models.QuerySet):
    def active(self, now=None):
        now = now or timezone.now()
        return self.filter(
            models.Q(until__isnull=True) | models.Q(until__gt=now), released__isnull=True
        ).order_by("-since")


class SenderRestriction(models.Model):
    """A sender that reached a limit: what happened (alert, high-risk, rejected) from `since`
    to `until` (none: until released), the messages rejected since, and samples of the last
    messages. Released by an operator (with a note) or by time."""

    sender = models.CharField(max_length=255, db_index=True)
    limit = models.CharField(max_length=32, help_text="external_per_hour, per_day, …")
    action = models.CharField(max_length=16, choices=SenderLimit.Action.choices)
    count = models.PositiveIntegerField(help_text="The sender's count when it was reached.")
    maximum = models.PositiveIntegerField()
    window = models.PositiveIntegerField(help_text="Seconds.")
    since = models.DateTimeField()
    until = models.DateTimeField(null=True, blank=True, help_text="Empty: until released.")
    rejected = models.PositiveBigIntegerField(default=0, help_text="Messages rejected.")
    samples = models.JSONField(
        default=list, blank=True, help_text="The last messages: time, recipients, subject."
    )
    released = models.DateTimeField(null=True, blank=True)
    released_by = models.CharField(max_length=150, blank=True)
    release_note = models.TextField(blank=True)

    objects = RestrictionQuerySet.as_manager()

    class Meta:
        ordering = ["-since"]
        constraints = [
            models.UniqueConstraint(fields=["sender", "since"], name="senderrestriction_key")
        ]

    def __str__(self) -> str:
        return f"{self.sender}: {self.limit} ({self.action})"

    def hold(self):
        from routing.limits.store import Hold

        return Hold(
            self.sender,
            self.limit,
            self.action,
            self.count,
            self.maximum,
            self.window,
            self.since,
            self.until,
        )

    @classmethod
    def start(cls, hold) -> tuple[SenderRestriction, bool]:
        """The row of `hold` (by sender and since), created if new."""
        return cls.objects.get_or_create(
            sender=hold.sender[:255],
            since=hold.since,
            defaults={
                "limit": hold.limit,
                "action": hold.action,
                "count": hold.count,
                "maximum": hold.maximum,
                "window": hold.window,
                "until": hold.until,
            },
        )


class SenderUsage(models.Model):
    """One message's recipients in one window of a sender (the database store only; with
    Redis the windows live there)."""

    sender = models.CharField(max_length=255)
    limit = models.CharField(max_length=32)
    at = models.DateTimeField()
    count = models.PositiveIntegerField()

    class Meta:
        indexes = [models.Index(fields=["sender", "limit", "at"], name="senderusage_window")]

    def __str__(self) -> str:
        return f"{self.sender} {self.limit} {self.at:%Y-%m-%d %H:%M:%S}: {self.count}"


class SenderRejectedCount(models.Model):
    """Messages rejected by a sender limit, per hour, sender and limit (flushed in batches)."""

    hour = models.DateTimeField()
    sender = models.CharField(max_length=255)
    limit = models.CharField(max_length=32)
    count = models.PositiveBigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "sender", "limit"], name="senderrejectedcount_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.sender} {self.limit}: {self.count}"
