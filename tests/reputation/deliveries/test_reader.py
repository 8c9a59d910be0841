"""delivery_log and delivery_report on real files: positions kept, rotation and truncation,
standard input, the counts and the report."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from reputation.models import DeliveryCount, DeliveryHourly, LogPosition

pytestmark = pytest.mark.django_db

CORPUS = Path(__file__).with_name("corpus.txt")


def lines() -> list[str]:
    return [
        t.partition(" | ")[2]
        for t in CORPUS.read_text().splitlines()
        if " | " in t and not t.startswith("#")
    ]


def total() -> int:
    return sum(DeliveryCount.objects.values_list("count", flat=True))


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_file_is_read_once_then_from_where_it_stopped(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("\n".join(lines()[:10]) + "\nDec  2 14:00:00 mx1 postfix/qmgr[1]: X: removed\n")
    assert "11 lines, 10 delivery attempts" in run("delivery_log", str(log))
    assert total() == 10
    assert "0 lines" in run("delivery_log", str(log))  # nothing new
    with log.open("a") as f:
        f.write("\n".join(lines()[10:]) + "\n" + lines()[0][:40])  # the last line unfinished
    run("delivery_log", str(log))
    assert total() == len(lines())
    hourly = sum(DeliveryHourly.objects.values_list("count", flat=True))
    assert hourly == total()


def test_a_rotated_or_truncated_file_is_read_from_its_start(tmp_path):
    log = tmp_path / "mail.log"
    log.write_text("\n".join(lines()[:5]) + "\n")
    run("delivery_log", str(log))
    os.rename(log, tmp_path / "mail.log.1")
    log.write_text("\n".join(lines()[5:7]) + "\n")  # a new file (another inode)
    run("delivery_log", str(log))
    assert total() == 7
    log.write_text(lines()[7] + "\n")  # truncated in place: shorter than the saved offset
    run("delivery_log", str(log))
    assert total() == 8
    assert LogPosition.objects.get(path=str(log)).offset == len(lines()[7]) + 1


def test_standard_input_and_attribution(monkeypatch):
    data = "\n".join(lines()) + "\n"
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data.encode())))
    out = run("delivery_log", "-")
    assert f"{len(lines())} delivery attempts" in out and "1 by transports other" in out
    blocked = DeliveryCount.objects.filter(reply_class="dnsbl").values_list("address", "zone")
    assert ("192.0.2.5", "zen.spamhaus.org") in set(blocked)
    assert DeliveryCount.objects.filter(address="2001:db8::5", provider="Microsoft").exists()


def test_the_report_per_address_and_provider(tmp_path, monkeypatch):
    log = tmp_path / "mail.log"
    log.write_text("\n".join(lines()) + "\n")
    monkeypatch.setattr(timezone, "now", lambda: datetime(2026, 12, 2, 15, 0, tzinfo=UTC))
    run("delivery_log", str(log))
    doc = json.loads(run("delivery_report", "--since", "24h", "--json"))
    google = next(
        r for r in doc["rows"] if r["address"] == "192.0.2.5" and r["provider"] == "Google"
    )
    assert google["outcomes"] == {"bounced": 3, "deferred": 2, "sent": 1}
    assert google["classes"]["rate-limited"] == 1 and google["classes"]["accepted"] == 1
    text = run("delivery_report", "--since", "24h")
    assert "192.0.2.5" in text and "zen.spamhaus.org" in text


@pytest.mark.parametrize("since", ["0h", "yesterday", "5w"])
def test_a_bad_span_is_one_clear_error(since):
    with pytest.raises(CommandError, match="expected a number"):
        call_command("delivery_report", "--since", since)


def test_a_missing_file_is_one_clear_error(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("delivery_log", str(tmp_path / "none.log"))


def test_a_follow_interval_of_zero_is_one_clear_error(tmp_path):
    with pytest.raises(CommandError, match="expected seconds above 0"):
        call_command("delivery_log", str(tmp_path / "mail.log"), "--follow", "--interval", "0")
