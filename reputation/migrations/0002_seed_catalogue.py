"""Seed the blocklist catalogue with lists alive in late 2026 (see docs/blocklists.md) and
the default sweep schedule: every 30 minutes (beat), chunks delayed by random jitter.

Not seeded: dnsbl.sorbs.net (shut down 2024-06-05), ix.dnsbl.manitu.net (empty since
2025-01-16), hostkarma (status unclear). Lists needing a key or a registration are seeded
disabled.
"""

import json

from django.db import migrations
from django.utils import timezone

SPAMHAUS_ERRORS = ["127.255.255.0/24"]
LISTS = [
    dict(
        zone="zen.spamhaus.org",
        weight="major",
        ipv6=True,
        codes={
            "127.0.0.2": "SBL: Spamhaus spam source",
            "127.0.0.3": "CSS: snowshoe spam",
            "127.0.0.4": "XBL: exploited host",
            "127.0.0.9": "DROP: hijacked network",
            "127.0.0.10": "PBL: end-user range (ISP)",
            "127.0.0.11": "PBL: end-user range (Spamhaus)",
            "127.0.0.30": "BCL: botnet controller",
        },
        error_codes=SPAMHAUS_ERRORS,
        delist_url="https://check.spamhaus.org/",
        max_per_day=300000,
        description="Free for low-volume non-commercial use; refused through public resolvers.",
    ),
    dict(
        zone="zen.dq.spamhaus.net",
        weight="major",
        enabled=False,
        ipv6=True,
        requires_key=True,
        codes={
            "127.0.0.2": "SBL: Spamhaus spam source",
            "127.0.0.3": "CSS: snowshoe spam",
            "127.0.0.4": "XBL: exploited host",
            "127.0.0.9": "DROP: hijacked network",
            "127.0.0.10": "PBL: end-user range (ISP)",
            "127.0.0.11": "PBL: end-user range (Spamhaus)",
            "127.0.0.30": "BCL: botnet controller",
        },
        error_codes=SPAMHAUS_ERRORS,
        delist_url="https://check.spamhaus.org/",
        description="Spamhaus Data Query Service: set the access key to enable.",
    ),
    dict(
        zone="dbl.spamhaus.org",
        kind="domain",
        weight="major",
        codes={
            "127.0.1.2": "spam domain",
            "127.0.1.4": "phishing domain",
            "127.0.1.5": "malware domain",
            "127.0.1.6": "botnet C&C domain",
            "127.0.1.102": "abused legit spam",
            "127.0.1.103": "abused legit spammed redirector",
            "127.0.1.104": "abused legit phish",
            "127.0.1.105": "abused legit malware",
            "127.0.1.106": "abused legit botnet C&C",
        },
        error_codes=["127.0.1.255", *SPAMHAUS_ERRORS],
        delist_url="https://check.spamhaus.org/",
        max_per_day=300000,
    ),
    dict(
        zone="bl.spamcop.net",
        weight="major",
        codes={"127.0.0.2": "SpamCop: reported spam source"},
        delist_url="https://www.spamcop.net/bl.shtml",
    ),
    dict(
        zone="b.barracudacentral.org",
        weight="major",
        enabled=False,
        codes={"127.0.0.2": "Barracuda reputation: poor"},
        delist_url="https://www.barracudacentral.org/rbl/removal-request",
        description="Register your resolvers' addresses with Barracuda, then enable.",
    ),
    dict(
        zone="dnsbl-1.uceprotect.net",
        codes={"127.0.0.2": "UCEPROTECT level 1: the address"},
        delist_url="https://www.uceprotect.net/en/rblcheck.php",
    ),
    dict(
        zone="dnsbl-2.uceprotect.net",
        enabled=False,
        codes={"127.0.0.2": "UCEPROTECT level 2: the allocation"},
        delist_url="https://www.uceprotect.net/en/rblcheck.php",
    ),
    dict(
        zone="dnsbl-3.uceprotect.net",
        enabled=False,
        codes={"127.0.0.2": "UCEPROTECT level 3: the ASN"},
        delist_url="https://www.uceprotect.net/en/rblcheck.php",
    ),
    dict(
        zone="psbl.surriel.com",
        codes={"127.0.0.2": "PSBL: spamtrap hit"},
        delist_url="https://psbl.org/remove",
    ),
    dict(
        zone="bl.mailspike.net",
        codes={
            "127.0.0.2": "Mailspike: listed",
            "127.0.0.10": "Mailspike: worst reputation",
            "127.0.0.11": "Mailspike: very bad reputation",
            "127.0.0.12": "Mailspike: bad reputation",
        },
        delist_url="https://mailspike.io/ip_verify",
        max_per_day=100000,
    ),
    dict(
        zone="combined.mail.abusix.zone",
        weight="major",
        enabled=False,
        ipv6=True,
        requires_key=True,
        codes={
            "127.0.0.2": "Abusix: spam source",
            "127.0.0.3": "Abusix: spam source",
            "127.0.0.4": "Abusix: exploited host",
            "127.0.0.11": "Abusix: generic rDNS",
            "127.0.0.12": "Abusix: no rDNS",
            "127.0.0.200": "Abusix: spam source",
        },
        delist_url="https://lookup.abusix.com/",
        description="Abusix Mail Intelligence: set the access key to enable.",
    ),
    dict(
        zone="dnsbl.dronebl.org",
        codes={
            "127.0.0.3": "DroneBL: IRC drone",
            "127.0.0.5": "DroneBL: bottler",
            "127.0.0.6": "DroneBL: unknown spambot or drone",
            "127.0.0.7": "DroneBL: DDoS drone",
            "127.0.0.8": "DroneBL: SOCKS proxy",
            "127.0.0.9": "DroneBL: HTTP proxy",
            "127.0.0.10": "DroneBL: proxy chain",
            "127.0.0.11": "DroneBL: web page proxy",
            "127.0.0.12": "DroneBL: open DNS resolver",
            "127.0.0.13": "DroneBL: brute force attacker",
            "127.0.0.14": "DroneBL: open Wingate proxy",
            "127.0.0.15": "DroneBL: compromised router",
            "127.0.0.16": "DroneBL: autorooting worm",
            "127.0.0.17": "DroneBL: botnet",
            "127.0.0.18": "DroneBL: DNS/MX on IRC",
            "127.0.0.19": "DroneBL: abused VPN",
        },
        delist_url="https://dronebl.org/lookup",
    ),
    dict(
        zone="multi.surbl.org",
        kind="domain",
        bitmask=True,
        codes={
            "127.0.0.8": "SURBL PH: phishing",
            "127.0.0.16": "SURBL MW: malware",
            "127.0.0.64": "SURBL ABUSE: spam",
            "127.0.0.128": "SURBL CR: cracked site",
        },
        error_codes=["127.0.0.1"],
        delist_url="https://surbl.org/surbl-analysis",
    ),
    dict(
        zone="multi.uribl.com",
        kind="domain",
        bitmask=True,
        codes={
            "127.0.0.2": "URIBL black",
            "127.0.0.4": "URIBL grey",
            "127.0.0.8": "URIBL red",
        },
        error_codes=["127.0.0.1"],
        delist_url="https://admin.uribl.com/",
    ),
]
DEFAULTS = dict(
    kind="ip",
    weight="minor",
    enabled=True,
    ipv6=False,
    bitmask=False,
    error_codes=[],
    not_listing_codes=[],
    requires_key=False,
    description="",
    max_in_flight=20,
    max_qps=50,
    max_per_day=0,
    clean_to_close=2,
)
SCHEDULE = "Blocklist sweep"


def seed(apps, schema_editor):
    Blocklist = apps.get_model("reputation", "Blocklist")
    for entry in LISTS:
        values = {**DEFAULTS, **entry}
        zone = values.pop("zone")
        Blocklist.objects.get_or_create(zone=zone, defaults=values)
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    every, _ = IntervalSchedule.objects.get_or_create(every=30, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=SCHEDULE,
        defaults={
            "task": "reputation.sweep",
            "interval": every,
            "kwargs": json.dumps({"jitter": 120}),
            "description": "Check every pool address against the enabled blocklists; each "
            "chunk starts after a random delay of up to `jitter` seconds (kwargs).",
        },
    )
    # Tell a running beat (DatabaseScheduler) that the schedule changed.
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def unseed(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=SCHEDULE).delete()
    apps.get_model("reputation", "Blocklist").objects.filter(
        zone__in=[entry["zone"] for entry in LISTS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("reputation", "0001_blocklists"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
