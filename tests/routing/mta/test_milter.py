"""The milter one step at a time: per-message state, body needs, header changes, spamd's
score, and the pymilter glue driven through pymilter's own test context."""

from __future__ import annotations

import dataclasses
import email
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import Milter
import pytest
from django.core.management import CommandError, call_command
from Milter import testctx

from routing.counters import Counters
from routing.dns import DomainChecker, DomainLookup, make_resolver
from routing.engine import Engine
from routing.facts import Decision, MessageFacts
from routing.message import MAX_READ, facts_from_message
from routing.models import RoutingPolicy
from routing.mta.milter import (
    MessageState,
    PoolMilter,
    body_limit,
    header_changes,
    header_facts,
    with_spamd_score,
)
from routing.mta.spamd import SpamdResult
from routing.policy import PolicySnapshot, PoolSnapshot, SnapshotCache, SpamdSettings, load_snapshot
from tests.support import DSN_SAMPLES, REPO

POLICY = PolicySnapshot(
    trusted_headers=("X-Spam-Score",),
    pools={
        "normal": PoolSnapshot("normal", "normal", ("192.0.2.1", "192.0.2.2")),
        "high-risk": PoolSnapshot("risky", "high-risk", ("198.51.100.1",)),
    },
)


def offline_engine(policy: PolicySnapshot = POLICY) -> Engine:
    checker = DomainChecker(make_resolver(["127.0.0.1:1"], timeout=0.1))
    checker.local.set("both.test", DomainLookup("both.test", True, True, 3600), 3600)
    checker.local.set("neither.test", DomainLookup("neither.test", False, False, 3600), 3600)
    return Engine(
        checker=checker, snapshots=SnapshotCache(loader=lambda: policy), counters=Counters()
    )


def decision(**changes) -> Decision:
    values = dict(
        pool="risky",
        pool_kind="high-risk",
        source_ip="198.51.100.1",
        reasons=("dsn", "spam-score"),
        spam_score=None,
        is_dsn=True,
        sender_domain="",
    )
    return Decision(**{**values, **changes})


def test_client_copies_of_our_headers_are_counted_not_kept():
    state = MessageState()
    state.add_header("x-delivery-pool", b"normal 192.0.2.1")
    state.add_header("X-Delivery-Reasons", b"none")
    state.add_header("X-Delivery-Pool", b"normal 192.0.2.2")
    state.add_header("Subject", b"hi")
    assert state.own_headers == {"X-Delivery-Pool": 2, "X-Delivery-Reasons": 1}
    assert state.raw() == b"Subject: hi\r\n\r\n"


def test_a_multipart_report_content_type_marks_a_possible_dsn():
    state = MessageState()
    state.add_header("Content-Type", b" Multipart/Report; report-type=delivery-status")
    assert state.is_report


def test_a_body_is_read_only_for_reports_or_spamd():
    plain, report = MessageState(), MessageState(is_report=True)
    spamd_on = PolicySnapshot(spamd=SpamdSettings(enabled=True, max_bytes=1000))
    assert body_limit(plain, POLICY) == 0
    assert body_limit(report, POLICY) == MAX_READ
    assert body_limit(plain, spamd_on) == 1001


def test_changes_delete_client_copies_last_first_then_add_ours():
    changes = header_changes(decision(), {"X-Delivery-Pool": 2})
    assert changes.delete == (("X-Delivery-Pool", 2), ("X-Delivery-Pool", 1))
    assert changes.add == (
        ("X-Delivery-Pool", "risky 198.51.100.1"),
        ("X-Delivery-Reasons", "dsn, spam-score"),
    )


def test_without_a_source_address_the_message_waits():
    changes = header_changes(decision(source_ip=None, reasons=()), {"X-Delivery-Pool": 1})
    assert changes.add == () and changes.delete == ()
    assert changes.defer == "no source address in rotation in the risky pool"


def test_an_empty_pool_defers_through_the_glue(ctx):
    empty = PolicySnapshot(pools={"normal": PoolSnapshot("normal", "normal", ())})
    PoolMilter.engine = offline_engine(empty)
    _, eom_rc = feed(ctx, b"From: a@both.test\n\nbody\n", "a@both.test", "b@x.test")
    assert eom_rc == Milter.TEMPFAIL
    assert ctx._reply[:2] == ("451", "4.3.0")


def test_spamd_score_wins_over_a_lower_header_score():
    facts = MessageFacts(spam_score=0.5, score_source="header:X-Spam-Score")
    scored = with_spamd_score(facts, SpamdResult(1000.0, 5.0, True))
    assert (scored.spam_score, scored.score_source) == (1000.0, "spamd")


def test_a_higher_header_score_stays():
    facts = MessageFacts(spam_score=9.0, score_source="header:X-Spam-Score")
    assert with_spamd_score(facts, SpamdResult(1.0, 5.0, False)) is facts


def test_a_spamd_failure_is_a_problem_and_keeps_the_header_score():
    facts = MessageFacts(spam_score=2.0, score_source="header:X-Spam-Score")
    scored = with_spamd_score(facts, SpamdResult(problem="spamd: no answer within 5 s"))
    assert scored.spam_score == 2.0 and scored.problems == ("spamd: no answer within 5 s",)


@pytest.mark.django_db
def test_snapshot_carries_the_spamd_settings():
    RoutingPolicy.load()
    RoutingPolicy.objects.update(spamd_enabled=True, spamd_address="unix:/run/spamd.sock")
    spamd = load_snapshot().spamd
    assert spamd.enabled and spamd.address == "unix:/run/spamd.sock"
    assert spamd.timeout == 5.0 and spamd.max_bytes == 512 * 1024


