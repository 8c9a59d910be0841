"""The sender-limit step on the real stores (the test database, and Redis): what each action
does to a sender's messages, and what a store that cannot answer costs."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from config.shared_redis import SharedRedis
from routing import classify
from routing.facts import DEFER, DELIVER, REJECT, MessageFacts
from routing.limits import rules
from routing.limits.checker import SENDER_LIMIT, LimitChecker, rejection_text
from routing.limits.rules import LimitPolicy, LimitRule, ordered
from routing.limits.store import RedisStore
from routing.message import build_facts
from routing.policy import PolicySnapshot, PoolSnapshot

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 2, 10, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime = T0):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def policy(*limit_rules: LimitRule, **options) -> PolicySnapshot:
    return PolicySnapshot(
        pools={
            "normal": PoolSnapshot("normal", "normal", ("192.0.2.1",)),
            "high-risk": PoolSnapshot("high-risk", "high-risk", ("198.51.100.1",)),
        },
        limits=LimitPolicy(
            rules=ordered(list(limit_rules)), internal_domains=("example.com",), **options
        ),
    )


def message(login: str = "alice", *rcpt: str, score: float | None = None) -> MessageFacts:
    return build_facts(
        mail_from=f"{login}@customer.test",
        rcpt_to=rcpt or ("someone@elsewhere.test",),
        spam_score=score,
        sasl_login=login,
        subject="hello",
    )


def decide(checker: LimitChecker, snapshot: PolicySnapshot, facts: MessageFacts):
    return checker.apply(facts, classify.decide(facts, snapshot, None), snapshot)


def test_the_21st_external_recipient_in_the_hour_is_rejected_and_others_are_unaffected(
    new_store,
):
    checker, snapshot = (
        LimitChecker(new_store(), Clock()),
        policy(LimitRule("*", external_per_hour=20, action="block-today")),
    )
    for _ in range(20):
        assert decide(checker, snapshot, message()).action == DELIVER
    rejected = decide(checker, snapshot, message())
    assert (rejected.action, rejected.pool, rejected.source_ip) == (REJECT, "", None)
    assert SENDER_LIMIT in rejected.reasons
    hit = rejected.limit
    assert (hit.name, hit.count, hit.window, hit.maximum) == ("external_per_hour", 20, 3600, 20)
    assert hit.sender == "alice" and hit.until == (T0 + timedelta(hours=1)).isoformat()
    assert decide(checker, snapshot, message("bob")).action == DELIVER
    again = decide(LimitChecker(checker.store, Clock()), snapshot, message())
    assert again.limit == hit  # every later message names the same limit and count
    internal = decide(checker, snapshot, message("alice", "colleague@example.com"))
    assert internal.action == REJECT  # a blocked sender is blocked for every recipient


def test_every_process_sees_the_same_windows(new_store):
    snapshot = policy(LimitRule("*", per_day=3))
    first, second = LimitChecker(new_store(), Clock()), LimitChecker(new_store(), Clock())
    assert decide(first, snapshot, message("alice", "a@x.test", "b@x.test")).action == DELIVER
    assert decide(second, snapshot, message("alice", "c@x.test")).action == DELIVER
    assert decide(first, snapshot, message("alice", "d@x.test")).action == REJECT
    assert decide(second, snapshot, message("alice", "e@x.test")).action == REJECT


def test_internal_recipients_have_a_limit_of_their_own(new_store):
    checker = LimitChecker(new_store(), Clock())
    snapshot = policy(LimitRule("*", internal_per_hour=2, external_per_hour=100))
    for _ in range(2):
        assert decide(checker, snapshot, message("alice", "x@example.com")).action == DELIVER
    assert decide(checker, snapshot, message("alice", "x@example.com")).action == REJECT


def test_the_window_slides(new_store):
    clock = Clock()
    checker, snapshot = (
        LimitChecker(new_store(), clock),
        policy(LimitRule("*", external_per_hour=2, action="alert")),
    )
    decide(checker, snapshot, message())
    clock.now += timedelta(minutes=59)
    decide(checker, snapshot, message())
    clock.now += timedelta(minutes=2)  # the first left the window: one in it
    assert decide(checker, snapshot, message()).limit is None


def test_block_today_ends_with_the_window(new_store):
    clock = Clock()
    checker, snapshot = (
        LimitChecker(new_store(), clock),
        policy(LimitRule("*", external_per_hour=1, action="block-today")),
    )
    decide(checker, snapshot, message())
    assert decide(checker, snapshot, message()).action == REJECT
    clock.now += timedelta(minutes=30)
    assert decide(checker, snapshot, message()).action == REJECT
    clock.now += timedelta(minutes=31)
    if isinstance(checker.store, RedisStore):  # its hold expires on Redis's clock
        checker.store.client.delete(checker.store.key("alice", "hold"))
    assert decide(checker, snapshot, message()).action == DELIVER


def test_block_holds_after_the_window_until_released(new_store):
    from routing.limits import restrictions
    from routing.models import SenderRestriction

    clock = Clock()
    store = new_store()
    checker, snapshot = (
        LimitChecker(store, clock),
        policy(LimitRule("*", external_per_hour=1, action="block")),
    )
    decide(checker, snapshot, message())
    rejected = decide(checker, snapshot, message())
    assert rejected.action == REJECT and rejected.limit.until is None
    assert "until an administrator releases it" in rejection_text(rejected.limit)
    clock.now += timedelta(hours=3)
    assert decide(checker, snapshot, message()).action == REJECT
    SenderRestriction.start(restrictions.hold_of(rejected.limit))  # as the flush writes it
    assert restrictions.release(sender="alice", note="customer fixed", store=store) == 1
    assert decide(checker, snapshot, message()).action == DELIVER


def test_high_risk_moves_the_rest_of_the_window_to_the_high_risk_pool(new_store):
    clock = Clock()
    checker, snapshot = (
        LimitChecker(new_store(), clock),
        policy(LimitRule("*", external_per_hour=2, action="high-risk")),
    )
    for _ in range(2):
        assert decide(checker, snapshot, message()).pool == "normal"
    for _ in range(3):
        moved = decide(checker, snapshot, message())
        assert (moved.action, moved.pool, moved.source_ip) == (DELIVER, "high-risk", "198.51.100.1")
        assert moved.reasons == (SENDER_LIMIT,) and moved.limit.action == "high-risk"
    assert decide(checker, snapshot, message("bob")).pool == "normal"


def test_high_risk_messages_per_hour_count_only_messages_above_the_spam_threshold(new_store):
    checker = LimitChecker(new_store(), Clock())
    snapshot = policy(LimitRule("*", high_risk_per_hour=1, action="block-today"))
    assert decide(checker, snapshot, message(score=1.0)).action == DELIVER
    assert decide(checker, snapshot, message(score=9.0)).action == DELIVER
    assert decide(checker, snapshot, message(score=1.0)).action == DELIVER
    rejected = decide(checker, snapshot, message(score=9.0))
    assert rejected.action == REJECT and rejected.limit.name == "high_risk_per_hour"


def test_alert_delivers_and_names_the_limit(new_store):
    checker = LimitChecker(new_store(), Clock())
    snapshot = policy(LimitRule("*", external_per_hour=1, action="alert"))
    decide(checker, snapshot, message())
    alerted = decide(checker, snapshot, message())
    assert (alerted.action, alerted.pool) == (DELIVER, "normal")
    assert alerted.limit.name == "external_per_hour" and alerted.reasons == ()


def test_senders_no_rule_matches_and_dsns_are_not_limited(new_store):
    checker = LimitChecker(new_store(), Clock())
    snapshot = policy(LimitRule("*@example.com", external_per_hour=0))
    assert decide(checker, snapshot, message()).limit is None
    bounce = build_facts(mail_from="", rcpt_to=["x@y.test"])
    assert decide(checker, policy(LimitRule("*", per_day=0)), bounce).action == DELIVER


# --- a store that cannot answer ---------------------------------------------------------------


@pytest.fixture
def silent_redis():
    """A TCP port that accepts connections and never answers (a hung Redis)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield SharedRedis(f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
    listener.close()


@pytest.mark.parametrize(
    ("on_failure", "action"), [(rules.STORE_DELIVER, DELIVER), (rules.STORE_DEFER, DEFER)]
)
def test_a_hung_store_costs_its_timeout_and_never_rejects(silent_redis, on_failure, action):
    checker = LimitChecker(RedisStore(silent_redis, timeout=0.2), Clock())
    snapshot = policy(LimitRule("*", per_day=0, action="block"), on_store_failure=on_failure)
    started = time.monotonic()
    decision = decide(checker, snapshot, message())
    assert time.monotonic() - started < 1.0
    assert decision.action == action
    assert any("sender limits" in p for p in decision.problems)
    if action == DEFER:
        assert (decision.pool, decision.source_ip) == ("", None)


def test_a_refused_connection_delivers_without_limits_by_default():
    checker = LimitChecker(RedisStore(SharedRedis("redis://127.0.0.1:1/0")), Clock())
    decision = decide(checker, policy(LimitRule("*", per_day=0)), message())
    assert (decision.action, decision.pool) == (DELIVER, "normal")


# --- concurrency -------------------------------------------------------------------------------


def test_concurrent_deciders_on_redis_never_overshoot(shared):
    """Eight "processes" (own connections) race for a limit of 50: exactly 50 pass."""
    snapshot = policy(LimitRule("*", external_per_hour=50, action="block-today"))
    stores = [RedisStore(shared) for _ in range(8)]
    actions: list[str] = []
    lock = threading.Lock()

    def send(store):
        checker = LimitChecker(store)
        for _ in range(20):
            action = decide(checker, snapshot, message()).action
            with lock:
                actions.append(action)

    threads = [threading.Thread(target=send, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert actions.count(DELIVER) == 50 and actions.count(REJECT) == 110
    for store in stores:
        store.close()


def test_the_database_forgets_a_senders_rows_past_the_longest_window():
    from routing.limits.store import DatabaseStore
    from routing.models import SenderUsage

    clock = Clock()
    checker, snapshot = LimitChecker(DatabaseStore(), clock), policy(LimitRule("*", per_day=100))
    decide(checker, snapshot, message())
    clock.now += timedelta(days=1, seconds=1)
    decide(checker, snapshot, message())
    assert SenderUsage.objects.filter(at__lt=clock.now).count() == 0
