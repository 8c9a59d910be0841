"""Build `MessageFacts` from what an adapter knows: an envelope and, often, the message.

Never raises on bad input: what cannot be established is left empty and described in
`MessageFacts.problems`. Only the first `MAX_READ` bytes of a message are looked at, and a
report's MIME tree only down to `MAX_DEPTH` levels and up to `MAX_PARTS` parts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import email
import email.policy
import email.utils
from collections.abc import Iterable
from email.feedparser import FeedParser
from email.message import Message
from email.parser import BytesHeaderParser

from routing import dsn, scores
from routing.dns import idna_name
from routing.facts import MessageFacts

MAX_READ = 4 * 1024 * 1024  # enough for any DSN; spam filters use similar caps
REPORT = "multipart/report"
MAX_DEPTH = 20  # MIME nesting parsed (multipart and message/* parts); real mail stays under 10
MAX_PARTS = 1000  # MIME parts parsed, each delivery-status block counted as one
FEED_SIZE = 1024  # characters parsed between checks: past a limit by ~35 levels, ~200 parts


def normalize_address(text: str | None) -> str | None:
    """`<a@b>` or `a@b` to `a@b`; `<>` to "" (null sender); None stays None."""
    if text is None:
        return None
    text = text.strip()
    if text.startswith("<") and ">" in text:
        text = text[1 : text.index(">")]
    return text.strip()


def domain_of(address: str) -> tuple[str, str]:
    """(IDNA domain, problem): the domain of `address` ready for DNS, or "" and why not."""
    local, at, domain = address.rpartition("@")
    if not at or not local:
        return "", f"{address[:100]!r} is not an address with a domain"
    domain = domain.strip().rstrip(".").lower()
    if domain.startswith("["):
        return "", f"{domain[:60]!r} is an address literal, not a domain"
    try:
        return idna_name(domain), ""
    except ValueError as exc:
        return "", f"{domain[:100]!r} is not a valid domain ({exc})"


def raw_headers(msg: Message, name: str) -> list[str]:
    """Every value of header `name`, top first, as text. Read raw, because compat32 hands
    8-bit values back as mangled Header objects; 8-bit bytes (SMTPUTF8) are read as UTF-8."""
    name = name.lower()
    values = []
    for key, value in msg.raw_items():
        if key.lower() == name:
            text = str(value)
            with contextlib.suppress(UnicodeEncodeError):  # already plain text
                text = text.encode("ascii", "surrogateescape").decode("utf-8", "replace")
            values.append(text)
    return values


def header_address(msg: Message, name: str) -> str:
    values = raw_headers(msg, name)
    if not values:
        return ""
    try:
        return email.utils.parseaddr(values[0])[1]
    except Exception:  # malformed headers can trip the address parser
        return ""


def header_block(raw: bytes) -> bytes:
    """The bytes up to the blank line after the headers: the body is read only for DSNs."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    return raw[: min(ends) + 2] if ends else raw


def may_hold_report(headers: Message, raw: bytes) -> bool:
    """Whether the body is worth parsing for a delivery report: a multipart/report, or a
    multipart or message/* that names a delivery-status part somewhere (a report inside
    multipart/mixed, a forwarded bounce). Most mail is neither, and is never parsed."""
    media = headers.get_content_type()
    if media == REPORT:
        return True
    if not media.startswith(("multipart/", "message/")):
        return False
    return b"delivery-status" in raw.lower()


def parse_bounded(raw: bytes) -> tuple[Message, list[str]]:
    """The MIME tree of `raw` (compat32), and a problem when a limit cut it short.

    The email parser builds the whole tree at once, one generator level per MIME level and
    some work per part: hostile nesting ends in RecursionError, a flood of parts takes
    seconds. So the text is fed in slices and, once it is too deep or has too many parts,
    the rest of the message is left unparsed.
    """
    parts = 0

    def new_part(**kwargs) -> Message:
        nonlocal parts
        parts += 1
        return Message(**kwargs)

    parser = FeedParser(new_part, policy=email.policy.compat32)
    parts = 0  # the parser made one to try the factory
    text = raw.decode("ascii", "surrogateescape")  # as BytesParser does
    problems = []
    for start in range(0, len(text), FEED_SIZE):
        parser.feed(text[start : start + FEED_SIZE])
        if len(parser._msgstack) > MAX_DEPTH:
            problems.append(f"MIME nested deeper than {MAX_DEPTH} levels: the rest not read")
        elif parts > MAX_PARTS:
            problems.append(f"more than {MAX_PARTS} MIME parts: the rest not read")
        if problems:
            break
    return parser.close(), problems


