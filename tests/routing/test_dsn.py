"""Reading DSNs: real MTA formats from tests/routing/samples/dsn, malformed input, fuzzing."""

from __future__ import annotations

import base64
import email
import email.policy
import quopri
import re
from email.message import Message

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from routing.dsn import MAX_FIELD, MAX_RECIPIENTS, is_delivery_report, parse_report
from routing.facts import DSNRecipient, DSNReport
from tests.support import DSN_SAMPLES

POLICIES = [email.policy.compat32, email.policy.default]
STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")


def load_sample(name: str) -> Message:
    """A sample DSN parsed as the default policy would parse it."""
    return email.message_from_bytes((DSN_SAMPLES / name).read_bytes(), policy=email.policy.default)


def parse_bytes(raw: bytes, policy=email.policy.default) -> Message:
    return email.message_from_bytes(raw, policy=policy)


def report_from(raw: bytes, policy=email.policy.default) -> tuple[DSNReport | None, list[str]]:
    return parse_report(parse_bytes(raw, policy))


def only_recipient(report: DSNReport | None) -> DSNRecipient:
    assert report is not None
    assert len(report.recipients) == 1
    return report.recipients[0]


def report_bytes(status_part: str, *, headers: str = "", cte: str = "") -> bytes:
    """A minimal multipart/report around the given delivery-status text."""
    encoding = f"Content-Transfer-Encoding: {cte}\n" if cte else ""
    return (
        "From: MAILER-DAEMON@mail.example.net\n"
        "To: alice@example.com\n"
        "Subject: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\n'
        f"{headers}\n"
        "--b1\n"
        "Content-Type: text/plain\n\n"
        "Your message could not be delivered.\n\n"
        "--b1\n"
        "Content-Type: message/delivery-status\n"
        f"{encoding}\n"
        f"{status_part}\n"
        "--b1--\n"
    ).encode()


USER_UNKNOWN = (
    "Reporting-MTA: dns; mail.example.net\n"
    "\n"
    "Final-Recipient: rfc822; bob@example.org\n"
    "Action: failed\n"
    "Status: 5.1.1\n"
    "Diagnostic-Code: smtp; 550 5.1.1 User unknown\n"
)


# --- samples from real MTAs ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in DSN_SAMPLES.glob("*.eml")))
@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_every_sample_reads_the_same_under_both_policies(name, policy):
    raw = (DSN_SAMPLES / name).read_bytes()
    assert parse_report(parse_bytes(raw, policy)) == parse_report(load_sample(name))
    assert is_delivery_report(parse_bytes(raw, policy)) == is_delivery_report(load_sample(name))


def test_postfix_bounce_reports_user_unknown():
    msg = load_sample("postfix-bounce-user-unknown.eml")
    report, problems = parse_report(msg)
    assert is_delivery_report(msg)
    assert problems == []
    assert report == DSNReport(
        reporting_mta="mail.example.net",
        recipients=(
            DSNRecipient(
                final_recipient="bob@example.org",
                action="failed",
                status="5.1.1",
                diagnostic="smtp; 550 5.1.1 <bob@example.org>: Recipient address rejected: "
                "User unknown in virtual mailbox table",
                remote_mta="mx.example.org",
                refined_class="unknown-user",
            ),
        ),
        original_message_id="<c0ffee01-5e1f-4a7b-9d2e-20240603@example.com>",
        original_from="alice@example.com",
    )


def test_postfix_delay_notice_reports_delayed_with_headers_only():
    report, problems = parse_report(load_sample("postfix-delayed.eml"))
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "mail.example.net"
    assert (recipient.final_recipient, recipient.action, recipient.status) == (
        "ivan@example.org",
        "delayed",
        "4.4.7",
    )
    assert recipient.diagnostic.startswith("X-Postfix; conversation with mx.example.org")
    assert recipient.diagnostic.endswith("timed out while receiving the initial server greeting")
    assert recipient.remote_mta == ""
    assert report.original_message_id == "<delayed-7f3a9c1e@example.com>"
    assert report.original_from == "alice@example.com"


