"""The memory of Message-IDs routed here (routing/routed.py), shared by processes and kept
across restarts, on the session's real stores: the test database in every run, and Redis too
when the session's cache is Redis (CI's PostgreSQL + Redis run). Nothing here skips."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest

from config.shared_redis import shared_redis
from routing import counters as counters_module
from routing import routed
from routing.counters import Counters, id_hash
from routing.facts import Decision, DSNRecipient, DSNReport, MessageFacts
from routing.models import DSNSample, RoutedMessage

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 27, 10, 15, 42, tzinfo=UTC)
STORES = ["database"]
if shared_redis():
    STORES.append(pytest.param("redis", marks=pytest.mark.integration))


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture(params=STORES)
def new_memory(request):
    """A factory of memories on the store under test, one per "process", each with a store
    (and Redis connection) of its own; Redis keys of the test are deleted at the end."""
    made: list = []

    def make(**options) -> routed.RoutedMemory:
        if request.param == "redis":
            store = routed.RedisStore(shared_redis())
            assert store.client.ping()  # no answer: the test fails here, plainly
        else:
            store = routed.DatabaseStore()
        made.append(store)
        return routed.RoutedMemory(store, **options)

    yield make
    for store in made:
        if isinstance(store, routed.RedisStore):
            keys = list(store.client.scan_iter(match=store.shared.key("pw:routed:*")))
            if keys:
                store.client.delete(*keys)
        store.close()


def message_id() -> str:
    return f"<{uuid.uuid4().hex}@customer.example>"


def sent(mid: str) -> MessageFacts:
    return MessageFacts(mail_from="a@customer.example", message_id=mid)


def bounce_about(mid: str) -> MessageFacts:
    report = DSNReport(
        "mx.example.net",
        (DSNRecipient("x@far.example", "failed", "5.1.1", refined_class="unknown-user"),),
        original_message_id=mid,
    )
    return MessageFacts(mail_from="", rcpt_to=("a@customer.example",), is_dsn=True, dsn=report)


def decision(is_dsn: bool = False) -> Decision:
    pool = "high-risk" if is_dsn else "normal"
    return Decision(pool, pool, "192.0.2.1", ("dsn",) if is_dsn else (), None, is_dsn, "x")


def route(counters: Counters, facts: MessageFacts) -> None:
    counters.record(facts, decision(facts.is_dsn))


def routed_by_us(counters: Counters, mid: str) -> bool | None:
    """Route a DSN about `mid` through `counters`, flush, and read its sample's verdict."""
    DSNSample.objects.all().delete()
    route(counters, bounce_about(mid))
    counters.flush()
    return DSNSample.objects.get().routed_by_us


def test_a_dsn_about_a_message_another_process_routed_was_routed_by_us(new_memory):
    clock = Clock(T0)
    mid = message_id()
    first = Counters(clock, memory=new_memory())
    second = Counters(clock, memory=new_memory())
    route(first, sent(mid))
    first.flush()
    clock.now += timedelta(minutes=3)
    assert routed_by_us(second, mid) is True


def test_a_restarted_process_still_knows_what_was_routed_before_it(new_memory):
    clock = Clock(T0)
    mid = message_id()
    before = Counters(clock, memory=new_memory())
    route(before, sent(mid))
    before.flush()
    clock.now += timedelta(hours=5)
    assert routed_by_us(Counters(clock, memory=new_memory()), mid) is True


def test_a_dsn_about_an_unknown_message_id_is_backscatter_and_one_without_an_id_unknown(
    new_memory,
):
    clock = Clock(T0)
    counters = Counters(clock, memory=new_memory())
    route(counters, sent(message_id()))
    counters.flush()
    assert routed_by_us(counters, message_id()) is False
    assert routed_by_us(counters, "") is None


def test_a_message_routed_by_this_process_counts_before_it_is_written(new_memory):
    """A DSN counted in the same flush interval as the message it is about."""
    counters = Counters(Clock(T0), memory=new_memory())
    mid = message_id()
    route(counters, sent(mid))
    assert routed_by_us(counters, mid.upper()) is True  # Message-IDs compare without case


def test_the_memory_forgets_a_message_after_its_hours(new_memory, settings):
    """Routed at 10:15 with a memory of 2 hours: known until 13:00 (the hour's end plus two
    hours), by the process that routed it and by a restarted one."""
    settings.POOLWARDEN_ROUTED_MEMORY_HOURS = 2
    clock = Clock(T0)
    mid = message_id()
    counters = Counters(clock, memory=new_memory())
    route(counters, sent(mid))
    counters.flush()
    clock.now = T0.replace(hour=12, minute=59)
    assert routed_by_us(Counters(clock, memory=new_memory()), mid) is True
    clock.now = T0.replace(hour=13, minute=0)
    assert routed_by_us(Counters(clock, memory=new_memory()), mid) is False
    assert routed_by_us(counters, mid) is False


def test_routing_never_touches_the_store_only_the_flush_does(new_memory):
    memory = new_memory()
    counters = Counters(Clock(T0), memory=memory)
    with (
        mock.patch.object(memory.store, "add", side_effect=AssertionError),
        mock.patch.object(memory.store, "known", side_effect=AssertionError),
    ):
        route(counters, sent(message_id()))
        route(counters, bounce_about(message_id()))
    assert len(counters.counts.routed) == 1