# --- the pymilter glue, through Milter.testctx (libmilter's calls, in order) ---------------


@pytest.fixture
def ctx():
    PoolMilter.engine = offline_engine()
    Milter.factory = PoolMilter
    context = testctx.TestCtx()
    assert context._connect() == Milter.CONTINUE
    return context


def feed(ctx: testctx.TestCtx, raw: bytes, sender: str, rcpt: str) -> tuple[int, int]:
    """(body callback result, eom result) for one message; the envelope is in the macros
    Postfix sends by default."""
    ctx._msg = email.message_from_bytes(raw)
    ctx._setsymval("{mail_addr}", sender)
    ctx._setsymval("{rcpt_addr}", rcpt)
    for name, value in ctx._msg.items():
        ctx._header(name, value)
    body = raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
    body_rc = ctx._feed_body(io.BytesIO(body))
    return body_rc, ctx._eom()


def test_only_the_needed_steps_are_negotiated(ctx):
    skipped = (Milter.P_NOCONNECT, Milter.P_NOHELO, Milter.P_NOMAIL, Milter.P_NORCPT)
    skipped += (Milter.P_NODATA, Milter.P_NOEOH, Milter.P_NOUNKNOWN)
    assert all(ctx._protocol & flag for flag in (*skipped, Milter.P_NR_HDR))
    assert not ctx._protocol & (Milter.P_NOHDRS | Milter.P_NOBODY)
    assert ctx._protocol & Milter.P_SKIP


def test_a_plain_message_skips_its_body_and_gets_a_normal_address(ctx):
    raw = b"From: a@both.test\nX-Delivery-Pool: risky 198.51.100.1\nSubject: hi\n\nbody\n"
    body_rc, eom_rc = feed(ctx, raw, "a@both.test", "b@example.test")
    assert (body_rc, eom_rc) == (Milter.SKIP, Milter.CONTINUE)
    pool = ctx._msg.get_all("X-Delivery-Pool")
    assert len(pool) == 1 and pool[0] in ("normal 192.0.2.1", "normal 192.0.2.2")
    assert ctx._msg["X-Delivery-Reasons"] == "none"


def test_a_report_body_is_read_and_routed_high_risk(ctx):
    raw = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_bytes()
    body_rc, eom_rc = feed(ctx, raw, "bounces@both.test", "alice@example.test")
    assert (body_rc, eom_rc) == (Milter.CONTINUE, Milter.CONTINUE)
    assert ctx._msg["X-Delivery-Pool"] == "risky 198.51.100.1"
    assert ctx._msg["X-Delivery-Reasons"] == "dsn"
    counted = PoolMilter.engine.counters.dsn
    assert sum(counted.values()) >= 1  # the report's recipients were read from its body


def test_a_null_sender_is_a_dsn(ctx):
    feed(ctx, b"From: MAILER-DAEMON@both.test\n\nbody\n", "", "b@example.test")
    assert ctx._msg["X-Delivery-Reasons"] == "dsn"


def test_header_facts_match_what_the_full_parser_finds():
    raw = b"From: a@both.test\r\nX-Spam-Score: 3.5\r\nMessage-ID: <m1@both.test>\r\n\r\n"
    state = MessageState(mail_from="a@both.test", rcpt_to=["b@example.test"], source="sasl")
    for line in raw.split(b"\r\n")[:3]:
        name, _, value = line.partition(b": ")
        state.add_header(name.decode(), value)
    fast = header_facts(state, POLICY)
    full = facts_from_message(
        state.raw(),
        mail_from="a@both.test",
        rcpt_to=["b@example.test"],
        source="sasl",
        trusted_headers=POLICY.trusted_headers,
    )
    assert dataclasses.replace(fast, header_from="a@both.test") == full


def test_a_trusted_score_header_routes_high_risk(ctx):
    raw = b"From: a@both.test\nX-Spam-Score: 7.5\n\nbody\n"
    feed(ctx, raw, "a@both.test", "b@example.test")
    assert ctx._msg["X-Delivery-Reasons"] == "spam-score"


def test_a_routing_failure_defers_the_message(ctx):
    class Broken(Counters):
        def record(self, facts, decision):
            raise RuntimeError("boom")

    PoolMilter.engine.counters = Broken()
    _, eom_rc = feed(ctx, b"From: a@both.test\n\nbody\n", "a@both.test", "b@x.test")
    assert eom_rc == Milter.TEMPFAIL


def test_milter_command_refuses_a_bad_listen_value_with_status_2():
    with pytest.raises(CommandError) as error:
        call_command("milter", "--listen", "localhost")
    assert error.value.returncode == 2


@pytest.mark.integration
@pytest.mark.parametrize("command", ["milter", "policyd"])
def test_adapters_listen_on_a_unix_socket_and_stop_cleanly_on_sigterm(site, command):
    path = Path(tempfile.mkdtemp(prefix="pw-sock-")) / f"{command}.sock"
    proc = subprocess.Popen(
        [sys.executable, "manage.py", command, "--listen", f"unix:{path}"],
        cwd=REPO,
        env=site.env,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert path.exists() and os.stat(path).st_mode & 0o222 == 0o222  # Postfix may write
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=20)
    shutil.rmtree(path.parent, ignore_errors=True)
    assert proc.returncode == 0 and "Traceback" not in stderr, stderr