def test_postfix_report_on_three_recipients_keeps_each_status():
    report, problems = parse_report(load_sample("postfix-multi-recipient.eml"))
    assert problems == []
    assert report.reporting_mta == "relay.example.net"
    assert [(r.final_recipient, r.action, r.status, r.remote_mta) for r in report.recipients] == [
        ("frank@example.org", "failed", "5.1.1", "mx.example.org"),
        ("grace@example.net", "failed", "5.2.2", "mx2.example.net"),
        ("heidi@nx.example", "failed", "5.4.4", ""),
    ]
    assert "Mailbox full, quota exceeded" in report.recipients[1].diagnostic
    assert "Host or domain name not found" in report.recipients[2].diagnostic
    assert report.original_message_id == "<news-2024-06.42@app1.example.com>"
    assert report.original_from == "newsletter@example.com"


def test_blocklist_rejection_reports_spamhaus_in_the_diagnostic():
    report, problems = parse_report(load_sample("postfix-spamhaus-blocked.eml"))
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "out2.example.net"
    assert (recipient.final_recipient, recipient.status) == ("judy@example.org", "5.7.1")
    assert recipient.remote_mta == "mx1.example.org"
    assert "Client host [203.0.113.9] blocked using zen.spamhaus.org;" in recipient.diagnostic
    assert report.original_message_id == "<invoice-2024-0611@billing.example.com>"
    assert report.original_from == "billing@example.com"


def test_exim_generic_status_is_refined_from_the_receivers_diagnostic_code():
    msg = load_sample("exim-multipart-bounce.eml")
    report, problems = parse_report(msg)
    assert is_delivery_report(msg)
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "mx1.example.net"
    assert recipient == DSNRecipient(
        final_recipient="carol@example.org",
        action="failed",
        status="5.1.1",  # Exim wrote 5.0.0; the receiver said 550 5.1.1
        diagnostic="smtp; 550 5.1.1 <carol@example.org>: Recipient address rejected: "
        "User unknown in local recipient table",
        remote_mta="mx.example.org",
        refined_class="unknown-user",
    )
    assert report.original_message_id == "<8d2f1a44-exim-test@example.com>"
    assert report.original_from == "alice@example.com"


def test_old_exim_plain_text_bounce_is_not_a_delivery_report():
    msg = load_sample("exim-plain-bounce.eml")
    assert not is_delivery_report(msg)
    report, problems = parse_report(msg)
    assert report is None
    assert "delivery-status part missing" in problems


def test_exchange_online_ndr_reports_recipient_not_found():
    msg = load_sample("exchange-online-recipient-not-found.eml")
    report, problems = parse_report(msg)
    assert is_delivery_report(msg)
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "AM0PR01MB1234.eurprd01.prod.exchangelabs.example"
    assert (recipient.final_recipient, recipient.action, recipient.status) == (
        "dave@example.org",
        "failed",
        "5.1.10",
    )
    assert recipient.diagnostic.startswith("smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound;")
    assert report.original_message_id == (
        "<AM0PR01MB56781A2B3C4D5E6F7A8B9C0DD1E2@AM0PR01MB5678.eurprd01.prod.exchangelabs.example>"
    )
    assert report.original_from == "alice@example.com"


def test_exchange_ndr_reports_access_denied_from_headers_only_part():
    report, problems = parse_report(load_sample("exchange-onprem-access-denied.eml"))
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "EX01.corp.example.com"
    assert (recipient.final_recipient, recipient.status) == ("peggy@example.org", "5.4.1")
    assert recipient.remote_mta == "example-org.mail.protection.outlook.example"
    assert "Access denied. AS(201806281)" in recipient.diagnostic
    assert report.original_message_id == "<9A8B7C6D5E4F3A2B1C0D@EX02.corp.example.com>"
    assert report.original_from == "peter@corp.example.com"


