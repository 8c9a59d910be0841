"""One sweep of targets (addresses, names) against blocklists, without a database.

`self_test()` asks every list its RFC 5782 §5 test points and says which fail. `sweep_work()`
looks the targets up, interprets every answer, asks for the TXT reason of each listing of a
list that passed, and returns a `SweepOutcome`; with `self_test=True` (`sweep()`) the
self-test goes in the same burst of queries and results of a list that failed it are returned
but flagged: the caller must not apply them. A run self-tests once (`runs.start_run`) and its
chunks sweep without. A listing whose TXT look-up got no answer has `reason_known` False: the
reason stored before stands.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from reputation.blocklists import dnsbl
from reputation.blocklists.dnsbl import ListSpec, Probe, Verdict
from reputation.blocklists.sweeper import A, UDPSweeper


class Result(NamedTuple):
    target: str
    zone: str
    verdict: Verdict
    reason_known: bool = True  # False: a listing whose TXT look-up went unanswered


@dataclass
class SweepOutcome:
    results: list[Result] = field(default_factory=list)
    misbehaving: dict[str, str] = field(default_factory=dict)  # zone -> why
    queries: int = 0  # datagrams sent, retransmissions and self-tests included
    queries_by_zone: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    probes: list[tuple[tuple[ListSpec, Probe], Verdict]] = field(default_factory=list)

    def trusted(self) -> list[Result]:
        """The results of lists that passed their self-test."""
        if not self.misbehaving:
            return self.results
        return [r for r in self.results if r.zone not in self.misbehaving]

    def counts(self) -> dict[str, int]:
        """Answers by kind: listed, clean, unknown."""
        counted = Counter(r.verdict.status for r in self.results)
        return {kind: counted.get(kind, 0) for kind in (dnsbl.LISTED, dnsbl.CLEAN, dnsbl.UNKNOWN)}

    def errors_by_zone(self) -> dict[str, dict[str, int]]:
        errors: dict[str, Counter] = {}
        for r in self.results:
            if r.verdict.status == dnsbl.UNKNOWN:
                errors.setdefault(r.zone, Counter())[r.verdict.error] += 1
        return {zone: dict(kinds) for zone, kinds in sorted(errors.items())}


def unknown_total(kinds: object) -> int:
    """One list's unknown answers in a run's stored errors: {error kind: count} as
    `errors_by_zone` writes it (or a bare count)."""
    if isinstance(kinds, dict):
        return sum(n for n in kinds.values() if isinstance(n, int))
    return kinds if isinstance(kinds, int) else 0


Work = Sequence[tuple[ListSpec, Sequence[str]]]  # each list with the targets to look up


def sweep(targets: Sequence[str], specs: Sequence[ListSpec], resolver: UDPSweeper) -> SweepOutcome:
    """Look every target up on every list that answers for it."""
    return sweep_work([(spec, targets) for spec in specs], resolver)


def self_test(specs: Sequence[ListSpec], resolver: UDPSweeper) -> SweepOutcome:
    """Only the self-test of each list: `misbehaving` names those that failed, `results`
    holds their test points' unknown answers (what the run reports as errors)."""
    outcome = sweep_work([(spec, ()) for spec in specs], resolver)
    outcome.results = [
        Result(probe.target, spec.zone, verdict)
        for (spec, probe), verdict in outcome.probes
        if spec.zone in outcome.misbehaving and verdict.status == dnsbl.UNKNOWN
    ]
    return outcome


def sweep_work(work: Work, resolver: UDPSweeper, *, self_test: bool = True) -> SweepOutcome:
    """Look the targets of `work` up (after each list's self-test, when asked); see the
    module docstring."""
    started, sent_before = time.monotonic(), dict(resolver.sent_by_zone)
    probes = []
    if self_test:
        probes = [(spec, p) for spec, _ in work for p in dnsbl.self_test_probes(spec)]
    todo, questions, zones = _questions(work, probes)
    replies = resolver.resolve_wire(questions, zones)
    tests = [dnsbl.interpret(spec, r) for (spec, _), r in zip(probes, replies, strict=False)]
    outcome = SweepOutcome(misbehaving=_failures(probes, tests))
    outcome.probes = list(zip(probes, tests, strict=True))
    interpret = dnsbl.interpret
    verdicts = [
        interpret(spec, r) for (_, spec), r in zip(todo, replies[len(probes) :], strict=True)
    ]
    trusted = [spec.zone not in outcome.misbehaving for _, spec in todo]
    reasons = _reasons(todo, questions[len(probes) :], verdicts, trusted, resolver)
    for index, ((target, spec), verdict) in enumerate(zip(todo, verdicts, strict=True)):
        known = True
        if verdict.status == dnsbl.LISTED and trusted[index]:
            known = index in reasons
            verdict = _with_reason(verdict, reasons.get(index, ""))
        outcome.results.append(Result(target, spec.zone, verdict, known))
    outcome.queries_by_zone = {
        zone: sent - sent_before.get(zone, 0)
        for zone, sent in resolver.sent_by_zone.items()
        if sent > sent_before.get(zone, 0)
    }
    outcome.queries = sum(outcome.queries_by_zone.values())
    outcome.seconds = time.monotonic() - started
    return outcome


