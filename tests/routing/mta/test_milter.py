"""The milter one step at a time: per-message state, body needs, header changes, spamd's
score, and the glue driven over a real socket by a small test MTA speaking the protocol."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from routing.counters import DSN_KEY, Counters
from routing.dns import DomainChecker, DomainLookup, make_resolver
from routing.engine import Engine
from routing.facts import Decision, MessageFacts
from routing.message import MAX_READ, facts_from_message
from routing.models import RoutingPolicy
from routing.mta import milter_protocol as mp
from routing.mta.milter import (
    ACTIONS,
    STEPS,
    MessageState,
    PoolFilter,
    body_limit,
    header_changes,
    header_facts,
    with_spamd_score,
)
from routing.mta.milter_server import MilterServer
from routing.mta.postfix import Listen
from routing.mta.spamd import SpamdResult
from routing.policy import PolicySnapshot, PoolSnapshot, SnapshotCache, SpamdSettings, load_snapshot
from tests.milter_client import MTA, BackgroundServer, edits
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
    engine = Engine(
        checker=checker, snapshots=SnapshotCache(loader=lambda: policy), counters=Counters()
    )
    engine.snapshots.get()  # as `serve()` does before the first message
    return engine


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


def test_an_empty_pool_defers_with_a_451_and_the_reason():
    empty = PolicySnapshot(pools={"normal": PoolSnapshot("normal", "normal", ())})
    with pool_milter(offline_engine(empty)) as mta:
        _, replies = mta.message(b"From: a@both.test\n\nbody\n", "a@both.test", "b@x.test")
    why = "no source address in rotation in the normal pool"
    assert replies == [(mp.REPLYCODE, f"451 4.3.0 Poolwarden: {why}, try again later\0".encode())]


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


# --- the glue, through the real server and a test MTA (Postfix's packets, in order) -------


class pool_milter:
    """The milter on a free loopback port, and one negotiated MTA connection to it."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.engine = engine or offline_engine()

    def __enter__(self) -> MTA:
        server = MilterServer(lambda: PoolFilter(self.engine), actions=ACTIONS, steps=STEPS)
        self.background = BackgroundServer(server, Listen(host="127.0.0.1", port=0))
        self.mta = MTA(self.background.address)
        self.mta.negotiate()
        return self.mta

    def __exit__(self, *exc) -> None:
        self.mta.close()
        self.background.stop()


@pytest.fixture
def engine() -> Engine:
    return offline_engine()


@pytest.fixture
def mta(engine):
    with pool_milter(engine) as client:
        yield client


def test_a_plain_message_skips_its_body_and_gets_a_normal_address(mta):
    raw = b"From: a@both.test\nX-Delivery-Pool: risky 198.51.100.1\nSubject: hi\n\nbody\n"
    body_replies, replies = mta.message(raw, "a@both.test", "b@example.test")
    assert body_replies == [(mp.SKIP, b"")]
    delete, pool, reasons, decision = edits(replies)
    assert delete == ("change", "X-Delivery-Pool", 1, "")
    assert pool[:2] == ("add", "X-Delivery-Pool")
    assert pool[2] in ("normal 192.0.2.1", "normal 192.0.2.2")
    assert reasons == ("add", "X-Delivery-Reasons", "none")
    assert decision == (mp.CONTINUE, b"")


def test_every_client_copy_is_deleted_last_first(mta):
    raw = b"X-Delivery-Pool: a\nx-delivery-pool: b\nX-Delivery-Reasons: c\nFrom: a@both.test\n\n"
    _, replies = mta.message(raw, "a@both.test", "b@example.test")
    changes = [edit[1:] for edit in edits(replies) if edit[0] == "change"]
    assert changes == [
        ("X-Delivery-Pool", 2, ""),
        ("X-Delivery-Pool", 1, ""),
        ("X-Delivery-Reasons", 1, ""),
    ]


def test_a_report_body_is_read_and_routed_high_risk(mta, engine):
    raw = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_bytes()
    body_replies, replies = mta.message(raw, "bounces@both.test", "alice@example.test", chunk=512)
    assert len(body_replies) > 1 and {r[0] for r in body_replies} == {mp.CONTINUE}
    assert edits(replies)[:2] == [
        ("add", "X-Delivery-Pool", "risky 198.51.100.1"),
        ("add", "X-Delivery-Reasons", "dsn"),
    ]
    # The report's recipients came from its body.
    assert sum(engine.counters.counts.dsn.values()) >= 1