def test_gmail_bounce_reports_user_unknown_with_folded_diagnostic():
    msg = load_sample("gmail-user-unknown.eml")
    report, problems = parse_report(msg)
    assert is_delivery_report(msg)
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "googlemail.com"
    assert (recipient.final_recipient, recipient.action, recipient.status) == (
        "nobody@example.org",
        "failed",
        "5.1.1",
    )
    # Gmail's comment after the host name is dropped; the folded lines become one.
    assert recipient.remote_mta == "mx.example.org"
    assert "does not exist. Please try 550-5.1.1 double-checking" in recipient.diagnostic
    assert recipient.diagnostic.endswith("- gsmtp")
    assert report.original_message_id == (
        "<CAF3xq9Hk2m7Zp0YtQ1sWv8e4Ny6Lr5uJd0bGc3aXf2iEo7TnUw@mail.gmail.com>"
    )
    assert report.original_from == "alice@example.com"


def test_sendmail_bounce_reports_user_unknown_with_uppercase_types():
    report, problems = parse_report(load_sample("sendmail-user-unknown.eml"))
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "smtp.example.net"
    assert recipient == DSNRecipient(
        final_recipient="erin@example.org",
        action="failed",
        status="5.1.1",
        diagnostic="SMTP; 550 5.1.1 <erin@example.org>... User unknown",
        remote_mta="mx.example.org",
        refined_class="unknown-user",
    )
    assert report.original_message_id == "<202406031029.453AU0kN012340@laptop.example.com>"
    assert report.original_from == "alice@example.com"


def test_global_delivery_status_reads_an_internationalized_address():
    msg = load_sample("global-delivery-status-utf8.eml")
    report, problems = parse_report(msg)
    assert is_delivery_report(msg)
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == "mail.example.net"
    assert recipient.final_recipient == "jörg@bücher.example"
    assert (recipient.action, recipient.status) == ("failed", "5.1.1")
    assert recipient.remote_mta == "mx.bücher.example"
    assert "<Jörg@bücher.example>: Recipient address rejected" in recipient.diagnostic
    assert report.original_message_id == "<e1f2a3b4-utf8@example.com>"
    assert report.original_from == "alice@example.com"


# Reports that are not the top-level part, or that put the per-message and recipient fields
# in one block: (sample, reporting MTA, recipient, status, refined class, original Message-ID).
NESTED_AND_COMBINED = [
    (
        "opensmtpd-multipart-mixed.eml",
        "mail.example.net",
        "kim@example.org",
        "5.1.1",
        "unknown-user",
        "<opensmtpd-minutes-0603@example.com>",
    ),
    (
        "mcafee-report-in-mixed.eml",
        "gw.example.net",
        "liam@example.org",
        "5.7.1",  # the report said 5.0.0
        "blocked",
        "<quote-0603-77a1@example.com>",
    ),
    (
        "domino-nested-report.eml",
        "domino.example.net",
        "mia@example.org",
        "5.0.0",  # no code in the X-Notes diagnostic: the words decide the class
        "unknown-user",
        "<invoice-0603-mia@example.com>",
    ),
    (
        "aol-combined-block.eml",
        "aol.com",
        "noah@aol.example",
        "5.7.9",
        "blocked",
        "<aol-test-0603@example.com>",
    ),
    (
        "mimecast-combined-block.eml",
        "eu-smtp-1.mimecast.example",
        "olivia@example.org",
        "5.2.2",  # not the 5.1.0 that comes first in the diagnostic
        "mailbox-full",
        "<report-0603-olivia@example.com>",
    ),
    (
        "amazon-ses-bounce.eml",
        "a8-30.smtp-out.amazonses.com",
        "paul@example.org",
        "5.1.1",
        "unknown-user",
        "<ses-order-0603@example.com>",
    ),
    (
        "forwarded-bounce-rfc822.eml",
        "mail.example.net",
        "bob@example.org",
        "5.1.1",
        "unknown-user",
        "<c0ffee01-5e1f-4a7b-9d2e-20240603@example.com>",
    ),
]


