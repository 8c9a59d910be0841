"""The Postfix milter: per-message state in, header changes out.

`MessageState` collects what the MTA shows (envelope, headers, and a body only when one is
needed: a `multipart/report` that may be a DSN, or spamd scoring), `changes()` turns it into
the headers to delete and add. `PoolFilter` is the thin glue to the milter protocol
(`milter_protocol`, served by `milter_server`, both pure Python): it negotiates only the steps
used (headers without replies, body, end of message; the envelope comes from Postfix's macros)
and skips the body when it is not needed.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

from routing import scores
from routing.engine import Engine
from routing.facts import DEFER, REJECT, Decision, MessageFacts
from routing.limits.checker import rejection_text
from routing.message import MAX_READ, REPORT, build_facts, facts_from_message, normalize_address
from routing.mta import milter_server, spamd
from routing.mta.milter_protocol import (
    ADDHDRS,
    CHGHDRS,
    CONTINUE,
    NOCONNECT,
    NODATA,
    NOEOH,
    NOHELO,
    NOMAIL,
    NORCPT,
    NOUNKNOWN,
    NR_HDR,
    P_SKIP,
    TEMPFAIL,
    Macros,
    add_header,
    change_header,
    packet,
    reply_code,
)
from routing.mta.milter_server import MilterServer
from routing.mta.postfix import POOL_HEADER, REASONS_HEADER, Listen, pool_header_value
from routing.policy import PolicySnapshot, PolicyUnavailable

logger = logging.getLogger(__name__)
ACTIONS = ADDHDRS | CHGHDRS  # add ours, delete client copies
# Only headers (no reply to each), body (skipped when not needed) and end of message.
STEPS = NOCONNECT | NOHELO | NOMAIL | NORCPT | NODATA | NOEOH | NOUNKNOWN | NR_HDR | P_SKIP
REPORT_BYTES = REPORT.encode()
OWN_HEADERS = {POOL_HEADER.lower(): POOL_HEADER, REASONS_HEADER.lower(): REASONS_HEADER}


@dataclass
class MessageState:
    """What the milter has seen of one message."""

    mail_from: str | None = None
    rcpt_to: list[str] = field(default_factory=list)
    source: str = ""
    sasl_login: str = ""
    headers: list[bytes] = field(default_factory=list)  # "Name: value" lines, raw
    first: dict[str, bytes] = field(default_factory=dict)  # topmost value, by lowercase name
    own_headers: dict[str, int] = field(default_factory=dict)  # client copies, by name
    is_report: bool = False
    body: list[bytes] = field(default_factory=list)
    body_size: int = 0

    def add_header(self, name: str, value: bytes) -> None:
        key = name.lower()
        own = OWN_HEADERS.get(key)
        if own is not None:
            self.own_headers[own] = self.own_headers.get(own, 0) + 1
            return
        self.first.setdefault(key, value)
        if key == "content-type" and value.lstrip()[:16].lower() == REPORT_BYTES:
            self.is_report = True
        self.headers.append(name.encode("ascii", "replace") + b": " + value)

    def get_all(self, name: str) -> list[str] | None:
        """The topmost value of header `name` (as `scores.score_from_headers` reads it)."""
        value = self.first.get(name.lower())
        return None if value is None else [value.decode("utf-8", "replace")]

    def add_body(self, chunk: bytes, limit: int) -> bool:
        """Keep `chunk`; False once `limit` bytes are held (the rest is not needed)."""
        self.body.append(chunk)
        self.body_size += len(chunk)
        return self.body_size < limit

    def raw(self) -> bytes:
        """The message as read: headers (without client copies of ours) and any body kept."""
        return b"\r\n".join(self.headers) + b"\r\n\r\n" + b"".join(self.body)


@dataclass(frozen=True)
class Changes:
    delete: tuple[tuple[str, int], ...]  # (header name, 1-based occurrence), last first
    add: tuple[tuple[str, str], ...]
    decision: Decision | None = None
    defer: str = ""  # why the message must wait (no source address): the MTA answers 4xx
    reject: str = ""  # why the message is refused (a sender limit): the MTA answers 550 5.7.1


def body_limit(state: MessageState, policy: PolicySnapshot) -> int:
    """How many body bytes to read: 0 unless the message is a report or spamd scores it."""
    limit = MAX_READ if state.is_report else 0
    if policy.spamd.enabled:
        limit = max(limit, policy.spamd.max_bytes + 1)
    return limit


def with_spamd_score(facts: MessageFacts, result: spamd.SpamdResult) -> MessageFacts:
    """The facts with spamd's score when it is the higher one: a sender can raise a header
    score (hurting only itself) but never lower the operator's verdict."""
    if result.score is None:
        return dataclasses.replace(facts, problems=(*facts.problems, result.problem))
    if facts.spam_score is not None and facts.spam_score >= result.score:
        return facts
    return dataclasses.replace(facts, spam_score=result.score, score_source="spamd")


