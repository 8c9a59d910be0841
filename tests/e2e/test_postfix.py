"""A real Postfix sends each message from the pool address that Poolwarden chose.

On loopback only: Postfix in a temporary directory (`postfix -c DIR start`) relays to an
aiosmtpd sink that records the source address of each delivering connection; the normal pool
is 127.0.0.2 and 127.0.0.4, the high-risk pool 127.0.0.3. Sender domains resolve through the
test unbound, spam scores come from a real spamd (network tests off). Postfix's configuration
is what `manage.py postfix_config` prints.
"""

from __future__ import annotations

import email
import smtplib
import uuid
from email.message import Message

import pytest

from tests.postfix_instance import GTUBE, HIGH_RISK, NORMAL
from tests.support import DSN_SAMPLES

pytestmark = pytest.mark.integration


def message(sender: str, *, body: str = "Hello, the report you asked for.", **headers: str) -> str:
    """A plain, well-formed message with a unique X-Test-Id (its key in the sink)."""
    msg = Message()
    msg["From"] = sender or "MAILER-DAEMON@pw-test.localdomain"
    msg["To"] = "bob@sink.test"
    msg["Subject"] = "Monthly report"
    msg["Date"] = email.utils.formatdate()
    msg["Message-ID"] = email.utils.make_msgid(domain="both.test")
    msg["X-Test-Id"] = uuid.uuid4().hex
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_payload(body + "\n")
    return msg.as_string()


def send(port: int, sender: str, text: str, rcpt: str = "bob@sink.test") -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [rcpt], text.encode())


def delivered(sink, text: str):
    """The delivery of the message `text` (found by its X-Test-Id)."""
    test_id = email.message_from_string(text)["X-Test-Id"].encode()
    return sink.wait_for(lambda d: test_id in d.data)


def pool_headers(delivery) -> tuple[list[str], str]:
    msg = email.message_from_bytes(delivery.data)
    return msg.get_all("X-Delivery-Pool") or [], msg.get("X-Delivery-Reasons", "")


def route(port: int, sink, sender: str, text: str):
    send(port, sender, text)
    return delivered(sink, text)


# --- the milter ---------------------------------------------------------------------------


def test_normal_mail_leaves_by_a_normal_address_stable_per_sender_domain(milter_postfix, sink):
    first = route(milter_postfix.smtpd_port, sink, "ann@both.test", message("ann@both.test"))
    second = route(milter_postfix.smtpd_port, sink, "bo@both.test", message("bo@both.test"))
    assert first.source in NORMAL
    assert second.source == first.source
    headers, reasons = pool_headers(first)
    assert headers == [f"normal {first.source}"] and reasons == "none"


def test_a_null_sender_dsn_leaves_by_the_high_risk_address(milter_postfix, sink):
    text = message("", Content_Type="text/plain")
    delivery = route(milter_postfix.smtpd_port, sink, "", text)
    assert delivery.source == HIGH_RISK and delivery.mail_from == "<>"
    assert "dsn" in pool_headers(delivery)[1]


def test_a_multipart_report_bounce_from_a_real_sender_is_high_risk(milter_postfix, sink):
    raw = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_text()
    text = f"X-Test-Id: {uuid.uuid4().hex}\n" + raw.replace("Return-Path: <>\n", "")
    delivery = route(milter_postfix.smtpd_port, sink, "bounces@both.test", text)
    assert delivery.source == HIGH_RISK
    assert pool_headers(delivery)[1] == "dsn"


def test_gtube_scored_by_spamd_is_high_risk(milter_postfix, sink):
    text = message("carol@both.test", body=GTUBE)
    delivery = route(milter_postfix.smtpd_port, sink, "carol@both.test", text)
    assert delivery.source == HIGH_RISK
    assert pool_headers(delivery)[1] == "spam-score"


def test_a_trusted_score_header_over_the_threshold_is_high_risk(milter_postfix, sink):
    text = message("dan@both.test", X_Spam_Score="8.5")
    delivery = route(milter_postfix.smtpd_port, sink, "dan@both.test", text)
    assert delivery.source == HIGH_RISK
    assert pool_headers(delivery)[1] == "spam-score"


def test_a_forged_low_score_below_the_operators_header_does_not_count(milter_postfix, sink):
    text = message("eve@both.test", X_Spam_Score="9.1")
    text = text.replace("X-Spam-Score: 9.1\n", "X-Spam-Score: 9.1\nX-Spam-Score: -10.0\n")
    delivery = route(milter_postfix.smtpd_port, sink, "eve@both.test", text)
    assert delivery.source == HIGH_RISK


def test_a_sender_domain_without_a_or_mx_is_high_risk(milter_postfix, sink):
    text = message("fay@neither.test")
    delivery = route(milter_postfix.smtpd_port, sink, "fay@neither.test", text)
    assert delivery.source == HIGH_RISK
    assert pool_headers(delivery)[1] == "no-a-mx"


def test_client_copies_of_the_pool_headers_are_removed(milter_postfix, sink):
    text = message(
        "gus@neither.test", X_Delivery_Pool="normal 127.0.0.2", X_Delivery_Reasons="none"
    )
    delivery = route(milter_postfix.smtpd_port, sink, "gus@neither.test", text)
    assert delivery.source == HIGH_RISK
    assert pool_headers(delivery) == ([f"high-risk {HIGH_RISK}"], "no-a-mx")


def test_postfix_own_bounces_leave_by_the_high_risk_address(milter_postfix, sink):
    text = message("hal@both.test")
    send(milter_postfix.smtpd_port, "hal@both.test", text, rcpt="reject@sink.test")
    test_id = email.message_from_string(text)["X-Test-Id"].encode()
    bounce = sink.wait_for(lambda d: d.mail_from == "<>" and test_id in d.data)
    assert bounce.source == HIGH_RISK and bounce.rcpt_to == ("hal@both.test",)


def test_with_the_milter_down_mail_waits_and_leaves_by_the_right_pool_later(
    mail_site, milter, milter_postfix, sink
):
    milter.stop()  # SIGTERM: exits 0 and flushes its counters
    assert routed_count(mail_site) > 0
    text = message("ivy@neither.test")
    try:
        with pytest.raises(smtplib.SMTPResponseException) as refused:
            send(milter_postfix.smtpd_port, "ivy@neither.test", text)
        assert 400 <= refused.value.smtp_code < 500
        test_id = email.message_from_string(text)["X-Test-Id"].encode()
        assert not [d for d in sink.deliveries if test_id in d.data]
    finally:
        milter.start()
    delivery = route(milter_postfix.smtpd_port, sink, "ivy@neither.test", text)
    assert delivery.source == HIGH_RISK


def routed_count(site) -> int:
    code = (
        "from django.db.models import Sum; from routing.models import RoutingCount as C; "
        "print(C.objects.aggregate(n=Sum('count'))['n'] or 0)"
    )
    result = site.manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])  # after the shell's own banner


# --- the policy service -------------------------------------------------------------------


def test_policyd_routes_by_the_envelope(policyd_postfix, sink):
    port = policyd_postfix.smtpd_port
    normal = route(port, sink, "jo@both.test", message("jo@both.test"))
    dsn = route(port, sink, "", message(""))
    unknown = route(port, sink, "kim@neither.test", message("kim@neither.test"))
    assert normal.source in NORMAL
    assert dsn.source == HIGH_RISK and unknown.source == HIGH_RISK
