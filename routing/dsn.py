"""Reading delivery status notifications (RFC 3464, RFC 6522, RFC 6533) into a `DSNReport`.

Pure functions on an already parsed `email.message.Message`, from either the compat32 or the
default policy. Nothing here touches the database or the network, and nothing raises: a DSN is
untrusted input from anywhere on the internet, so whatever cannot be read becomes a short
problem string for people instead of an exception in the milter or policy server.

Header values are read through `Message.raw_items()` rather than `msg[name]`: the default
policy parses a header on access and a hostile value can trip its parser, while the raw value
is always a plain string (8-bit bytes kept as surrogate escapes, which we read as UTF-8).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import quopri
import re
from collections import deque
from collections.abc import Iterator
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parseaddr

from routing.facts import DSNRecipient, DSNReport

MAX_RECIPIENTS = 1000  # a real DSN lists a handful; thousands are an attack on our statistics
MAX_FIELD = 998  # RFC 5322 line limit: anything longer is junk, and it ends up in the database
MAX_TEXT = 2_000_000  # characters of delivery-status text read (1000 blocks fit easily)
MAX_PARTS = 200  # MIME parts looked at while searching for the report's parts
MAX_DEPTH = 8  # MIME nesting followed to find a report, and when flattening a status part
MAX_PROBLEMS = 50  # problems are for people; a flood of them helps nobody

REPORT = "multipart/report"
REPORT_TYPES = frozenset({"delivery-status", "global-delivery-status"})
STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
ORIGINAL_TYPES = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"}
)
FORWARDED_TYPES = frozenset({"message/rfc822", "message/global"})
ACTIONS = frozenset({"failed", "delayed", "delivered", "relayed", "expanded"})

# RFC 3464 status-code: class "." 1*3digit "." 1*3digit, optionally followed by a comment
# ("5.1.1 (bad destination mailbox address)"), which some MTAs add.
_STATUS = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})\s*(?:\(.*\))?")
# The address-type / MTA-name-type / diagnostic-type before ";" is an atom ("rfc822", "dns").
_TYPED = re.compile(r"\s*([A-Za-z0-9][A-Za-z0-9.+-]*)\s*;(.*)", re.DOTALL)
_PARAM = re.compile(r';\s*([^\s=;"]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
# RFC 6533 embedded Unicode in utf-8 addresses of an ASCII-only delivery-status part.
_EMBEDDED = re.compile(r"\\x\{([0-9A-Fa-f]{1,6})\}")
_HEADER_LINE = re.compile(r"([\x21-\x39\x3b-\x7e]+)\s*:(.*)", re.DOTALL)


def is_delivery_report(msg: Message) -> bool:
    """True for a delivery status notification (RFC 3464, RFC 6522), wherever it sits.

    That is a multipart/report whose report-type is "delivery-status" (any case) or, as some
    SMTPUTF8 MTAs write it, "global-delivery-status"; or a message with a
    message/delivery-status or message/global-delivery-status part (RFC 6533) anywhere within
    `MAX_DEPTH` levels and `MAX_PARTS` parts: inside a multipart/report whose report-type is
    missing or mangled, inside multipart/mixed (OpenSMTPD, McAfee, Domino), or in a report
    forwarded as message/rfc822. Never raises: anything unreadable is False.
    """
    try:
        media, params = _media_type(msg)
        if media == REPORT and params.get("report-type", "").lower() in REPORT_TYPES:
            return True
        return _find_report(msg) is not None
    except Exception:  # hostile input must never stop the caller
        return False


def parse_report(msg: Message) -> tuple[DSNReport | None, list[str]]:
    """Read the delivery-status part of a DSN, and the returned message's headers if included.

    Returns (report, problems). The report is None only when no message/delivery-status or
    message/global-delivery-status part was found (or the message could not be read at all);
    problems lists, in short human-readable sentences, everything malformed that was skipped or
    guessed around. Never raises.
    """
    problems: list[str] = []
    try:
        return _parse(msg, problems), problems
    except Exception as exc:  # last resort: a bug or a parser corner case, not the caller's fault
        _note(problems, f"could not read the report ({type(exc).__name__})")
        return None, problems


def _parse(msg: Message, problems: list[str]) -> DSNReport | None:
    found = _find_report(msg)
    media, params = _media_type(msg)
    top = media == REPORT and params.get("report-type", "").lower() in REPORT_TYPES
    if found is None and not top:  # as is_delivery_report() decides, with one search
        _note(problems, "not a multipart/report of type delivery-status")
    if found is None:
        _note(problems, "delivery-status part missing")
        return None
    part, container = found
    text = _status_text(part, problems)
    reporting_mta, recipients = _read_blocks(text, problems)
    message_id, original_from = _original_headers(container, problems)
    return DSNReport(
        reporting_mta=reporting_mta,
        recipients=tuple(recipients),
        original_message_id=message_id,
        original_from=original_from,
    )


def _note(problems: list[str], text: str) -> None:
    """Record a problem, keeping the list short enough for a person to read."""
    if len(problems) < MAX_PROBLEMS:
        problems.append(text)
    elif len(problems) == MAX_PROBLEMS:
        problems.append("further problems not listed")


# --- MIME structure -----------------------------------------------------------------------


def _text(value: object) -> str:
    """A raw header value or payload as text; 8-bit bytes are read as UTF-8 (RFC 6532). NUL
    becomes U+FFFD: the text is counted, and PostgreSQL refuses NUL in text."""
    text = value if isinstance(value, str) else str(value)
    try:
        # The bytes parser keeps undecodable bytes as surrogate escapes: get the bytes back.
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeError:  # lone surrogates that did not come from bytes
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    return text.replace("\0", "\ufffd")


def _unfold(value: str) -> str:
    """Join folded lines and collapse whitespace: DSN fields are compared as single lines."""
    return " ".join(value.split())


def _raw_header(part: Message, name: str) -> str:
    """The first `name` header of `part`, unfolded, without the policy's header parsing."""
    wanted = name.lower()
    for key, value in part.raw_items():
        if isinstance(key, str) and key.lower() == wanted:
            return _unfold(_text(value))
    return ""