def message_facts(state: MessageState, policy: PolicySnapshot) -> MessageFacts:
    """Facts from the envelope and headers; the full parser only runs on a possible DSN."""
    facts = header_facts(state, policy) if not state.is_report else None
    if facts is None:
        facts = facts_from_message(
            state.raw(),
            mail_from=state.mail_from,
            rcpt_to=state.rcpt_to,
            source=state.source,
            sasl_login=state.sasl_login,
            trusted_headers=policy.trusted_headers,
        )
    if policy.spamd.enabled:
        facts = with_spamd_score(facts, spamd.check(state.raw(), policy.spamd))
    return facts


def header_facts(state: MessageState, policy: PolicySnapshot) -> MessageFacts | None:
    """The facts `facts_from_message` would find, from headers already split by the MTA
    (the hot path: no email parser). None when the envelope sender is unknown."""
    if state.mail_from is None:
        return None
    score, header, problems = scores.score_from_headers(state, policy.trusted_headers)
    message_id = state.first.get("message-id", b"").decode("utf-8", "replace")
    return build_facts(
        mail_from=normalize_address(state.mail_from),
        rcpt_to=state.rcpt_to,
        spam_score=score,
        score_source=header,
        source=state.source,
        sasl_login=state.sasl_login,
        subject=" ".join(state.first.get("subject", b"").decode("utf-8", "replace").split()),
        message_id=message_id.strip()[:255],
        size=sum(map(len, state.headers)) + 2 * len(state.headers) + 2 + state.body_size,
        problems=problems,
    )


def header_changes(decision: Decision, own_headers: dict[str, int]) -> Changes:
    """Delete every client copy of our headers, then add the decision's. Without a source
    address the message is deferred: leaving by the default transport would be a wrong pool.
    A message a sender limit rejects is refused; one the limits could not check may wait."""
    if decision.action == REJECT and decision.limit is not None:
        return Changes(delete=(), add=(), decision=decision, reject=rejection_text(decision.limit))
    if decision.action == DEFER:
        why = "; ".join(decision.problems[-1:]) or "sender limits unavailable"
        return Changes(delete=(), add=(), decision=decision, defer=why)
    if not decision.source_ip:
        why = f"no source address in rotation in the {decision.pool} pool"
        return Changes(delete=(), add=(), decision=decision, defer=why)
    delete = tuple(
        (name, index) for name, count in own_headers.items() for index in range(count, 0, -1)
    )
    add = (
        (POOL_HEADER, pool_header_value(decision.pool, decision.source_ip)),
        (REASONS_HEADER, ", ".join(decision.reasons) or "none"),
    )
    return Changes(delete=delete, add=add, decision=decision)


def changes(state: MessageState, engine: Engine) -> Changes:
    """Route the message and say which headers to delete and add."""
    facts = message_facts(state, engine.snapshots.get())
    return header_changes(engine.route(facts), state.own_headers)