def _questions(
    work: Work, probes: list[tuple[ListSpec, Probe]]
) -> tuple[list[tuple[str, ListSpec]], list[bytes], list[str]]:
    """The self-test questions, then one per (target, list) that applies, in wire form, with
    the list of each; and the (target, list) pairs in the order of their questions."""
    zone_wires = {spec.zone: _zone_wire(spec) for spec, _ in work}
    questions = [_wire(dnsbl.probe_prefix(spec, p)) + zone_wires[spec.zone] for spec, p in probes]
    zones = [spec.zone for spec, _ in probes]
    prefixes = _prefixes({t for _, targets in work for t in targets})
    todo = []
    for spec, targets in work:
        zone_wire = zone_wires[spec.zone]
        for target in targets:
            family, prefix = prefixes.get(target, (None, b""))
            if family is not None and _applies(spec, family):
                todo.append((target, spec))
                questions.append(prefix + zone_wire)
                zones.append(spec.zone)
    return todo, questions, zones


A_TAIL, TXT_TAIL = b"\0\0\x01\0\x01", b"\0\0\x10\0\x01"  # root, type A / TXT, class IN
V4, V6, NAME = 4, 6, 0


def _wire(name: str, qtype: int = 0) -> bytes:
    """Labels in wire form; with a qtype, also the root, type and class (a whole question)."""
    labels = b"".join(bytes([len(x)]) + x for x in name.strip(".").encode("ascii").split(b"."))
    if any(not 0 < len(x) < 64 for x in name.strip(".").split(".")):
        raise ValueError(f"bad DNS name {name!r}")
    return labels + (A_TAIL if qtype == A else TXT_TAIL if qtype else b"")


def _zone_wire(spec: ListSpec) -> bytes:
    try:
        return _wire(spec.query_zone, A)
    except (ValueError, UnicodeError):  # the message must not repeat an access key
        raise ValueError(f"{spec.zone}: not a valid DNS zone (or access key)") from None


def _prefixes(targets: set[str]) -> dict[str, tuple[int | None, bytes]]:
    """Each target's kind and query prefix in wire form, worked out once per sweep rather
    than once per list; a target that is neither an address nor a valid name is skipped."""
    result = {}
    for target in targets:
        ip = dnsbl.ip_or_none(target)
        try:
            if ip is None:
                result[target] = (NAME, _wire(dnsbl.domain_label(target)))
            else:
                result[target] = (ip.version, _wire(dnsbl.reversed_name(str(ip))))
        except (ValueError, UnicodeError):
            result[target] = (None, b"")
    return result


def _applies(spec: ListSpec, family: int) -> bool:
    return spec.answers_for(family)  # V4, V6 and NAME are dnsbl's families


def _failures(probes: list[tuple[ListSpec, Probe]], tests: list[Verdict]) -> dict[str, str]:
    by_zone: dict[str, list[tuple[Probe, Verdict]]] = {}
    for (spec, probe), verdict in zip(probes, tests, strict=True):
        by_zone.setdefault(spec.zone, []).append((probe, verdict))
    failed = {zone: dnsbl.self_test_failure(results) for zone, results in by_zone.items()}
    return {zone: why for zone, why in failed.items() if why}


def _reasons(
    todo: list[tuple[str, ListSpec]],
    questions: list[bytes],
    verdicts: list[Verdict],
    trusted: list[bool],
    resolver: UDPSweeper,
) -> dict[int, str]:
    """The TXT reason of each listing on a trusted list, by index (not paired with A records
    by position): "" when the list answered without one, absent when it did not answer."""
    listed = [
        i for i, verdict in enumerate(verdicts) if verdict.status == dnsbl.LISTED and trusted[i]
    ]
    txt = [questions[i][: -len(TXT_TAIL)] + TXT_TAIL for i in listed]
    replies = resolver.resolve_wire(txt, [todo[i][1].zone for i in listed])
    return {
        i: " / ".join(dict.fromkeys(t for t in reply.texts if t))
        for i, reply in zip(listed, replies, strict=True)
        if reply.rcode in (dnsbl.NOERROR, dnsbl.NXDOMAIN)
    }


def _with_reason(verdict: Verdict, reason: str) -> Verdict:
    return Verdict(verdict.status, verdict.codes, verdict.meanings, reason, ttl=verdict.ttl)