def _media_type(part: Message) -> tuple[str, dict[str, str]]:
    """(type/subtype lowercased, parameters) of `part`; text/plain when missing or invalid.
    Kept on the part: a report is searched for more than once."""
    known = getattr(part, "_pw_media_type", None)
    if known is None:
        known = _read_media_type(part)
        with contextlib.suppress(AttributeError):  # not a Message (hostile or odd payloads)
            part._pw_media_type = known
    return known


def _read_media_type(part: Message) -> tuple[str, dict[str, str]]:
    value = _raw_header(part, "content-type")
    media = value.split(";", 1)[0].strip().lower()
    if media.count("/") != 1:  # RFC 2045 5.2: an unusable Content-Type means text/plain
        return "text/plain", {}
    params = {}
    for name, raw in _PARAM.findall(value):
        params.setdefault(name.lower(), raw[1:-1] if raw.startswith('"') else raw)
    return media, params


def _subparts(part: Message) -> list[Message]:
    """The parsed sub-messages of `part` (empty when the parser left its body as text)."""
    payload = part._payload if isinstance(part, Message) else None  # see _status_text
    if not isinstance(payload, list):
        return []
    return [sub for sub in payload if isinstance(sub, Message)]


def _find_report(msg: Message) -> tuple[Message, Message] | None:
    """(delivery-status part, the multipart holding it), the shallowest one first.

    Breadth first within `MAX_DEPTH` levels and `MAX_PARTS` parts, so a report wrapped in
    multipart/mixed or forwarded as message/rfc822 is found and the search stops at the first
    status part of the shallowest level. The message returned inside a multipart/report is
    not looked into: the bounce of a bounce reports on our message, not on the one it was
    about.
    """
    queue: deque[tuple[Message, Message, int, bool]] = deque([(msg, msg, 0, False)])
    seen = 0
    while queue and seen < MAX_PARTS:
        part, parent, depth, in_report = queue.popleft()
        seen += 1
        media = _media_type(part)[0]
        if media in STATUS_TYPES:
            return part, parent
        returned = in_report and media in FORWARDED_TYPES
        container = media.startswith("multipart/") or media in FORWARDED_TYPES
        if container and not returned and depth < MAX_DEPTH:
            queue.extend((sub, part, depth + 1, media == REPORT) for sub in _subparts(part))
    return None


