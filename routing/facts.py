"""The data the routing engine works on: what is known about a message, and the decision.

Plain frozen dataclasses, built by the adapters (milter, policy server, HTTP API, CLI) and
read by `routing.classify`. Nothing here touches the database or the network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class DSNRecipient:
    """One per-recipient block of an RFC 3464 delivery-status part."""

    final_recipient: str  # the address only, lowercased domain: "bob@example.org"
    action: str  # failed, delayed, delivered, relayed, expanded ("" if missing)
    status: str  # "5.1.1" ("" if missing or malformed)
    diagnostic: str = ""  # Diagnostic-Code text, e.g. "smtp; 550 5.1.1 User unknown"
    remote_mta: str = ""  # Remote-MTA, e.g. "mx.example.org"
    # What the failure means: unknown-user, mailbox-full, blocked (policy, reputation,
    # blocklist), rate-limited, spam (content) or other; "" when not read from a report.
    refined_class: str = ""


@dataclass(frozen=True)
class DSNReport:
    """What a DSN says: who reported it, about which recipients, and about which message."""

    reporting_mta: str = ""  # "mail.example.net" (type prefix such as "dns;" removed)
    recipients: tuple[DSNRecipient, ...] = ()
    original_message_id: str = ""  # Message-ID of the returned message or its headers
    original_from: str = ""  # From: address of the returned message, if included


@dataclass(frozen=True)
class MessageFacts:
    """Everything the engine needs to decide. Built by `routing.message.facts_from_*`."""

    mail_from: str | None = None  # envelope sender; "" is the null sender <>, None = unknown
    rcpt_to: tuple[str, ...] = ()
    header_from: str = ""
    sender_domain: str = ""  # IDNA (punycode), lowercase; "" when none could be found
    sender_domain_error: str = ""  # a sender was given, but its domain cannot exist
    spam_score: float | None = None
    score_source: str = ""  # "caller" or "header:X-Spam-Status"; "" when no score
    is_dsn: bool = False
    dsn_signals: tuple[str, ...] = ()  # "null-sender", "multipart-report"
    dsn: DSNReport | None = None
    source: str = ""  # emitting source: SASL login or client address, when known
    recipient_count: int = 0  # recipients the MTA counted without naming them (policyd at DATA)
    sasl_login: str = ""  # the MTA's SASL login ({auth_authen}, sasl_username), when known
    subject: str = ""  # the Subject header (for the samples of restricted senders)
    message_id: str = ""
    size: int = 0  # bytes read (capped)
    problems: tuple[str, ...] = ()  # what could not be established, for people

    @property
    def dsn_recipient_domain(self) -> str:
        """Domain that receives the DSN (the bounce goes to the envelope recipient)."""
        if not self.rcpt_to:
            return ""
        return self.rcpt_to[0].rpartition("@")[2].lower()


DELIVER, REJECT, DEFER = "deliver", "reject", "defer"


@dataclass(frozen=True)
class LimitHit:
    """The sender limit that acted on a message (the `limit` of the decision's JSON)."""

    name: str  # external_per_hour, internal_per_hour, per_day, high_risk_per_hour
    count: int  # the sender's count in the window when the limit was reached
    window: int  # seconds
    maximum: int
    sender: str
    action: str  # the limit's action: alert, high-risk, block-today, block
    since: str  # ISO 8601: when the limit was reached
    until: str | None  # ISO 8601; None: until an operator releases the sender


@dataclass(frozen=True)
class Decision:
    pool: str
    pool_kind: str  # "normal" or "high-risk"
    source_ip: str | None
    reasons: tuple[str, ...]  # every reason that held: "spam-score", "no-a-mx", "dsn", ...
    spam_score: float | None
    is_dsn: bool
    sender_domain: str
    fallback: bool = False  # the chosen pool had no address in rotation
    problems: tuple[str, ...] = field(default=())
    # deliver; reject (a sender limit: never routed, no pool); defer (the MTA answers 4xx)
    action: str = DELIVER
    limit: LimitHit | None = None

    def as_dict(self) -> dict:
        data = asdict(self)
        data["reasons"] = list(self.reasons)
        data["problems"] = list(self.problems)
        return data


def decision_json(facts: MessageFacts, decision: Decision) -> dict:
    """The decision as the API and `route --json` give it (DESIGN.md contract)."""
    data = decision.as_dict()
    data["score_source"] = facts.score_source
    data["dsn_signals"] = list(facts.dsn_signals)
    if facts.dsn is not None:
        data["dsn"] = {
            "reporting_mta": facts.dsn.reporting_mta,
            "original_message_id": facts.dsn.original_message_id,
            "recipients": [
                {
                    "final_recipient": r.final_recipient,
                    "action": r.action,
                    "status": r.status,
                    "refined_class": r.refined_class,
                }
                for r in facts.dsn.recipients
            ],
        }
    return data