@pytest.mark.parametrize(
    ("name", "mta", "address", "status", "refined_class", "message_id"), NESTED_AND_COMBINED
)
@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_nested_and_combined_block_reports_are_read_in_full(
    name, mta, address, status, refined_class, message_id, policy
):
    msg = parse_bytes((DSN_SAMPLES / name).read_bytes(), policy)
    report, problems = parse_report(msg)
    assert is_delivery_report(msg)
    assert problems == []
    recipient = only_recipient(report)
    assert report.reporting_mta == mta
    assert (recipient.final_recipient, recipient.action) == (address, "failed")
    assert (recipient.status, recipient.refined_class) == (status, refined_class)
    assert (report.original_message_id, report.original_from) == (message_id, "alice@example.com")


def test_combined_block_without_a_blank_line_still_reads_later_recipient_blocks():
    text = USER_UNKNOWN.replace("\n\n", "\n", 1) + (
        "\nFinal-Recipient: rfc822; carol@example.org\nAction: failed\nStatus: 5.2.2\n"
    )
    report, problems = report_from(report_bytes(text))
    assert problems == []
    assert report.reporting_mta == "mail.example.net"
    assert [(r.final_recipient, r.refined_class) for r in report.recipients] == [
        ("bob@example.org", "unknown-user"),
        ("carol@example.org", "mailbox-full"),
    ]


def test_the_shallowest_report_wins_over_one_forwarded_inside_it():
    forwarded = (DSN_SAMPLES / "forwarded-bounce-rfc822.eml").read_bytes()
    outer = (DSN_SAMPLES / "opensmtpd-multipart-mixed.eml").read_bytes()
    raw = outer.replace(
        b"--4718093411523081245/mail.example.net--",
        b"--4718093411523081245/mail.example.net\nContent-Type: message/rfc822\n\n"
        + forwarded
        + b"\n--4718093411523081245/mail.example.net--",
    )
    report, _ = report_from(raw)
    assert only_recipient(report).final_recipient == "kim@example.org"


# --- what is and is not a delivery report --------------------------------------------------


def test_plain_message_is_not_a_delivery_report():
    msg = parse_bytes(b"From: alice@example.com\nTo: bob@example.org\nSubject: hi\n\nHello\n")
    assert not is_delivery_report(msg)
    assert parse_report(msg) == (
        None,
        ["not a multipart/report of type delivery-status", "delivery-status part missing"],
    )


def test_report_type_is_matched_without_regard_to_case():
    raw = report_bytes(USER_UNKNOWN).replace(b"delivery-status;", b"Delivery-Status;", 1)
    assert is_delivery_report(parse_bytes(raw))


def test_read_receipt_report_is_not_a_delivery_report():
    raw = (
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nRead.\n"
        b"--b\nContent-Type: message/disposition-notification\n\n"
        b"Reporting-UA: mua.example.com\nFinal-Recipient: rfc822; bob@example.org\n"
        b"Disposition: manual-action/MDN-sent-manually; displayed\n"
        b"--b--\n"
    )
    assert not is_delivery_report(parse_bytes(raw))


def test_report_without_report_type_counts_when_it_has_a_delivery_status_part():
    raw = report_bytes(USER_UNKNOWN).replace(b" report-type=delivery-status;", b"", 1)
    msg = parse_bytes(raw)
    assert is_delivery_report(msg)
    assert only_recipient(parse_report(msg)[0]).status == "5.1.1"


def test_bounce_of_a_bounce_does_not_read_the_returned_report():
    inner = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_bytes()
    raw = (
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="outer"\n\n'
        b"--outer\nContent-Type: text/plain\n\nSee attached.\n"
        b"--outer\nContent-Type: message/rfc822\n\n" + inner + b"\n--outer--\n"
    )
    report, problems = report_from(raw)
    assert report is None
    assert "delivery-status part missing" in problems


# --- field details -------------------------------------------------------------------------


def test_status_with_comment_and_leading_zeros_is_normalized():
    text = USER_UNKNOWN.replace("Status: 5.1.1", "Status: 5.01.001 (bad destination mailbox)")
    report, problems = report_from(report_bytes(text))
    assert problems == []
    assert only_recipient(report).status == "5.1.1"