def facts_from_message(
    raw: bytes,
    *,
    mail_from: str | None = None,
    rcpt_to: Iterable[str] = (),
    spam_score: float | None = None,
    source: str = "",
    sasl_login: str = "",
    trusted_headers: Iterable[str] = (),
) -> MessageFacts:
    """Facts from raw RFC 5322 bytes plus what the caller knows of the envelope."""
    problems = []
    if len(raw) > MAX_READ:
        problems.append(f"message of {len(raw)} bytes: only the first {MAX_READ} were read")
        raw = raw[:MAX_READ]
    headers = BytesHeaderParser(policy=email.policy.compat32).parsebytes(header_block(raw))
    score, score_source = spam_score, "caller" if spam_score is not None else ""
    if score is None:
        score, header, score_problems = scores.score_from_headers(headers, trusted_headers)
        score_source = header
        problems += score_problems
    report, is_report = None, False
    if may_hold_report(headers, raw):
        full, parse_problems = parse_bounded(raw)
        problems += parse_problems
        is_report = dsn.is_delivery_report(full)
        if is_report:
            report, dsn_problems = dsn.parse_report(full)
            problems += dsn_problems
    return build_facts(
        mail_from=normalize_address(mail_from),
        rcpt_to=rcpt_to,
        header_from=header_address(headers, "From"),
        spam_score=score,
        score_source=score_source,
        is_report=is_report,
        report=report,
        source=source,
        sasl_login=sasl_login,
        subject=" ".join(next(iter(raw_headers(headers, "Subject")), "").split()),
        message_id=next(iter(raw_headers(headers, "Message-ID")), "").strip()[:255],
        size=len(raw),
        problems=problems,
    )


def facts_from_envelope(
    *,
    mail_from: str | None,
    rcpt_to: Iterable[str] = (),
    spam_score=None,
    source: str = "",
    sasl_login: str = "",
    recipient_count: int = 0,
) -> MessageFacts:
    """Facts when only the envelope is known (policy server, API without a message)."""
    facts = build_facts(
        mail_from=normalize_address(mail_from),
        rcpt_to=rcpt_to,
        spam_score=spam_score,
        score_source="caller" if spam_score is not None else "",
        source=source,
        sasl_login=sasl_login,
    )
    return dataclasses.replace(facts, recipient_count=recipient_count) if recipient_count else facts


def build_facts(
    *,
    mail_from: str | None,
    rcpt_to: Iterable[str],
    header_from: str = "",
    spam_score: float | None = None,
    score_source: str = "",
    is_report: bool = False,
    report=None,
    source: str = "",
    sasl_login: str = "",
    subject: str = "",
    message_id: str = "",
    size: int = 0,
    problems: list[str] | None = None,
) -> MessageFacts:
    problems = list(problems or [])
    sender = mail_from if mail_from is not None else header_from
    domain, domain_error = "", ""
    if sender:
        domain, domain_error = domain_of(sender)
        if domain_error:
            problems.append(f"sender: {domain_error}")
    elif mail_from is None:
        problems.append("no envelope sender and no From header: sender domain unknown")
    signals = []
    if mail_from == "":
        signals.append("null-sender")
    if is_report:
        signals.append("multipart-report")
    return MessageFacts(
        mail_from=mail_from,
        rcpt_to=tuple(filter(None, (normalize_address(r) for r in rcpt_to))),
        header_from=header_from,
        sender_domain=domain,
        sender_domain_error=domain_error,
        spam_score=spam_score,
        score_source=score_source,
        is_dsn=bool(signals),
        dsn_signals=tuple(signals),
        dsn=report,
        source=source,
        sasl_login=sasl_login[:255],
        subject=subject[:200],
        message_id=message_id,
        size=size,
        problems=tuple(problems),
    )
