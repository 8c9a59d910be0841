"""What a receiver's answer means: the outcome of a delivery attempt, its reply class, the
blocklist a rejection names, and the provider behind the receiving MX.

Classes, in the order they are tried (the first that fits wins):

| class | from |
|---|---|
| `accepted` | status=sent |
| `connection` | no SMTP reply: refused, timed out, lost connection, no route, host not found |
| `tls-auth` | TLS required or failed; SPF, DKIM, DMARC or authentication failures |
| `dnsbl` | a rejection naming a DNS blocklist ("blocked using zen.spamhaus.org"): the zone kept |
| `rate-limited` | throttling: rate limits, too many messages or connections, unexpected volume |
| `reputation` | policy or reputation blocks of the sending address (Outlook's S3150 and
  SC-001, "poor reputation", other 5.7.x) |
| `content` | spam or content rejections of the message itself |
| `unknown-user` | 5.1.1, 5.1.10, "user unknown", "recipient not found" |
| `mailbox-full` | x.2.2, "over quota" |
| `other` | anything else |
"""

from __future__ import annotations

import re

ACCEPTED, CONNECTION, TLS_AUTH, DNSBL = "accepted", "connection", "tls-auth", "dnsbl"
RATE_LIMITED, REPUTATION, CONTENT = "rate-limited", "reputation", "content"
UNKNOWN_USER, MAILBOX_FULL, OTHER = "unknown-user", "mailbox-full", "other"
CLASSES = (ACCEPTED, CONNECTION, TLS_AUTH, DNSBL, RATE_LIMITED, REPUTATION, CONTENT)
CLASSES += (UNKNOWN_USER, MAILBOX_FULL, OTHER)
OUTCOMES = ("sent", "deferred", "bounced", "expired")

_CONNECTION = re.compile(
    r"connect to .* (?:connection refused|connection timed out|no route to host|network is "
    r"unreachable)|lost connection with|conversation with .* timed out|host or domain name not "
    r"found|host not found|name service error|connection (?:refused|timed out|reset)"
)
_TLS_AUTH = re.compile(
    r"\btls\b|starttls|certificate|\bspf\b|\bdkim\b|\bdmarc\b|authenticat|5\.7\.(?:23|25|26|27)\b"
)
_LIST_ZONE = re.compile(
    r"(?:blocked using|listed (?:at|on|in|by)|rejected by|found in|see(?: https?://)?)\s+"
    r"(?P<zone>(?:[a-z0-9-]+\.)+(?:org|net|com|de|info|io|eu|co|pl|ch|nl|at|ru|uk|fr|it|me))\b"
)
# Lists named without a zone, as some receivers write them ("blocked using Spamhaus").
NAMED_LISTS = {
    "spamhaus": "zen.spamhaus.org",
    "spamcop": "bl.spamcop.net",
    "barracuda": "b.barracudacentral.org",
    "uceprotect": "dnsbl-1.uceprotect.net",
    "mailspike": "bl.mailspike.net",
    "sorbs": "dnsbl.sorbs.net",
    "psbl": "psbl.surriel.com",
    "abusix": "combined.mail.abusix.zone",
}
_NAMED = re.compile(r"\b(" + "|".join(NAMED_LISTS) + r")\b")
_LIST_WORDS = re.compile(r"block ?list|black ?list|\brbl\b|dnsbl|listed")
_RATE = re.compile(
    r"rate.?limit|too many (?:messages|connections|recipients|mails|emails)|throttl|"
    r"unexpected volume|ts[sl]0[1-4]|4\.7\.28\b|exceeded .*(?:limit|quota for sending)|"
    r"try again later.*volume|sending rate|rp-00[1-3]|rl-00"
)
_REPUTATION = re.compile(
    r"\bs3150\b|\bs3140\b|\bs3114\b|\bsc-00[1-4]\b|\bdy-00[1-2]\b|\bou-00[1-2]\b|unusual rate "
    r"of unsolicited|poor reputation|reputation|not accepted for policy reasons|blocked|"
    r"banned|access denied|denied by policy|policy reasons|service unavailable; client host|"
    r"\bip\b.*(?:block|listed)|5\.7\.(?:1|606|511|708|750)\b"
)
_CONTENT = re.compile(
    r"\bspam\b|content|virus|malware|phish|suspicious|message (?:was )?rejected|"
    r"5\.7\.(?:0|9)\b.*(?:message|content)|url|attachment"
)
_UNKNOWN = re.compile(
    r"user unknown|unknown user|no such user|does not exist|doesn't exist|recipient not "
    r"found|recipnotfound|recipientnotfound|invalid recipient|address rejected|mailbox not found|"
    r"no mailbox|doesn.t have an? [^ ]+ account"
)
_FULL = re.compile(r"mailbox (?:is )?full|over ?quota|quota exceeded|insufficient storage")