def test_final_recipient_is_lowercased_without_angle_brackets():
    text = USER_UNKNOWN.replace("rfc822; bob@example.org", "RFC822;<Bob@Example.ORG>")
    assert only_recipient(report_from(report_bytes(text))[0]).final_recipient == "bob@example.org"


def test_original_recipient_is_used_when_final_recipient_is_missing():
    text = USER_UNKNOWN.replace("Final-Recipient:", "Original-Recipient:")
    report, problems = report_from(report_bytes(text))
    assert only_recipient(report).final_recipient == "bob@example.org"
    assert problems == ["recipient block 1: Final-Recipient missing, used Original-Recipient"]


def test_utf8_address_in_ascii_part_decodes_embedded_unicode():
    text = USER_UNKNOWN.replace("rfc822; bob@example.org", "utf-8; j\\x{F6}rg@b\\x{FC}cher.example")
    recipient = only_recipient(report_from(report_bytes(text))[0])
    assert recipient.final_recipient == "jörg@bücher.example"


def test_block_without_any_recipient_is_skipped_with_a_problem():
    text = USER_UNKNOWN + "\nAction: failed\nStatus: 5.1.1\n"
    report, problems = report_from(report_bytes(text))
    assert [r.final_recipient for r in report.recipients] == ["bob@example.org"]
    assert problems == ["recipient block 2: no Final-Recipient or Original-Recipient, skipped"]


def test_missing_per_message_block_is_reported_and_recipients_still_read():
    text = USER_UNKNOWN.split("\n\n", 1)[1]
    report, problems = report_from(report_bytes(text))
    assert report.reporting_mta == ""
    assert only_recipient(report).final_recipient == "bob@example.org"
    assert problems == ["per-message fields missing"]


def test_base64_encoded_delivery_status_part_is_decoded():
    encoded = base64.encodebytes(USER_UNKNOWN.encode()).decode()
    for policy in POLICIES:
        report, problems = report_from(report_bytes(encoded, cte="base64"), policy)
        assert problems == []
        assert report.reporting_mta == "mail.example.net"
        assert only_recipient(report).status == "5.1.1"


def test_quoted_printable_delivery_status_part_is_decoded():
    text = USER_UNKNOWN.replace("User unknown", "Usuário desconhecido " + "x" * 80)
    encoded = quopri.encodestring(text.encode()).decode()
    assert "=\n" in encoded  # a soft line break the block parser must not see
    for policy in POLICIES:
        report, problems = report_from(report_bytes(encoded, cte="quoted-printable"), policy)
        assert problems == []
        recipient = only_recipient(report)
        assert recipient.diagnostic == "smtp; 550 5.1.1 Usuário desconhecido " + "x" * 80


def test_delivery_status_left_as_text_is_read_like_a_parsed_one():
    part = Message()
    part["Content-Type"] = "message/delivery-status"
    part.set_payload(USER_UNKNOWN)
    msg = Message()
    msg["Content-Type"] = 'multipart/report; report-type=delivery-status; boundary="b"'
    msg.attach(part)
    report, problems = parse_report(msg)
    assert problems == []
    assert only_recipient(report).final_recipient == "bob@example.org"


# --- malformed input -----------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_truncated_mime_reports_the_missing_status(policy):
    raw = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_bytes()
    raw = raw[: raw.index(b"Status: 5.1.1") + len(b"Stat")]
    report, problems = report_from(raw, policy)
    recipient = only_recipient(report)
    assert (recipient.final_recipient, recipient.action, recipient.status) == (
        "bob@example.org",
        "failed",
        "",
    )
    assert "recipient block 1: Status missing" in problems
    assert "recipient block 1: 1 unreadable line(s)" in problems
    assert report.original_message_id == ""


