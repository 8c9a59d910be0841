"""Facts from raw messages and envelopes, including bad input that must never crash."""

from __future__ import annotations

import email
import email.policy
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.classify import decide
from routing.dns import DomainLookup
from routing.dsn import MAX_DEPTH as DSN_MAX_DEPTH
from routing.message import (
    MAX_DEPTH,
    MAX_PARTS,
    MAX_READ,
    domain_of,
    facts_from_envelope,
    facts_from_message,
    parse_bounded,
)
from routing.policy import PolicySnapshot, PoolSnapshot
from tests.routing import hostile
from tests.support import DSN_SAMPLES

POLICY = PolicySnapshot(
    pools={
        "normal": PoolSnapshot("normal", "normal", ("192.0.2.1",)),
        "high-risk": PoolSnapshot("high-risk", "high-risk", ("198.51.100.1",)),
    }
)
HAS_MX = DomainLookup("mx.example.net", True, None, 300)

PLAIN = (
    b"From: Alice <alice@Example.COM>\r\n"
    b"To: bob@example.org\r\n"
    b"Subject: hello\r\n"
    b"Message-ID: <1@example.com>\r\n"
    b"X-Spam-Status: No, score=1.2 required=5.0\r\n"
    b"\r\n"
    b"Hi Bob\r\n"
)


def report(status: str = "5.1.1") -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.net\r\n"
        "To: alice@example.com\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\n\r\n"
        "Final-Recipient: rfc822; nobody@example.org\r\n"
        f"Action: failed\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <nobody@example.org>: User unknown\r\n"
        "\r\n--B--\r\n"
    ).encode()


def test_envelope_sender_gives_the_sender_domain():
    facts = facts_from_message(PLAIN, mail_from="<bounces+x@Mail.Example.NET>")
    assert facts.sender_domain == "mail.example.net"
    assert facts.header_from == "alice@Example.COM"
    assert facts.message_id == "<1@example.com>"


def test_header_from_is_used_only_without_an_envelope():
    assert facts_from_message(PLAIN).sender_domain == "example.com"


def test_trusted_score_header_is_read():
    facts = facts_from_message(PLAIN, trusted_headers=["X-Spam-Status"])
    assert (facts.spam_score, facts.score_source) == (1.2, "header:X-Spam-Status")


def test_untrusted_score_header_is_ignored():
    assert facts_from_message(PLAIN, trusted_headers=[]).spam_score is None


def test_caller_score_beats_headers():
    facts = facts_from_message(PLAIN, spam_score=9.0, trusted_headers=["X-Spam-Status"])
    assert (facts.spam_score, facts.score_source) == (9.0, "caller")


def test_null_sender_is_a_dsn_without_sender_domain():
    facts = facts_from_envelope(mail_from="<>", rcpt_to=["<alice@Example.com>"])
    assert facts.is_dsn and facts.dsn_signals == ("null-sender",)
    assert facts.sender_domain == "" and facts.problems == ()
    assert facts.dsn_recipient_domain == "example.com"


def test_multipart_report_from_a_non_null_sender_is_a_dsn_with_its_facts():
    facts = facts_from_message(report(), mail_from="bounce@mx.example.net")
    assert facts.is_dsn and facts.dsn_signals == ("multipart-report",)
    assert facts.dsn.reporting_mta == "mx.example.net"
    assert [(r.final_recipient, r.action, r.status) for r in facts.dsn.recipients] == [
        ("nobody@example.org", "failed", "5.1.1")
    ]


@pytest.mark.parametrize(
    "name",
    ["opensmtpd-multipart-mixed.eml", "mcafee-report-in-mixed.eml", "forwarded-bounce-rfc822.eml"],
)
def test_nested_report_from_a_non_null_sender_is_routed_high_risk(name):
    facts = facts_from_message(
        (DSN_SAMPLES / name).read_bytes(),
        mail_from="bounce@mx.example.net",
        rcpt_to=["alice@example.com"],
    )
    assert facts.is_dsn and facts.dsn_signals == ("multipart-report",)
    assert facts.dsn.reporting_mta and facts.dsn.recipients[0].status.startswith("5.")
    decision = decide(facts, POLICY, HAS_MX)
    assert (decision.pool, decision.reasons, decision.is_dsn) == ("high-risk", ("dsn",), True)