def outcome(status: str) -> str:
    """sent, deferred, bounced or expired (Postfix's status; anything else as given)."""
    return status.lower() if status else "deferred"


def reply_class(status: str, dsn: str, text: str) -> tuple[str, str]:
    """(class, blocklist zone or "") of one attempt."""
    if status == "sent":
        return ACCEPTED, ""
    text = text.lower()  # the patterns are lowercase: far faster than re.IGNORECASE
    said = " said: " in text
    if not said and _CONNECTION.search(text):
        return CONNECTION, ""
    zone = blocklist_zone(text)
    if zone:
        return DNSBL, zone
    if _TLS_AUTH.search(text):
        return TLS_AUTH, ""
    if _RATE.search(text):
        return RATE_LIMITED, ""
    if dsn.startswith(("5.1.1", "5.1.10", "5.1.0")) or (dsn[2:3] == "1" and _UNKNOWN.search(text)):
        return UNKNOWN_USER, ""
    if (dsn[1:4] == ".2." and dsn.endswith(".2")) or _FULL.search(text):
        return MAILBOX_FULL, ""
    if _CONTENT.search(text) and not _REPUTATION.search(_without_content_words(text)):
        return CONTENT, ""
    if dsn[2:3] == "7" or _REPUTATION.search(text):
        return REPUTATION, ""
    if _UNKNOWN.search(text):
        return UNKNOWN_USER, ""
    if not said and not text.strip():
        return OTHER, ""
    return (CONNECTION, "") if not said and dsn.startswith("4.4.") else (OTHER, "")


def _without_content_words(text: str) -> str:
    return _CONTENT.sub(" ", text)


def blocklist_zone(text: str) -> str:
    """The DNS blocklist a rejection names: its zone ("zen.spamhaus.org"), the usual zone of a
    list named without one ("blocked using Spamhaus"), or ""."""
    text = text.lower()
    found = _LIST_ZONE.search(text)
    if (found and _LIST_WORDS.search(text)) or (found and _NAMED.search(found["zone"])):
        return found["zone"].lower().rstrip(".")
    named = _NAMED.search(text)
    if named and (_LIST_WORDS.search(text) or "blocked" in text or "rejected" in text):
        return NAMED_LISTS[named.group(1)]
    return ""


# --- providers ------------------------------------------------------------------------------

# MX host name suffixes of the big receivers; the operator extends them with
# POOLWARDEN_PROVIDERS ("suffix=Name,suffix=Name").
PROVIDERS = {
    "google.com": "Google",
    "googlemail.com": "Google",
    "outlook.com": "Microsoft",
    "hotmail.com": "Microsoft",
    "yahoodns.net": "Yahoo",
    "yahoo.com": "Yahoo",
    "aol.com": "Yahoo",
    "icloud.com": "Apple",
    "me.com": "Apple",
    "gmx.net": "GMX/Web.de",
    "web.de": "GMX/Web.de",
    "orange.fr": "Orange",
    "comcast.net": "Comcast",
    "mimecast.com": "Mimecast",
    "pphosted.com": "Proofpoint",
    "yandex.net": "Yandex",
    "mail.ru": "Mail.ru",
    "zoho.com": "Zoho",
    "protonmail.ch": "Proton",
    "messagingengine.com": "Fastmail",
    "t-online.de": "T-Online",
    "free.fr": "Free",
    "libero.it": "Libero",
    "seznam.cz": "Seznam",
}
MAJOR = frozenset({"Google", "Microsoft", "Yahoo", "Apple"})
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ac", "gov", "edu", "ne", "or"})


def provider(relay_host: str, recipient_domain: str, extra: dict[str, str] | None = None) -> str:
    """The provider behind the receiving MX (by its host name's suffix), else the MX host's
    registrable domain, else the recipient's domain."""
    table = {**PROVIDERS, **(extra or {})}
    host = relay_host.lower().rstrip(".")
    if host and host != "none":
        labels = host.split(".")
        for i in range(len(labels) - 1):
            name = table.get(".".join(labels[i:]))
            if name:
                return name
        keep = 3 if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL else 2
        return ".".join(labels[-keep:])
    return recipient_domain.lower() or "unknown"


def parse_extra(value: str) -> dict[str, str]:
    """POOLWARDEN_PROVIDERS: "suffix=Name,suffix=Name" (spaces around are ignored)."""
    extra = {}
    for item in value.split(","):
        suffix, _, name = item.partition("=")
        if suffix.strip() and name.strip():
            extra[suffix.strip().lower().strip(".")] = name.strip()
    return extra
