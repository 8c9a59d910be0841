"""Query names and the meaning of answers (reputation/blocklists/dnsbl.py): plain data, no
network."""

from __future__ import annotations

import pytest

from reputation.blocklists import dnsbl
from reputation.blocklists.dnsbl import ListSpec, Probe, Reply, Verdict

ZEN = ListSpec(
    "zen.test",
    ipv6=True,
    codes={"127.0.0.2": "SBL", "127.0.0.4": "XBL"},
    error_codes=("127.255.255.0/24",),
)
SURBL = ListSpec(
    "multi.test",
    kind=dnsbl.DOMAIN,
    bitmask=True,
    codes={"127.0.0.8": "PH", "127.0.0.16": "MW", "127.0.0.64": "ABUSE"},
    error_codes=("127.0.0.1",),
)


def test_ipv4_query_name_reverses_the_octets():
    assert dnsbl.query_name(ZEN, "192.0.2.5") == "5.2.0.192.zen.test"


def test_ipv6_query_name_is_32_reversed_nibbles_as_in_the_spamhaus_example():
    name = dnsbl.query_name(ZEN, "2001:db8:7ca6:22::45")
    assert name == "5.4.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.2.0.0.6.a.c.7.8.b.d.0.1.0.0.2.zen.test"


def test_ipv4_mapped_ipv6_address_is_queried_as_ipv4():
    assert dnsbl.query_name(ZEN, "::ffff:192.0.2.5") == "5.2.0.192.zen.test"


def test_list_without_ipv6_does_not_apply_to_ipv6_addresses():
    v4only = ListSpec("v4.test")
    assert v4only.applies_to("192.0.2.1") and not v4only.applies_to("2001:db8::1")
    with pytest.raises(ValueError):
        dnsbl.query_name(v4only, "2001:db8::1")


def test_domain_list_takes_lowercase_idna_names_and_never_addresses():
    assert dnsbl.query_name(SURBL, "Bücher.Example.") == "xn--bcher-kva.example.multi.test"
    assert not SURBL.applies_to("192.0.2.1")


def test_access_key_prefixes_the_zone_but_never_shows_in_repr():
    keyed = ListSpec("zen.dq.test", access_key="abcdefghijklmnopqrstuvwxyz")
    assert (
        dnsbl.query_name(keyed, "192.0.2.1") == "1.2.0.192.abcdefghijklmnopqrstuvwxyz.zen.dq.test"
    )
    assert "abcdefghij" not in repr(keyed)


def test_nxdomain_and_empty_noerror_are_clean():
    assert dnsbl.interpret(ZEN, Reply(dnsbl.NXDOMAIN)).status == dnsbl.CLEAN
    assert dnsbl.interpret(ZEN, Reply(dnsbl.NOERROR)).status == dnsbl.CLEAN


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        (Reply(None), dnsbl.TIMEOUT),
        (Reply(2), dnsbl.SERVFAIL),
        (Reply(5), dnsbl.REFUSED),
        (Reply(0, ("127.255.255.254",)), dnsbl.ERROR_CODE),
        (Reply(0, ("198.51.100.200",)), dnsbl.OUTSIDE_127),
        (Reply(0, ("127.0.0.2", "8.8.8.8")), dnsbl.OUTSIDE_127),
    ],
)
def test_failures_error_codes_and_answers_outside_127_are_unknown(reply, kind):
    verdict = dnsbl.interpret(ZEN, reply)
    assert (verdict.status, verdict.error) == (dnsbl.UNKNOWN, kind)


def test_several_a_records_are_all_kept_with_their_meanings_and_txt():
    reply = Reply(0, ("127.0.0.4", "127.0.0.2"), ("SBL text", "XBL text"), 60)
    verdict = dnsbl.interpret(ZEN, reply)
    assert verdict.status == dnsbl.LISTED
    assert verdict.codes == ("127.0.0.2", "127.0.0.4")
    assert verdict.meanings == ("SBL", "XBL")
    assert verdict.reason == "SBL text / XBL text"


def test_unknown_127_code_is_a_listing_with_an_unrecognised_meaning():
    verdict = dnsbl.interpret(ZEN, Reply(0, ("127.0.0.77",)))
    assert (verdict.status, verdict.meanings) == (dnsbl.LISTED, (dnsbl.UNRECOGNISED,))


def test_bitmask_codes_decode_bit_by_bit():
    verdict = dnsbl.interpret(SURBL, Reply(0, ("127.0.0.24",)))
    assert verdict.meanings == ("PH", "MW")


def test_blocked_answer_of_a_domain_list_is_an_error_not_a_listing():
    verdict = dnsbl.interpret(SURBL, Reply(0, ("127.0.0.1",)))
    assert (verdict.status, verdict.error) == (dnsbl.UNKNOWN, dnsbl.ERROR_CODE)


