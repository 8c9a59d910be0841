"""A sweeper stand-in for test_shares.py, run as a process of its own:

    python -m tests.reputation.blocklists.shares_sender '{"limits": {zone: [4, 0.0], …},
        "service": 0.08, "start": 0.3, "stop": 2.1}'

It prints "ready" once Django is set up, reads the start time (time.monotonic(), the same on
every process of the host) from stdin, joins the zones through shares_for() `start` seconds
later, sends simulated queries inside its grants until `stop` (each one answered `service`
seconds after its send; one send every 1/qps seconds at most), waits for the last answers,
leaves, and prints as JSON, per zone, the send times and the most live holders it saw:
{"sends": {zone: [t, …]}, "most_holders": {zone: n}}.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque

import django


class Sender:
    """One zone's queries: in flight until answered, paced by the grant's rate."""

    def __init__(self, service: float):
        self.service = service
        self.sends: list[float] = []
        self.answers: deque[float] = deque()  # answer times of the queries in flight
        self.next_send = 0.0
        self.most_holders = 0

    def send_if_granted(self, grant, now: float) -> bool:
        while self.answers and self.answers[0] <= now:
            self.answers.popleft()
        if len(self.answers) >= grant.in_flight or now < self.next_send or grant.qps <= 0:
            return False
        self.sends.append(now)
        self.answers.append(now + self.service)
        self.next_send = max(self.next_send, now) + 1.0 / grant.qps
        return True


def main(plan: dict) -> dict:
    from reputation.blocklists.shares import shares_for

    limits = {zone: tuple(pair) for zone, pair in plan["limits"].items()}
    senders = {zone: Sender(plan["service"]) for zone in limits}
    print("ready", flush=True)
    t0 = float(sys.stdin.readline())
    time.sleep(max(0.0, t0 + plan["start"] - time.monotonic()))
    with shares_for(limits, period=0.25, drain=0.2) as shares:
        while time.monotonic() < t0 + plan["stop"]:
            sent = False
            for zone, grant in shares.current().items():
                sender = senders[zone]
                sender.most_holders = max(sender.most_holders, shares.zones[zone].holders)
                sent |= sender.send_if_granted(grant, time.monotonic())
            if not sent:
                time.sleep(0.002)
        last = max((s.answers[-1] for s in senders.values() if s.answers), default=0.0)
        time.sleep(max(0.0, last - time.monotonic()))
    return {
        "sends": {zone: sender.sends for zone, sender in senders.items()},
        "most_holders": {zone: sender.most_holders for zone, sender in senders.items()},
    }


if __name__ == "__main__":
    django.setup()
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
