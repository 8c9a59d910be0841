"""The sweeper under grants from a shared limiter (reputation/blocklists/sweeper.py `Shares`):
a scripted fake stands in for the real limiter, and a proxy in front of rbldnsd counts what
one zone is asked and how many of its queries are outstanding at once."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from reputation.blocklists.sweeper import BURST, Grant, ZoneLimits
from tests.rbldnsd_server import HOST, proxy
from tests.reputation.blocklists.test_sweeper import slash, sweeper

pytestmark = pytest.mark.integration


class ScriptedShares:
    """Call n of current() returns script[n] (the last entry from then on) and records
    `watch()` first; done() records the zone and how many calls came before it."""

    def __init__(self, *script: dict[str, Grant], watch: Callable[[], int] = lambda: 0):
        self.script, self.watch = script, watch
        self.calls = 0
        self.seen: list[int] = []
        self.finished: list[tuple[str, int]] = []

    def current(self) -> dict[str, Grant]:
        self.seen.append(self.watch())
        self.calls += 1
        return self.script[min(self.calls, len(self.script)) - 1]

    def done(self, zone: str) -> None:
        self.finished.append((zone, self.calls))


@pytest.mark.parametrize(
    ("limits", "grant", "bound"),
    [
        (ZoneLimits(), Grant(in_flight=3), 3),
        (ZoneLimits(in_flight=2), Grant(in_flight=3), 2),  # its own limit is tighter
        (ZoneLimits(in_flight=5), Grant(in_flight=3.9), 3),
    ],
)
def test_a_zone_never_has_more_in_flight_than_its_grant(rbldnsd, limits, grant, bound):
    lookups = slash("192.0.2.0/26", "minor.test", "zen.test")
    expected = sweeper(rbldnsd.port).resolve(lookups)
    with proxy(rbldnsd.port, delay=0.02) as mirror:
        probe = sweeper(
            rbldnsd.port,
            timeout=1.0,
            limits={"minor.test": limits},
            zone_servers={"minor.test": [(HOST, mirror.port)]},
            shares=ScriptedShares({"minor.test": grant}),
        )
        replies = probe.resolve(lookups)
    assert replies == expected and probe.lost == 0
    retries = probe.sent_by_zone["minor.test"] - 64  # a late reply's query outlives its try
    assert 0 < mirror.peak <= bound + retries


@pytest.mark.parametrize(
    ("limits", "grant", "qps"),
    [(ZoneLimits(), Grant(qps=25), 25), (ZoneLimits(qps=10), Grant(qps=25), 10)],
)
def test_a_zone_never_sends_faster_than_its_grant(rbldnsd, limits, grant, qps):
    """n queries span (n - 1) / qps seconds at least, less the BURST a late loop may catch up."""
    lookups = slash("192.0.2.0/26", "minor.test")[: qps + 2]
    shares = ScriptedShares({"minor.test": grant})
    probe = sweeper(rbldnsd.port, timeout=1.0, limits={"minor.test": limits}, shares=shares)
    started = time.monotonic()
    replies = probe.resolve(lookups)
    elapsed = time.monotonic() - started
    assert probe.lost == 0 and all(r.rcode is not None for r in replies)
    sent = probe.sent_by_zone["minor.test"]
    assert sent >= qps + 2 and elapsed >= (sent - 1) / qps - BURST  # about 1 s


def test_a_zone_granted_nothing_waits_without_spinning_until_its_grant_comes(rbldnsd):
    lookups = slash("192.0.2.0/29", "minor.test", "zen.test")
    expected = sweeper(rbldnsd.port).resolve(lookups)
    with proxy(rbldnsd.port) as mirror:
        nothing, anything = {"minor.test": Grant(in_flight=0)}, {"minor.test": Grant()}
        shares = ScriptedShares(*[nothing] * 6, anything, watch=lambda: mirror.asked.total())
        probe = sweeper(
            rbldnsd.port, zone_servers={"minor.test": [(HOST, mirror.port)]}, shares=shares
        )
        cpu, started = time.process_time(), time.monotonic()
        replies = probe.resolve(lookups)
        cpu, elapsed = time.process_time() - cpu, time.monotonic() - started
    assert replies == expected
    assert shares.seen[:7] == [0] * 7  # read before the first query, and obeyed
    assert elapsed >= 5 * 0.15 and cpu < elapsed / 2  # slept between refreshes
    finished = dict(shares.finished)  # zone -> calls to current() before its done()
    assert len(shares.finished) == 2 and finished["zen.test"] <= 6 <= finished["minor.test"] - 1


def test_a_raised_rate_takes_effect_mid_run(rbldnsd):
    """At 0.2 queries a second, 8 lookups would take 35 s; the grant goes up to 50 at the
    third refresh (0.4 s in), and the rest follow at that rate, not 5 s after the first."""
    slow, fast = {"minor.test": Grant(qps=0.2)}, {"minor.test": Grant(qps=50)}
    probe = sweeper(rbldnsd.port, shares=ScriptedShares(slow, slow, fast))
    started = time.monotonic()
    replies = probe.resolve(slash("192.0.2.0/29", "minor.test"))
    assert time.monotonic() - started < 3.0
    assert probe.lost == 0 and all(r.rcode is not None for r in replies)