def _find_part(msg: Message, types: frozenset[str]) -> Message | None:
    """First part of one of `types`, depth first, not looking inside returned messages.

    Returned messages (message/rfc822) are skipped so that the bounce of a bounce reports on
    our message, not on the one it was about.
    """
    stack, seen = [msg], 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        media = _media_type(part)[0]
        if media in types:
            return part
        if media.startswith("multipart/"):
            stack.extend(reversed(_subparts(part)))
    return None


def _payload_bytes(part: Message) -> bytes:
    """The body of a non-multipart `part`, its transfer encoding undone."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # the default policy parses Content-Transfer-Encoding on access
        data = None
    if isinstance(data, bytes):
        return data
    payload = part._payload
    return _to_bytes(payload) if isinstance(payload, str) else b""


def _to_bytes(text: str) -> bytes:
    """Inverse of the bytes parser's decoding: surrogate escapes back to their bytes."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return text.encode("utf-8", "replace")


def _flatten(subs: list[Message], depth: int = 0) -> bytes:
    """Serialize the header blocks the parser made of a delivery-status part back to text.

    The parser turns each blank-line separated block into a sub-message; a line that is not a
    field ends that sub-message's headers and starts its body, and message/global-delivery-
    status becomes one sub-message whose body holds the recipient blocks. Rebuilding the text
    lets one block reader handle every case, including a transfer encoding to undo.
    """
    chunks: list[bytes] = []
    size = 0
    for sub in subs:
        if size > MAX_TEXT:
            break
        lines = [f"{key}: {value}" for key, value in sub.raw_items()]
        head = _to_bytes("\n".join(lines))
        if depth < MAX_DEPTH and sub.is_multipart():
            body = _flatten(_subparts(sub), depth + 1)
        else:
            payload = sub._payload
            body = _to_bytes(payload) if isinstance(payload, str) else b""
        # Without a blank line in the source, header and body belong to the same block.
        joined = any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in sub.defects)
        chunk = (head + (b"\n" if joined else b"\n\n") + body) if body.strip() else head
        chunks.append(chunk)
        size += len(chunk)
    return b"\n\n".join(chunks)


def _decode_transfer(data: bytes, encoding: str, problems: list[str]) -> bytes:
    """Undo a base64 or quoted-printable transfer encoding the parser did not undo."""
    if encoding == "quoted-printable":
        return quopri.decodestring(data)
    if encoding != "base64":
        return data
    clean = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    try:
        return base64.b64decode(clean + b"=" * (-len(clean) % 4))
    except (binascii.Error, ValueError):
        _note(problems, "delivery-status part: invalid base64")
        return b""


def _status_text(part: Message, problems: list[str]) -> str:
    """The delivery-status fields as text, whichever shape the parser gave the part.

    Reads `part._payload` directly: `get_payload()` re-decodes 8-bit text with the declared
    charset (ASCII by default) and so destroys the UTF-8 that RFC 6533 allows.
    """
    if part.is_multipart():
        encoding = _raw_header(part, "content-transfer-encoding").lower()
        data = _decode_transfer(_flatten(_subparts(part)), encoding, problems)
    else:
        data = _payload_bytes(part)
    text = data.decode("utf-8", "replace").replace("\0", "\ufffd")  # PostgreSQL refuses NUL
    if len(text) > MAX_TEXT:
        _note(problems, f"delivery-status part longer than {MAX_TEXT} characters: truncated")
        text = text[:MAX_TEXT]
    return text


# --- delivery-status fields ---------------------------------------------------------------


def _blocks(text: str) -> Iterator[list[str]]:
    """Blank-line separated groups of lines (RFC 3464 section 2.1)."""
    block: list[str] = []
    for line in text.splitlines():
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def _fields(lines: list[str], label: str, problems: list[str]) -> dict[str, str]:
    """Field name (lowercased) to unfolded, length-capped value; the first occurrence wins."""
    pairs: list[list[str]] = []
    unreadable = 0
    for line in lines:
        if line[:1] in (" ", "\t") and pairs:
            pairs[-1][1] += " " + line  # continuation line (RFC 5322 folding)
            continue
        match = _HEADER_LINE.fullmatch(line)
        if match is None:
            unreadable += 1
            continue
        pairs.append([match.group(1), match.group(2)])
    if unreadable:
        _note(problems, f"{label}: {unreadable} unreadable line(s)")
    fields: dict[str, str] = {}
    for name, raw in pairs:
        value = _unfold(raw)
        if len(value) > MAX_FIELD:
            _note(problems, f"{label}: {name} truncated to {MAX_FIELD} characters")
            value = value[:MAX_FIELD]
        fields.setdefault(name.lower(), value)
    return fields