def test_multipart_mixed_without_a_delivery_status_part_is_not_parsed_as_a_report():
    raw = (DSN_SAMPLES / "mcafee-report-in-mixed.eml").read_bytes()
    raw = raw.replace(b"delivery-status", b"plain")
    facts = facts_from_message(raw, mail_from="bounce@mx.example.net")
    assert not facts.is_dsn and facts.dsn is None


def test_idn_sender_domain_becomes_punycode():
    facts = facts_from_envelope(mail_from="info@Bücher.test")
    assert facts.sender_domain == "xn--bcher-kva.test"


def test_utf8_from_header_becomes_punycode():
    raw = "From: <info@bücher.test>\r\n\r\nx\r\n".encode()
    assert facts_from_message(raw).sender_domain == "xn--bcher-kva.test"


@pytest.mark.parametrize(
    ("mail_from", "problem"),
    [
        ("no-at-sign", "is not an address with a domain"),
        ("user@[192.0.2.1]", "is an address literal"),
        ("user@localhost", "is not a valid domain"),
        ("user@a..b", "is not a valid domain"),
        ("user@" + "a" * 70 + ".com", "is not a valid domain"),
    ],
)
def test_unusable_sender_domains_are_problems(mail_from, problem):
    facts = facts_from_envelope(mail_from=mail_from)
    assert facts.sender_domain == "" and facts.sender_domain_error
    assert problem in facts.problems[0]


def test_no_sender_at_all_is_a_problem_not_a_crash():
    facts = facts_from_message(b"Subject: nothing\r\n\r\n")
    assert facts.sender_domain == ""
    assert "sender domain unknown" in facts.problems[0]


def test_oversize_message_is_read_up_to_the_cap():
    raw = PLAIN + b"x" * (MAX_READ + 10)
    facts = facts_from_message(raw, mail_from="a@example.com")
    assert facts.size == MAX_READ
    assert "only the first" in facts.problems[0]


def test_8bit_and_binary_junk_headers_decide_anyway():
    raw = b"From: \xff\xfe<x@\xc3\x28.com>\r\nX-Spam-Score: \x80\x81\r\n\r\n\x00\x01"
    facts = facts_from_message(raw, trusted_headers=["X-Spam-Score"])
    assert facts.spam_score is None
    assert any("X-Spam-Score" in p for p in facts.problems)


def hostile_facts(text: str):
    """Facts of a hostile message, with the time taken (the limits are for speed too)."""
    start = time.perf_counter()
    facts = facts_from_message(text.encode(), mail_from="", rcpt_to=["alice@example.com"])
    return facts, time.perf_counter() - start


@pytest.mark.parametrize(
    "text", [hostile.nested_multipart_report(1000), hostile.nested_rfc822_report(1000)]
)
def test_mime_nested_a_thousand_levels_is_cut_at_the_depth_limit(text):
    facts, seconds = hostile_facts(text)
    assert facts.is_dsn and seconds < 1
    assert f"MIME nested deeper than {MAX_DEPTH} levels: the rest not read" in facts.problems


def test_a_returned_message_nested_past_the_limit_keeps_the_status_part():
    facts, _ = hostile_facts(hostile.nested_rfc822_report(1000))
    assert [r.final_recipient for r in facts.dsn.recipients] == ["nobody@example.org"]


def test_mime_nesting_within_the_limit_is_read_without_a_problem():
    facts, _ = hostile_facts(hostile.nested_rfc822_report(MAX_DEPTH - 3))
    assert facts.dsn.recipients and not any("MIME" in p for p in facts.problems)