def test_the_database_keeps_hashes_as_signed_64_bit_integers():
    mids = [message_id() for _ in range(200)]
    counters = Counters(Clock(T0), memory=routed.RoutedMemory(routed.DatabaseStore()))
    for mid in mids:
        route(counters, sent(mid))
    counters.flush()
    stored = set(RoutedMessage.objects.values_list("digest", flat=True))
    assert stored == {routed.signed(id_hash(mid)) for mid in mids}
    assert min(stored) < 0 < max(stored) and all(-(2**63) <= d < 2**63 for d in stored)
    assert set(RoutedMessage.objects.values_list("hour", flat=True)) == {
        T0.replace(minute=0, second=0)
    }


def test_the_daily_clean_up_deletes_rows_past_the_memory(settings):
    from django.utils import timezone

    from reputation.tasks import roll_up_dsn_counts

    settings.POOLWARDEN_ROUTED_MEMORY_HOURS = 72
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    RoutedMessage.objects.create(digest=1, hour=hour - timedelta(hours=72))
    RoutedMessage.objects.create(digest=2, hour=hour - timedelta(hours=73))
    roll_up_dsn_counts()
    assert list(RoutedMessage.objects.values_list("digest", flat=True)) == [1]


class FlakyStore:
    """The database store, down while `down` is set."""

    def __init__(self):
        self.store, self.down = routed.DatabaseStore(), True

    def add(self, digests, hour):
        if self.down:
            raise routed.Unavailable("ConnectionError: refused")
        self.store.add(digests, hour)

    def known(self, digests, since, until):
        if self.down:
            raise routed.Unavailable("ConnectionError: refused")
        return self.store.known(digests, since, until)


def test_while_the_store_is_down_dsns_are_judged_by_this_processes_own_messages(caplog):
    """The hashes wait for the next flush, and this process still recognises its own mail;
    what another process routed cannot be told from backscatter meanwhile."""
    flaky = FlakyStore()
    clock = Clock(T0)
    mine, theirs = message_id(), message_id()
    other = Counters(clock, memory=routed.RoutedMemory(routed.DatabaseStore()))
    route(other, sent(theirs))
    other.flush()
    counters = Counters(clock, memory=routed.RoutedMemory(flaky))
    route(counters, sent(mine))
    counters.flush()
    assert counters.counts.routed == {id_hash(mine)}  # kept for the next flush
    assert routed_by_us(counters, mine) is True
    assert routed_by_us(counters, theirs) is False
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("kept for the next flush" in w for w in warnings)
    assert sum("shared memory is unavailable" in w for w in warnings) == 1  # once per outage
    flaky.down = False
    assert counters.flush() == 1  # the waiting hash
    assert not counters.counts.routed
    assert routed_by_us(Counters(clock, memory=routed.RoutedMemory(flaky)), mine) is True


def test_an_unreachable_redis_fails_fast_and_changes_no_verdict_about_own_mail():
    from config.shared_redis import SharedRedis

    store = routed.RedisStore(SharedRedis("redis://127.0.0.1:1/0"), timeout=0.5)
    counters = Counters(Clock(T0), memory=routed.RoutedMemory(store))
    mid = message_id()
    route(counters, sent(mid))
    counters.flush()
    assert routed_by_us(counters, mid) is True
    assert routed_by_us(counters, message_id()) is False


def test_message_ids_past_the_bound_are_not_remembered_and_counted_in_the_log(caplog):
    counters = Counters(Clock(T0), memory=routed.RoutedMemory(routed.DatabaseStore()))
    with mock.patch.object(counters_module, "MAX_PENDING_ROUTED", 3):
        for _ in range(5):
            route(counters, sent(message_id()))
    assert len(counters.counts.routed) == 3
    counters.flush()
    dropped = [r for r in caplog.records if "were not remembered" in r.getMessage()]
    assert len(dropped) == 1 and dropped[0].args[0] == 2
    assert RoutedMessage.objects.count() == 3


def test_the_store_is_redis_when_the_cache_is_redis_under_its_key_prefix(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://127.0.0.1:6379/2",
            "KEY_PREFIX": "pwtest-x",
        }
    }
    store = routed.default_store()
    assert isinstance(store, routed.RedisStore)
    assert store.key(T0) == "pwtest-x:pw:routed:2026112710"
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    assert isinstance(routed.default_store(), routed.DatabaseStore)


if shared_redis():

    @pytest.mark.integration
    def test_redis_keeps_one_set_per_hour_expiring_an_hour_after_the_memory(settings):
        settings.POOLWARDEN_ROUTED_MEMORY_HOURS = 72
        store = routed.RedisStore(shared_redis())
        key = store.key(T0.replace(minute=0, second=0))
        try:
            counters = Counters(Clock(T0), memory=routed.RoutedMemory(store))
            mid = message_id()
            route(counters, sent(mid))
            counters.flush()
            members = store.client.smembers(key)
            assert members == {str(routed.signed(id_hash(mid))).encode()}
            assert 72 * 3600 < store.client.ttl(key) <= 73 * 3600
        finally:
            store.client.delete(key)
            store.close()


def test_this_processes_own_memory_keeps_only_the_newest_messages():
    memory = routed.RoutedMemory(routed.DatabaseStore())
    with mock.patch.object(routed, "RECENT_IDS", 3):
        memory.remember([1, 2, 3], T0)
        memory.remember([4, 2], T0)
    assert list(memory.recent) == [3, 4, 2]