def test_multipart_report_without_boundary_has_no_delivery_status_part():
    raw = report_bytes(USER_UNKNOWN).replace(b'; boundary="b1"', b"", 1)
    msg = parse_bytes(raw)
    assert is_delivery_report(msg)  # it says it is one; only reading it shows otherwise
    report, problems = parse_report(msg)
    assert report is None
    assert problems == ["delivery-status part missing"]


def test_report_without_delivery_status_part_returns_no_report():
    raw = (
        b"MIME-Version: 1.0\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        b"--b\nContent-Type: text/plain\n\nYour message could not be delivered.\n--b--\n"
    )
    report, problems = report_from(raw)
    assert report is None
    assert problems == ["delivery-status part missing"]


def test_garbage_status_is_blank_with_a_problem():
    text = USER_UNKNOWN.replace("Status: 5.1.1", "Status: abc")
    text += "\nFinal-Recipient: rfc822; carol@example.org\nAction: bounced\nStatus: 550\n"
    report, problems = report_from(report_bytes(text))
    assert [(r.action, r.status) for r in report.recipients] == [("failed", ""), ("bounced", "")]
    assert problems == [
        "recipient block 1: malformed Status 'abc'",
        "recipient block 2: unknown Action 'bounced'",
        "recipient block 2: malformed Status '550'",
    ]


def test_eight_bit_junk_is_read_with_replacement_characters():
    status = (
        b"Reporting-MTA: dns; mail.\xe9xample.net\n\n"
        b"Final-Recipient: rfc822; b\xf6b@example.org\xff\xfe\n"
        b"Action: fa\x00iled\n"
        b"Status: 5.\xb91.1\n"
        b"Diagnostic-Code: smtp; 550 \x80\x81\x82 caf\xc3\xa9\n"
    )
    raw = report_bytes("STATUS").replace(b"STATUS", status)
    raw = raw.replace(b"Subject: ", b"Subject: \xe4\xf6\xfc ")
    for policy in POLICIES:
        report, problems = report_from(raw, policy)
        recipient = only_recipient(report)
        assert recipient.final_recipient == "b\ufffdb@example.org\ufffd\ufffd"
        assert recipient.status == ""
        assert recipient.diagnostic == "smtp; 550 \ufffd\ufffd\ufffd café"
        assert problems == [
            "recipient block 1: unknown Action 'fa\ufffdiled'",
            "recipient block 1: malformed Status '5.\ufffd1.1'",
        ]


def test_recipient_blocks_beyond_the_cap_are_ignored():
    blocks = "".join(
        f"\nFinal-Recipient: rfc822; user{n}@example.org\nAction: failed\nStatus: 5.1.1\n"
        for n in range(MAX_RECIPIENTS + 5)
    )
    report, problems = report_from(report_bytes("Reporting-MTA: dns; mail.example.net\n" + blocks))
    assert len(report.recipients) == MAX_RECIPIENTS
    assert report.recipients[-1].final_recipient == f"user{MAX_RECIPIENTS - 1}@example.org"
    assert problems == [f"more than {MAX_RECIPIENTS} recipient blocks: the rest ignored"]


def test_huge_field_values_are_truncated():
    text = USER_UNKNOWN.replace("User unknown", "x" * 5000)
    text = text.replace("Reporting-MTA: dns; mail.example.net", "Reporting-MTA: dns; " + "m" * 3000)
    report, problems = report_from(report_bytes(text))
    assert len(only_recipient(report).diagnostic) == MAX_FIELD
    assert len(report.reporting_mta) == MAX_FIELD - len("dns; ")
    assert problems == [
        f"per-message fields: Reporting-MTA truncated to {MAX_FIELD} characters",
        f"recipient block 1: Diagnostic-Code truncated to {MAX_FIELD} characters",
    ]