def test_a_report_of_a_hundred_thousand_parts_stops_at_the_part_limit():
    facts, seconds = hostile_facts(hostile.many_parts_report(100_000))
    assert seconds < 1
    assert f"more than {MAX_PARTS} MIME parts: the rest not read" in facts.problems
    assert facts.dsn is None  # the status part came after the limit


def test_a_report_of_fifty_thousand_recipients_is_read_up_to_the_limits():
    facts, seconds = hostile_facts(hostile.many_recipients_report(50_000))
    assert seconds < 1
    assert f"more than {MAX_PARTS} MIME parts: the rest not read" in facts.problems
    assert 900 < len(facts.dsn.recipients) <= 1000


def nested_mixed_report(depth: int) -> str:
    """A multipart/mixed whose delivery-status part is `depth` multiparts down."""
    opening = "".join(
        f'--{i}\nContent-Type: multipart/mixed; boundary="{i + 1}"\n\n' for i in range(depth)
    )
    closing = "".join(f"\n--{i}--\n" for i in reversed(range(depth + 1)))
    status = hostile.STATUS_PART.replace("--R\n", f"--{depth}\n")
    top = hostile.REPORT_TOP.replace(
        'multipart/report; report-type=delivery-status; boundary="R"',
        'multipart/mixed; boundary="0"',
    )
    return top + opening + status + closing


def test_multipart_mixed_nested_a_thousand_levels_stays_bounded_and_fast():
    facts, seconds = hostile_facts(nested_mixed_report(1000))
    assert seconds < 1
    assert f"MIME nested deeper than {MAX_DEPTH} levels: the rest not read" in facts.problems
    assert facts.dsn is None  # the status part lies past every limit


def test_report_nested_within_the_search_depth_is_found():
    facts, _ = hostile_facts(nested_mixed_report(DSN_MAX_DEPTH - 1))
    assert [r.final_recipient for r in facts.dsn.recipients] == ["nobody@example.org"]


def test_multipart_mixed_of_a_hundred_thousand_parts_stays_bounded_and_fast():
    text = hostile.many_parts_report(100_000).replace(
        'multipart/report; report-type=delivery-status; boundary="R"',
        'multipart/mixed; boundary="R"',
    )
    facts, seconds = hostile_facts(text)
    assert seconds < 1
    assert f"more than {MAX_PARTS} MIME parts: the rest not read" in facts.problems
    assert facts.dsn is None


def test_the_bounded_parse_of_real_dsns_is_the_email_parsers_own():
    for path in DSN_SAMPLES.iterdir():
        raw = path.read_bytes()
        msg, problems = parse_bounded(raw)
        expected = email.message_from_bytes(raw, policy=email.policy.compat32)
        assert (msg.as_bytes(), problems) == (expected.as_bytes(), []), path.name


def test_domain_of_lowercases_and_strips_the_root_dot():
    assert domain_of("a@Example.COM.") == ("example.com", "")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000), st.one_of(st.none(), st.text(max_size=80)))
def test_random_bytes_never_crash_the_parser(raw, mail_from):
    facts = facts_from_message(raw, mail_from=mail_from, trusted_headers=["X-Spam-Score"])
    assert isinstance(facts.problems, tuple)


HEADER = st.tuples(
    st.sampled_from(["From", "Content-Type", "X-Spam-Status", "X-Spam-Score", "MIME-Version"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(HEADER, max_size=8), st.binary(max_size=500))
def test_random_headers_never_crash_the_parser(headers, body):
    raw = b"".join(
        f"{name}: {value}".encode("utf-8", "replace").replace(b"\n", b" ") + b"\r\n"
        for name, value in headers
    )
    facts = facts_from_message(raw + b"\r\n" + body, trusted_headers=["X-Spam-Status"])
    assert facts.spam_score is None or isinstance(facts.spam_score, float)