def test_positive_code_that_lists_nothing_is_clean():
    karma = ListSpec("karma.test", codes={"127.0.0.2": "black"}, not_listing=("127.0.0.1",))
    assert dnsbl.interpret(karma, Reply(0, ("127.0.0.1",))).status == dnsbl.CLEAN


def test_self_test_probes_follow_rfc_5782():
    assert [p.target for p in dnsbl.self_test_probes(ZEN)] == [
        "127.0.0.2",
        "127.0.0.1",
        "::ffff:7f00:2",
        "::ffff:7f00:1",
    ]
    assert dnsbl.probe_name(ZEN, Probe("::ffff:7f00:2", dnsbl.MUST_LIST)).startswith(
        "2.0.0.0.0.0.f.7.f.f.f.f.0.0.0.0"
    )
    assert [p.target for p in dnsbl.self_test_probes(SURBL)] == ["test", "invalid"]


def _results(listed_2: str, listed_1: str) -> list[tuple[Probe, Verdict]]:
    return [
        (Probe("127.0.0.2", dnsbl.MUST_LIST), Verdict(listed_2, error="timeout")),
        (Probe("127.0.0.1", dnsbl.MUST_NOT_LIST), Verdict(listed_1)),
    ]


def test_self_test_passes_only_when_2_is_listed_and_1_is_not():
    assert dnsbl.self_test_failure(_results(dnsbl.LISTED, dnsbl.CLEAN)) == ""
    assert "everything" in dnsbl.self_test_failure(_results(dnsbl.LISTED, dnsbl.LISTED))
    assert "answers nothing" in dnsbl.self_test_failure(_results(dnsbl.CLEAN, dnsbl.CLEAN))
    assert "timeout" in dnsbl.self_test_failure(_results(dnsbl.UNKNOWN, dnsbl.CLEAN))


def test_access_key_must_be_one_lowercase_label():
    assert dnsbl.access_key_problem("abcdefghijklmnopqrstuvwxyz") == ""
    problem = dnsbl.access_key_problem("Secret.Key!")
    assert problem and "Secret" not in problem


V6ONLY = ListSpec("v6only.test", ipv4=False, ipv6=True)
BOTH = ListSpec("both.test", ipv6=True)
V4ONLY = ListSpec("v4.test")


@pytest.mark.parametrize(
    ("spec", "answers"),
    [
        (V4ONLY, {"192.0.2.1", "::ffff:192.0.2.1"}),
        (V6ONLY, {"2001:db8::1"}),
        (BOTH, {"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1"}),
        (SURBL, {"mail.example"}),
    ],
)
def test_list_applies_only_to_the_families_it_answers_for(spec, answers):
    targets = {"192.0.2.1", "::ffff:192.0.2.1", "2001:db8::1", "mail.example"}
    assert {t for t in targets if spec.applies_to(t)} == answers


def test_domain_list_ignores_both_address_flags():
    for flags in ({"ipv4": False, "ipv6": False}, {"ipv4": True, "ipv6": True}):
        names = ListSpec("dbl.test", kind=dnsbl.DOMAIN, **flags)
        assert names.applies_to("mail.example") and not names.applies_to("192.0.2.1")
        assert not names.applies_to("2001:db8::1")
        assert [p.target for p in dnsbl.self_test_probes(names)] == ["test", "invalid"]


@pytest.mark.parametrize(
    ("spec", "asked"),
    [
        (V4ONLY, [("127.0.0.2", dnsbl.MUST_LIST), ("127.0.0.1", dnsbl.MUST_NOT_LIST)]),
        (V6ONLY, [("::ffff:7f00:2", dnsbl.MUST_LIST), ("::ffff:7f00:1", dnsbl.MUST_NOT_LIST)]),
        (
            BOTH,
            [
                ("127.0.0.2", dnsbl.MUST_LIST),
                ("127.0.0.1", dnsbl.MUST_NOT_LIST),
                ("::ffff:7f00:2", dnsbl.MUST_LIST),
                ("::ffff:7f00:1", dnsbl.MUST_NOT_LIST),
            ],
        ),
    ],
)
def test_self_test_asks_only_the_test_points_of_the_families_a_list_answers_for(spec, asked):
    assert [(p.target, p.expect) for p in dnsbl.self_test_probes(spec)] == asked


def test_ipv6_only_list_self_test_names_are_nibbles_never_ipv4_octets():
    names = [dnsbl.probe_name(V6ONLY, p) for p in dnsbl.self_test_probes(V6ONLY)]
    assert all(len(name.split(".")) == 32 + 2 for name in names)
    assert names[0] == "2.0.0.0.0.0.f.7.f.f.f.f" + ".0" * 20 + ".v6only.test"