def test_huge_original_message_id_is_truncated():
    raw = report_bytes(USER_UNKNOWN).replace(
        b"--b1--\n",
        b"--b1\nContent-Type: text/rfc822-headers\n\nMessage-ID: <"
        + b"a" * 5000
        + b"@example.com>\nFrom: <alice@example.com>\n\n--b1--\n",
    )
    report, _ = report_from(raw)
    assert len(report.original_message_id) == MAX_FIELD
    assert report.original_from == "alice@example.com"


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00\xff\xfe",
        b"Content-Type: multipart/report; report-type=delivery-status\n\n--\n",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\n\n'
        b"--x\nContent-Type: message/delivery-status\n\n",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\n\n'
        b"--x\nContent-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n"
        b"!!!not base64 at all===\n--x--\n",
        b'Content-Type: multipart/report; boundary="x"; report-type="delivery-status\n\n'
        b"--x\nContent-Type: message/global-delivery-status\n\nFinal-Recipient:\n\n\n--x",
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="x"\n\n'
        b"--x\nContent-Type: message/rfc822\n\n--x\nContent-Type: text/rfc822-headers\n\n"
        b"From: =?utf-8?q?broken\nMessage-ID: \xff\n--x--\n",
    ],
)
@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_broken_messages_do_not_raise(raw, policy):
    msg = parse_bytes(raw, policy)
    assert isinstance(is_delivery_report(msg), bool)
    report, problems = parse_report(msg)
    assert report is None or isinstance(report, DSNReport)
    assert problems and all(isinstance(p, str) for p in problems)


# --- fuzzing -------------------------------------------------------------------------------


def assert_well_formed_result(msg: Message) -> None:
    assert isinstance(is_delivery_report(msg), bool)
    result = parse_report(msg)
    assert isinstance(result, tuple) and len(result) == 2
    report, problems = result
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    if report is None:
        return
    assert isinstance(report, DSNReport)
    assert len(report.recipients) <= MAX_RECIPIENTS
    for text in (report.reporting_mta, report.original_message_id, report.original_from):
        assert isinstance(text, str) and len(text) <= MAX_FIELD
    for recipient in report.recipients:
        assert isinstance(recipient, DSNRecipient)
        assert recipient.final_recipient
        assert recipient.status == "" or STATUS.fullmatch(recipient.status)
        for text in (recipient.action, recipient.diagnostic, recipient.remote_mta):
            assert isinstance(text, str) and len(text) <= MAX_FIELD


def parse_all_ways(raw: bytes) -> None:
    for policy in POLICIES:
        assert_well_formed_result(email.message_from_bytes(raw, policy=policy))


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk = st.one_of(
    st.text(max_size=30).map(lambda text: text.encode("utf-8", "surrogatepass")),
    st.binary(max_size=30),
)
content_types = st.sampled_from(
    [
        b"multipart/report; report-type=delivery-status; boundary=b",
        b'multipart/report; report-type="Delivery-Status"; boundary="b"',
        b"multipart/report; boundary=b",
        b"multipart/mixed; boundary=b",
        b"message/delivery-status",
        b"message/global-delivery-status",
        b"message/rfc822",
        b"message/global",
        b"text/rfc822-headers",
        b"text/plain; charset=utf-8",
        b"multipart/report; report-type=delivery-status",
    ]
)
field_names = st.sampled_from(
    [
        b"Reporting-MTA",
        b"Final-Recipient",
        b"Original-Recipient",
        b"Action",
        b"Status",
        b"Diagnostic-Code",
        b"Remote-MTA",
        b"Message-ID",
        b"From",
        b"Content-Type",
        b"Content-Transfer-Encoding",
        b"X-Junk",
    ]
)
field_values = st.one_of(
    junk,
    content_types,
    st.sampled_from(
        [b"rfc822; bob@example.org", b"utf-8; j\\x{F6}rg@example.org", b"dns; mx.example.org"]
    ),
    st.sampled_from([b"failed", b"5.1.1", b"4.4.7 (comment)", b"base64", b"quoted-printable"]),
)
field_lines = st.lists(
    st.tuples(field_names, field_values).map(lambda pair: pair[0] + b": " + pair[1]),
    max_size=6,
).map(b"\n".join)
blocks = st.lists(st.one_of(field_lines, junk), max_size=5).map(b"\n\n".join)