def _read_blocks(text: str, problems: list[str]) -> tuple[str, list[DSNRecipient]]:
    """(Reporting-MTA, recipients) from the per-message block and the per-recipient blocks."""
    reporting_mta, recipients, number = "", [], 0
    for index, lines in enumerate(_blocks(text)):
        label = "per-message fields" if index == 0 else f"recipient block {number + 1}"
        fields = _fields(lines, label, problems)
        if index == 0:
            if "reporting-mta" not in fields and _has_recipient(fields):
                _note(problems, "per-message fields missing")  # some MTAs leave it out
            else:
                reporting_mta = _mta_name(fields.get("reporting-mta", ""))
                if not reporting_mta:
                    _note(problems, "Reporting-MTA missing")
                # AOL and Mimecast put the first recipient's fields in this block too.
                if not _has_recipient(fields):
                    continue
            label = "recipient block 1"
        number += 1
        if number > MAX_RECIPIENTS:
            _note(problems, f"more than {MAX_RECIPIENTS} recipient blocks: the rest ignored")
            break
        recipient = _recipient(fields, label, problems)
        if recipient is not None:
            recipients.append(recipient)
    if number == 0:
        _note(problems, "no recipient blocks")
    return reporting_mta, recipients


def _has_recipient(fields: dict[str, str]) -> bool:
    return "final-recipient" in fields or "original-recipient" in fields


def _recipient(fields: dict[str, str], label: str, problems: list[str]) -> DSNRecipient | None:
    """One per-recipient block; None when it names no recipient at all."""
    address = _address(fields.get("final-recipient", ""))
    if not address:
        address = _address(fields.get("original-recipient", ""))
        if not address:
            _note(problems, f"{label}: no Final-Recipient or Original-Recipient, skipped")
            return None
        _note(problems, f"{label}: Final-Recipient missing, used Original-Recipient")
    action = _action(fields.get("action", ""), label, problems)
    diagnostic = fields.get("diagnostic-code", "")
    status = _refined(_status(fields.get("status", ""), label, problems), diagnostic)
    return DSNRecipient(
        final_recipient=address,
        action=action,
        status=status,
        diagnostic=diagnostic,
        remote_mta=_mta_name(fields.get("remote-mta", "")),
        refined_class=refined_class_of(status, diagnostic),
    )


def _mta_name(value: str) -> str:
    """ "dns; mx.example.org." -> "mx.example.org"; other types and untyped names as given.

    A DNS name is a single token, so for the dns type whatever follows it (Gmail adds
    "(192.0.2.25, the server for the domain example.org.)") is dropped: the statistics group
    by host name.
    """
    match = _TYPED.fullmatch(value)
    if match is None:
        return value.strip()
    name = match.group(2).strip()
    if match.group(1).lower() == "dns":
        words = name.split()
        name = words[0].rstrip(".") if words else ""
    return name


def _address(value: str) -> str:
    """ "rfc822; Bob@Example.org" -> "bob@example.org" (also utf-8 and untyped addresses)."""
    match = _TYPED.fullmatch(value)
    address = match.group(2) if match else value
    if match and match.group(1).lower() == "utf-8":
        address = _EMBEDDED.sub(_embedded_char, address)
    # "rfc822;<bob@example.org>" is common enough, though RFC 3464 has no angle brackets.
    return address.strip().strip("<>").strip().lower()


def _embedded_char(match: re.Match[str]) -> str:
    code = int(match.group(1), 16)
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"


def _action(value: str, label: str, problems: list[str]) -> str:
    """The action keyword, lowercased, without a trailing comment."""
    words = value.split("(", 1)[0].split()
    action = words[0].lower() if words else ""
    if not action:
        _note(problems, f"{label}: Action missing")
    elif action not in ACTIONS:
        _note(problems, f"{label}: unknown Action {_quote(value)}")
    return action


def _status(value: str, label: str, problems: list[str]) -> str:
    """ "X.Y.Z" with leading zeros dropped, or "" when missing or malformed."""
    if not value:
        _note(problems, f"{label}: Status missing")
        return ""
    match = _STATUS.fullmatch(value)
    if match is None:
        _note(problems, f"{label}: malformed Status {_quote(value)}")
        return ""
    return ".".join(str(int(group)) for group in match.groups())