class PoolFilter:
    """One per MTA connection (see `milter_server.Filter`). The envelope is read from
    Postfix's macros at end of message, so no envelope step is negotiated."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.state, self.limit = MessageState(), 0

    def reset(self) -> MessageState:
        """The message's state, replaced by a fresh one for the next message."""
        state, self.state, self.limit = self.state, MessageState(), 0
        return state

    def header(self, name: str, value: bytes) -> None:
        self.state.add_header(name, value)

    def body(self, chunk: bytes) -> bool:
        if not self.limit:
            # This runs in the event loop, which must never wait on the database: decide on
            # the policy loaded last (the end of message, in a thread, refreshes it).
            policy = self.engine.snapshots.current or PolicySnapshot()
            self.limit = body_limit(self.state, policy) or -1
        wanted = self.limit > 0 and self.state.body_size < self.limit
        return wanted and self.state.add_body(chunk, self.limit)

    def end_of_message_now(self, macros: Macros) -> list[bytes] | None:
        """The replies when routing needs no I/O (the common case: a policy loaded, the
        sender domain cached, no spamd, not a report to parse), else None and nothing is
        consumed: the server then calls `end_of_message` in a thread."""
        policy = self.engine.snapshots.fresh()
        if policy is None or policy.spamd.enabled or self.state.is_report:
            return None
        state = self.state
        read_envelope(state, macros)
        try:
            facts = header_facts(state, policy)
            decision = self.engine.route_now(facts) if facts is not None else None
        except Exception:  # never let a bug send mail by the wrong pool: it waits instead
            logger.exception("routing failed; message deferred")
            self.reset()
            return [packet(TEMPFAIL)]
        if decision is None:
            return None
        self.reset()
        return replies(header_changes(decision, state.own_headers))

    def end_of_message(self, macros: Macros) -> list[bytes]:
        state = self.reset()
        read_envelope(state, macros)
        try:
            result = changes(state, self.engine)
        except PolicyUnavailable as exc:  # no snapshot since start-up: logged by the refresher
            return [reply_code("451", "4.3.0", f"Poolwarden: {exc}, try again later")]
        except Exception:  # never let a bug send mail by the wrong pool: it waits instead
            logger.exception("routing failed; message deferred")
            return [packet(TEMPFAIL)]
        return replies(result)

    def abort(self) -> None:
        self.reset()


def read_envelope(state: MessageState, macros: Macros) -> None:
    """Sender (empty for `<>`), the recipients and the SASL login, from the macros Postfix
    sends by default (milter_mail_macros, milter_rcpt_macros: once per recipient)."""
    state.mail_from = macros.get("{mail_addr}")
    rcpt = macros.get("{rcpt_addr}")
    state.rcpt_to = list(macros.recipients) or ([rcpt] if rcpt else [])
    state.source = state.sasl_login = macros.get("{auth_authen}") or ""


def replies(result: Changes) -> list[bytes]:
    """The end-of-message packets: a 550 or 451 with the reason, or the header edits and
    continue."""
    if result.reject:
        return [reply_code("550", "5.7.1", result.reject)]
    if result.defer:
        return [reply_code("451", "4.3.0", f"Poolwarden: {result.defer}, try again later")]
    edits = [change_header(name, index, "") for name, index in result.delete]
    edits += [add_header(name, value) for name, value in result.add]
    return [*edits, packet(CONTINUE)]


def serve(engine: Engine, listen: Listen, *, timeout: float = 60) -> None:
    """Run the milter on `listen` until SIGTERM, SIGINT or SIGHUP; the caller then flushes
    the engine. Raises OSError when `listen` cannot be used."""
    try:
        engine.snapshots.get()  # loaded before the first message: `body()` only reads it
    except PolicyUnavailable as exc:  # messages wait (451) until the refresher loads one
        logger.warning("milter: %s; messages are deferred until it loads", exc)
    server = MilterServer(lambda: PoolFilter(engine), actions=ACTIONS, steps=STEPS, timeout=timeout)
    milter_server.run(server, listen)
