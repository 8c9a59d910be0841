"""Delivery attempts read from Postfix log lines and classified as the receivers' documentation
says (tests/reputation/deliveries/corpus.txt, written from their published reply texts)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from reputation.deliveries import classify, logline

NOW = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
CORPUS = Path(__file__).with_name("corpus.txt")


def corpus() -> list[tuple[str, str, str]]:
    cases = []
    for text in CORPUS.read_text().splitlines():
        if text.strip() and not text.startswith("#"):
            expected, _, line = text.partition(" | ")
            wanted, _, zone = expected.partition(" ")
            cases.append((wanted, zone, line))
    return cases


@pytest.mark.parametrize(("wanted", "zone", "line"), corpus())
def test_each_documented_reply_gets_its_class(wanted, zone, line):
    attempt = logline.parse(line, now=NOW)
    assert attempt is not None
    assert classify.reply_class(attempt.status, attempt.dsn, attempt.text) == (wanted, zone)


def test_the_transport_names_the_source_address():
    lines = {wanted: line for wanted, _, line in corpus()}
    assert logline.parse(lines["accepted"], now=NOW).address == "192.0.2.5"
    ipv6 = next(line for _, _, line in corpus() if "pw-2001-db8--5" in line)
    attempt = logline.parse(ipv6, now=NOW)
    assert attempt.address == "2001:db8::5"
    assert attempt.at == datetime(2026, 12, 2, 13, 0, 1, 123456, tzinfo=UTC)  # RFC 3339, +01:00
    other = next(line for _, _, line in corpus() if "postfix/smtp[" in line)
    assert logline.parse(other, now=NOW).address == ""  # another transport: unattributed


def test_the_reply_and_the_provider():
    line = next(line for w, _, line in corpus() if w == "rate-limited" and "yahoodns" in line)
    attempt = logline.parse(line, now=NOW)
    assert attempt.reply.startswith("421 4.7.0 [TSS04] Messages from 192.0.2.5")
    assert not attempt.reply.endswith("command)")
    assert classify.provider(attempt.relay_host, attempt.recipient_domain) == "Yahoo"
    assert classify.provider("mx.example.co.uk", "") == "example.co.uk"
    assert classify.provider("none", "b.example") == "b.example"
    extra = classify.parse_extra("mx.example.net = Example, bad")
    assert classify.provider("a.mx.example.net", "", extra) == "Example"


def test_a_classic_timestamp_takes_the_year_that_is_not_in_the_future():
    line = next(line for _, _, line in corpus() if line.startswith("Dec  2 14:00:06"))
    assert logline.parse(line, now=NOW).at == datetime(2026, 12, 2, 14, 0, 6, tzinfo=UTC)
    january = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    assert logline.parse(line, now=january).at.year == 2026


@pytest.mark.parametrize(
    "line",
    [
        "",
        "Dec  2 14:00:06 mx1 postfix/qmgr[12]: AC0: removed",
        "Dec  2 14:00:06 mx1 postfix/smtp[1]: AC0: to=<a@b>, status=sent",  # no relay, no dsn
        "Xyz 99 99:99:99 mx1 postfix/smtp[1]: AC0: to=<a@b>, relay=x, delay=1, dsn=2.0.0, "
        "status=sent (ok)",
        "\x00" * 50 + "status= to=<",
    ],
)
def test_other_and_broken_lines_are_none(line):
    assert logline.parse(line, now=NOW) is None