_DIAGNOSTIC_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")


def _refined(status: str, diagnostic: str) -> str:
    """A generic status ("5.0.0", as Exim writes for every failure, or "5.1.0") replaced by the
    most specific enhanced code of the same class in the Diagnostic-Code: "550 5.1.0 - Unknown
    address error '5.2.2 Mailbox full'" gives 5.2.2. A status as specific as any there stays."""
    if not status:
        return status
    best, best_rank = status, _specificity(status.split("."))
    if best_rank == 2:  # most statuses: nothing to look for
        return status
    for match in _DIAGNOSTIC_STATUS.finditer(diagnostic):
        code = [str(int(group)) for group in match.groups()]
        if code[0] == status[0] and _specificity(code) > best_rank:
            best, best_rank = ".".join(code), _specificity(code)
    return best


def _specificity(code: list[str]) -> int:
    """0 for "X.0.0", 1 for "X.Y.0" or "X.0.Z", 2 for "X.Y.Z"."""
    return (code[1] != "0") + (code[2] != "0")


_BY_STATUS = {
    "1.0": "unknown-user",
    "1.1": "unknown-user",
    "1.2": "unknown-user",
    "1.3": "unknown-user",
    "1.6": "unknown-user",
    "1.10": "unknown-user",
    "2.2": "mailbox-full",
}
# Checked in this order: "blocked using zen.spamhaus.org" is a listing, not content, and
# Gmail's "unusual rate of unsolicited mail" is a rate limit.
_BY_TEXT = (
    (
        "rate-limited",
        re.compile(r"rate.?limit|too many|throttl|\brate (?:of|that)|sending rate", re.I),
    ),
    (
        "blocked",
        re.compile(
            r"block ?list|black ?list|deny ?list|\bdnsbl\b|\brbl\b|spamhaus|spamcop|barracuda"
            r"|listed (?:on|at|by)|reputation",
            re.I,
        ),
    ),
    ("spam", re.compile(r"spam|unsolicited|junk|virus|malware|phish|content", re.I)),
    (
        "mailbox-full",
        re.compile(r"mailbox (?:is )?full|over ?quota|quota exceeded|insufficient storage", re.I),
    ),
    (
        "unknown-user",
        re.compile(
            r"user unknown|unknown (?:user|recipient|address)|no such (?:user|mailbox|recipient)"
            r"|does(?: not|n't) exist|not found|invalid (?:recipient|mailbox)|not listed",
            re.I,
        ),
    ),
    ("blocked", re.compile(r"block|polic|denied|refused|dmarc|\bspf\b|dkim", re.I)),
)


def refined_class_of(status: str, diagnostic: str = "") -> str:
    """What the failure means for the sender: unknown-user, mailbox-full, blocked (policy,
    reputation, blocklist), rate-limited, spam (content) or other. The status decides where
    it is specific (X.1.1, X.2.2), else the receiver's words, else X.7.* means blocked."""
    subject = status.partition(".")[2]
    if subject in _BY_STATUS:
        return _BY_STATUS[subject]
    for name, pattern in _BY_TEXT:
        if pattern.search(diagnostic):
            return name
    return "blocked" if subject.startswith("7.") else "other"


def _quote(value: str, limit: int = 60) -> str:
    """A value for a problem message: quoted and short."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


# --- the returned message -----------------------------------------------------------------


def _original_headers(msg: Message, problems: list[str]) -> tuple[str, str]:
    """(Message-ID, From address) of the returned message or headers, ("", "") if absent."""
    part = _find_part(msg, ORIGINAL_TYPES)
    if part is None:
        return "", ""
    inner = _subparts(part)
    if inner:
        headers = inner[0]
    else:  # text/rfc822-headers, or a message/* part the parser left as text
        headers = BytesHeaderParser(policy=compat32).parsebytes(_payload_bytes(part))
    message_id = _raw_header(headers, "message-id")[:MAX_FIELD]
    raw_from = _raw_header(headers, "from")[:MAX_FIELD]
    try:
        original_from = parseaddr(raw_from)[1]
    except Exception:  # malformed addresses have tripped parseaddr in some Python releases
        _note(problems, "returned message: unreadable From")
        original_from = ""
    return message_id, original_from