@st.composite
def mime_structures(draw) -> bytes:
    """A message whose headers, parts and delivery-status blocks are partly right."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        headers = b"Content-Type: " + draw(content_types) + b"\n" + draw(field_lines)
        parts.append(b"--b\n" + headers + b"\n\n" + draw(blocks) + b"\n")
    closing = draw(st.sampled_from([b"--b--\n", b"", b"--b"]))
    head = b"Content-Type: " + draw(content_types) + b"\n" + draw(field_lines)
    newline = draw(st.sampled_from([b"\n", b"\r\n"]))
    return (head + b"\n\n" + b"".join(parts) + closing).replace(b"\n", newline)


@FUZZ
@given(st.binary(max_size=2000))
def test_random_bytes_never_raise(raw):
    parse_all_ways(raw)


@FUZZ
@given(mime_structures())
def test_random_mime_structures_never_raise(raw):
    parse_all_ways(raw)


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("5.0.0", "smtp; 550 5.1.1 <a@example.org>: User unknown", "5.1.1"),
        ("5.0.0", "smtp; 550 4.2.2 odd", "5.0.0"),  # another class is not trusted
        ("5.0.0", "smtp; 550 Mailbox unavailable", "5.0.0"),
        ("5.1.1", "smtp; 550 5.7.1 blocked", "5.1.1"),  # a specific status stays
        ("4.0.0", "smtp; 451 4.7.1 greylisted, 10.0.0.1 noted", "4.7.1"),
        # The more specific code of the report's class wins, not the first one in the text.
        ("5.0.0", "smtp; 550 5.1.0 - Unknown address error 550-'5.2.2 Mailbox Full'", "5.2.2"),
        ("5.1.0", "smtp; 550 5.1.0 - Unknown address error 550-'5.2.2 Mailbox Full'", "5.2.2"),
        ("5.1.0", "smtp; 550 5.1.0 Address rejected", "5.1.0"),
        ("5.7.0", "smtp; 554 5.7.0 then 5.7.1 policy", "5.7.1"),
        ("", "smtp; 550 5.1.1 User unknown", ""),
    ],
)
def test_generic_status_refinement(status, diagnostic, expected):
    from routing.dsn import _refined

    assert _refined(status, diagnostic) == expected


@pytest.mark.parametrize(
    ("status", "diagnostic", "expected"),
    [
        ("5.1.1", "smtp; 550 5.1.1 User unknown", "unknown-user"),
        (
            "5.0.0",
            "X-Notes; User jdoe (jdoe@example.org) not listed in Domino Directory",
            "unknown-user",
        ),
        ("5.2.2", "smtp; 552 5.2.2 Mailbox full", "mailbox-full"),
        ("5.7.1", "smtp; 554 5.7.1 Client host blocked using zen.spamhaus.org", "blocked"),
        ("5.7.26", "smtp; 550 5.7.26 Unauthenticated email is not accepted (DMARC)", "blocked"),
        ("5.7.1", "smtp; 550 5.7.1 Message rejected as spam by Content Filtering", "spam"),
        ("4.7.0", "smtp; 421 4.7.0 unusual rate of unsolicited mail", "rate-limited"),
        ("4.7.28", "smtp; 421 4.7.28 Too many messages from your IP", "rate-limited"),
        ("5.7.0", "", "blocked"),
        ("4.4.7", "X-Postfix; connection timed out", "other"),
        ("", "", "other"),
    ],
)
def test_refined_class_from_status_and_diagnostic(status, diagnostic, expected):
    from routing.dsn import refined_class_of

    assert refined_class_of(status, diagnostic) == expected


def test_nul_in_a_report_becomes_a_replacement_character():
    """PostgreSQL refuses NUL in text: a hostile report must not leave counts unwritable."""
    raw = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_bytes()
    raw = raw.replace(b"Reporting-MTA: dns; mail.example.net", b"Reporting-MTA: dns; mail\0.net")
    report, _ = parse_report(email.message_from_bytes(raw, policy=email.policy.compat32))
    assert report.reporting_mta == "mail\ufffd.net"