def test_a_null_sender_is_a_dsn(mta):
    _, replies = mta.message(b"From: MAILER-DAEMON@both.test\n\nbody\n", "", "b@example.test")
    assert ("add", "X-Delivery-Reasons", "dsn") in edits(replies)


def test_the_sasl_login_is_the_source(mta, engine):
    seen = []
    engine.counters.record = lambda facts, decision: seen.append(facts.source)
    raw = b"From: a@both.test\n\nbody\n"
    mta.message(raw, "a@both.test", "b@example.test", auth_authen="alice")
    assert seen == ["alice"]


def eom_macros(sender: str) -> mp.Macros:
    macros = mp.Macros()
    macros.define(mp.MAIL + f"{{mail_addr}}\0{sender}\0".encode())
    macros.define(mp.RCPT + b"{rcpt_addr}\0b@example.test\0")
    return macros


def test_a_message_is_decided_without_a_thread_only_when_that_needs_no_io(engine):
    milter = PoolFilter(engine)
    milter.header("From", b"a@both.test")
    replies = milter.end_of_message_now(eom_macros("a@both.test"))
    assert replies is not None and replies[-1] == mp.packet(mp.CONTINUE)
    assert sum(engine.counters.counts.routing.values()) == 1
    # A sender domain not cached here needs a DNS lookup: nothing is consumed or counted.
    milter.header("From", b"a@new.test")
    assert milter.end_of_message_now(eom_macros("a@new.test")) is None
    assert milter.state.headers == [b"From: a@new.test"]
    assert sum(engine.counters.counts.routing.values()) == 1
    assert engine.checker.lookups == 0
    # So does a policy due for reload, spamd scoring, and a report to parse.
    engine.snapshots.invalidate()
    assert milter.end_of_message_now(eom_macros("a@both.test")) is None
    spamd_engine = offline_engine(dataclasses.replace(POLICY, spamd=SpamdSettings(enabled=True)))
    assert PoolFilter(spamd_engine).end_of_message_now(eom_macros("a@both.test")) is None
    report = PoolFilter(offline_engine())
    report.header("Content-Type", b"multipart/report; report-type=delivery-status")
    assert report.end_of_message_now(eom_macros("a@both.test")) is None


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


def test_a_trusted_score_header_routes_high_risk(mta):
    raw = b"From: a@both.test\nX-Spam-Score: 7.5\n\nbody\n"
    _, replies = mta.message(raw, "a@both.test", "b@example.test")
    assert ("add", "X-Delivery-Reasons", "spam-score") in edits(replies)


def test_a_routing_failure_defers_the_message(mta, engine):
    class Broken(Counters):
        def record(self, facts, decision):
            raise RuntimeError("boom")

    engine.counters = Broken()
    _, replies = mta.message(b"From: a@both.test\n\nbody\n", "a@both.test", "b@x.test")
    assert replies == [(mp.TEMPFAIL, b"")]
    engine.counters = Counters()  # the connection goes on with the next message
    _, replies = mta.message(b"From: a@both.test\n\nbody\n", "a@both.test", "b@x.test")
    assert replies[-1] == (mp.CONTINUE, b"")


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


@pytest.mark.parametrize(
    ("sender_macro", "reasons"),
    [(b"{mail_addr}\0\0", "dsn"), (b"", "dns-unknown, dsn")],  # no macro: the From's domain
)
def test_a_bounce_from_postfix_cleanup_is_routed_and_counted(sender_macro, reasons):
    """Postfix's own bounce reaches non_smtpd_milters with no client, no SASL login and an
    empty {mail_addr} (or none, if milter_mail_macros lost it): still a DSN, high-risk,
    counted per recipient."""
    engine = offline_engine()
    raw = (DSN_SAMPLES / "postfix-bounce-user-unknown.eml").read_bytes()
    head, _, body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")
    milter = PoolFilter(engine)
    for line in head.decode().replace("\n ", " ").replace("\n\t", " ").splitlines():
        name, _, value = line.partition(":")
        milter.header(name, value.strip().encode())
    assert milter.body(body)
    macros = mp.Macros()
    macros.define(mp.MAIL + sender_macro)
    macros.define(mp.RCPT + b"{rcpt_addr}\0alice@example.test\0")
    assert milter.end_of_message_now(macros) is None  # a report: parsed in a thread
    replies = milter.end_of_message(macros)
    assert replies[:2] == [
        mp.add_header("X-Delivery-Pool", "risky 198.51.100.1"),
        mp.add_header("X-Delivery-Reasons", reasons),
    ]
    status = DSN_KEY.index("status")
    statuses = {key[status] for key in engine.counters.counts.dsn}
    assert statuses and all(status.startswith("5.") for status in statuses)
