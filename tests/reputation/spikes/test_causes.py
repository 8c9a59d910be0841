"""The likely cause of a spike, named from the evidence of its window."""

from __future__ import annotations

from collections import Counter

from reputation.spikes.causes import DSNSampleFacts, Evidence, likely_cause


def evidence(samples: list[DSNSampleFacts], **extra) -> Evidence:
    ev = Evidence(total=len(samples), samples=samples, **extra)
    for s in samples:
        ev.statuses[s.status] += 1
        ev.sources[s.source] += 1
        ev.recipient_domains[s.recipient.rpartition("@")[2]] += 1
        ev.original_domains[s.original_recipient.rpartition("@")[2]] += 1
        ev.reporting_mtas[s.reporting_mta] += 1
    return ev


def test_directory_harvest_is_many_unknown_users_at_one_domain():
    samples = [
        DSNSampleFacts(
            "mx.customer",
            f"probe{i % 3}@attacker.example",
            f"user{i}@customer.example",
            "5.1.1",
            "550 5.1.1 User unknown",
        )
        for i in range(80)
    ]
    cause, _ = likely_cause(evidence(samples, source_baselines={"mx.customer": 40}))
    assert cause.name == "directory-harvest"
    assert "80 distinct original recipients" in cause.evidence[1]


def test_backscatter_is_many_recipients_at_one_domain_for_mail_we_did_not_route():
    samples = [
        DSNSampleFacts(
            "mx.customer",
            f"random{i}@victim.example",
            f"x{i % 7}@far{i % 9}.example",
            "5.1.1" if i % 2 else "5.2.2",
            "550 rejected",
            routed_by_us=False,
        )
        for i in range(120)
    ]
    cause, _ = likely_cause(evidence(samples, source_baselines={"mx.customer": 60}))
    assert cause.name == "backscatter"


def test_spam_attack_is_a_surge_of_high_risk_routing():
    samples = [
        DSNSampleFacts(
            "sasl:shop7",
            f"s{i}@shop7.example",
            f"r{i}@far{i % 40}.example",
            "5.2.1",
            "552 mailbox full",
            routed_by_us=True,
        )
        for i in range(60)
    ]
    ev = evidence(
        samples,
        source_baselines={"sasl:shop7": 50},
        high_risk_share=0.7,
        high_risk_share_before=0.05,
        routed=200,
        high_risk=140,
        known_sources=frozenset({"sasl:shop7"}),
    )
    assert likely_cause(ev)[0].name == "spam-attack"


def test_spam_attack_needs_a_minimum_of_high_risk_messages():
    samples = [
        DSNSampleFacts("sasl:tiny", f"s{i}@tiny.example", f"r{i}@far.example", "5.2.1")
        for i in range(30)
    ]
    ev = evidence(samples, high_risk_share=0.33, routed=3, high_risk=1)
    cause = next(c for c in likely_cause(ev)[1] if c.name == "spam-attack")
    assert cause.confidence == 0.0
    assert "too little evidence" in cause.evidence[-1]


def harvest_samples(n: int = 120) -> list[DSNSampleFacts]:
    """A harvest at customer.example among background DSNs at many other domains."""
    harvest = [
        DSNSampleFacts(
            "mx.customer",
            f"probe{i % 3}@attacker.example",
            f"user{i}@customer.example",
            "5.1.1",
            "550 5.1.1 User unknown",
            reporting_mta="mx.customer",
            refined_class="unknown-user",
        )
        for i in range(n)
    ]
    background = [
        DSNSampleFacts(
            f"mx.other{i % 9}",
            f"x{i}@remote{i % 5}.example",
            f"u{i}@other{i % 9}.example",
            "5.2.2",
            "552 full",
            reporting_mta=f"mx.other{i % 9}",
            refined_class="mailbox-full",
        )
        for i in range(n // 4)
    ]
    return harvest + background


def test_harvest_among_background_domains_is_still_harvest():
    ev = evidence(harvest_samples())
    ev.refined.update(s.refined_class for s in ev.samples)
    assert len(ev.original_domains) > 3
    assert likely_cause(ev)[0].name == "directory-harvest"


def test_a_known_customer_server_jumping_twentyfold_is_no_rogue_server():
    ev = evidence(
        harvest_samples(),
        source_baselines={"mx.customer": 2.0},  # 120 now: a 60-fold jump
        known_sources=frozenset({"mx.customer"}),
        known_mtas=frozenset({"mx.customer"}),
    )
    ev.refined.update(s.refined_class for s in ev.samples)
    best, causes = likely_cause(ev)
    assert best.name == "directory-harvest"
    assert next(c for c in causes if c.name == "rogue-server").confidence == 0.0


def test_a_known_client_naming_a_foreign_reporting_mta_is_a_rogue_server():
    samples = [
        DSNSampleFacts(
            "10.1.2.3",
            f"s{i}@x{i % 50}.example",
            f"r{i}@y{i % 30}.example",
            "5.2.1",
            reporting_mta="relay.never-seen.example",
        )
        for i in range(70)
    ]
    ev = evidence(samples, known_sources=frozenset({"10.1.2.3"}), known_mtas=frozenset())
    assert likely_cause(ev)[0].name == "rogue-server"
    ev.known_mtas = frozenset({"relay.never-seen.example"})
    assert likely_cause(ev)[0].name != "rogue-server"


def test_rogue_server_is_one_source_that_usually_sends_nothing():
    samples = [
        DSNSampleFacts(
            "203.0.113.66",
            f"s{i}@x{i % 50}.example",
            f"r{i}@y{i % 30}.example",
            "5.2.1",
            "552 quota",
            routed_by_us=True,
        )
        for i in range(70)
    ]
    ev = evidence(samples, source_baselines={"203.0.113.66": 0})
    assert likely_cause(ev)[0].name == "rogue-server"


def test_blocked_at_receiver_names_the_list_and_the_pool_address():
    samples = [
        DSNSampleFacts(
            "sasl:c1",
            f"s{i}@c1.example",
            f"r{i}@big{i % 4}.example",
            "5.7.1",
            "554 5.7.1 Service unavailable; Client host [192.0.2.5] blocked using zen.spamhaus.org",
            routed_by_us=True,
        )
        for i in range(50)
    ]
    cause, _ = likely_cause(evidence(samples, source_baselines={"sasl:c1": 45}))
    assert cause.name == "blocked-at-receiver"
    assert "192.0.2.5" in " ".join(cause.evidence)


def test_weak_evidence_is_unknown():
    samples = [
        DSNSampleFacts(
            f"src{i % 10}",
            f"a{i}@d{i % 30}.example",
            f"b{i}@e{i % 30}.example",
            "4.4.7",
            "timeout",
            routed_by_us=True,
        )
        for i in range(40)
    ]
    ev = evidence(samples, source_baselines={f"src{i}": 4 for i in range(10)})
    assert likely_cause(ev)[0].name == "unknown"
    assert Counter(c.name for c in likely_cause(ev)[1])  # every cause is still argued
