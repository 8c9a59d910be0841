"""Spam scores from trusted headers: each filter's format, topmost copy only."""

from __future__ import annotations

import email

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import scores


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("X-Spam-Score", "7.3", 7.3),
        ("X-Spam-Score", " -1.9 (-)", -1.9),
        ("X-Spam-Score", "12 (++++++++++++)", 12.0),
        ("X-Spam-Status", "Yes, score=7.3 required=5.0 tests=BAYES_99,URIBL_BLACK", 7.3),
        ("X-Spam-Status", "No, score=-0.1 required=5.0 tests=DKIM_SIGNED autolearn=ham", -0.1),
        ("x-spam-status", "No, hits=2.5 required=5.0", 2.5),
        ("X-Spam-Status", "Yes, score=7.3\n\trequired=5.0", 7.3),
        ("X-Rspamd-Score", "9.80", 9.8),
        ("X-Spamd-Result", "default: True [10.90 / 15.00]; BAYES_SPAM(5.10)[99.99%]", 10.9),
        ("X-Spamd-Result", "default: False [-2.00 / 15.00]", -2.0),
        ("X-Custom-Score", "score=4.2", 4.2),
        ("X-Custom-Score", "3.5", 3.5),
    ],
)
def test_each_filter_format_is_parsed(header, value, expected):
    assert scores.parse_score(header, value) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("X-Spam-Score", "high"),
        ("X-Spam-Status", "Yes, required=5.0"),
        ("X-Spamd-Result", "default: True"),
        ("X-Spam-Score", ""),
    ],
)
def test_values_without_a_score_give_none(header, value):
    assert scores.parse_score(header, value) is None


def test_only_the_topmost_copy_counts():
    msg = email.message_from_string(
        "X-Spam-Status: Yes, score=9.1 required=5.0\n"
        "X-Spam-Status: No, score=-5.0 required=5.0\n"  # a client's forged copy, further down
        "Subject: x\n\nbody\n"
    )
    score, source, problems = scores.score_from_headers(msg, ["X-Spam-Status"])
    assert (score, source, problems) == (9.1, "header:X-Spam-Status", [])


def test_first_trusted_header_present_wins_and_untrusted_ones_are_ignored():
    msg = email.message_from_string(
        "X-Rspamd-Score: 1.0\nX-Spam-Score: 8.0\nX-Evil-Score: 99\n\nbody\n"
    )
    assert scores.score_from_headers(msg, ["X-Spam-Score", "X-Rspamd-Score"])[0] == 8.0
    assert scores.score_from_headers(msg, ["X-Rspamd-Score", "X-Spam-Score"])[0] == 1.0
    assert scores.score_from_headers(msg, [])[0] is None


def test_unparsable_trusted_header_is_a_problem_and_the_next_one_is_tried():
    msg = email.message_from_string("X-Spam-Score: lots\nX-Rspamd-Score: 6.5\n\nbody\n")
    score, source, problems = scores.score_from_headers(msg, ["X-Spam-Score", "X-Rspamd-Score"])
    assert (score, source) == (6.5, "header:X-Rspamd-Score")
    assert problems == ["X-Spam-Score: no score in 'lots'"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1000.5", 1000.0), ("-5000", -1000.0), ("9" * 400, 1000.0), ("-" + "9" * 400, -1000.0)],
)
def test_a_score_beyond_a_thousand_is_clamped_with_a_problem(value, expected):
    msg = email.message_from_string(f"X-Spam-Score: {value}\n\nbody\n")
    score, source, problems = scores.score_from_headers(msg, ["X-Spam-Score"])
    assert (score, source) == (expected, "header:X-Spam-Score")
    assert len(problems) == 1 and problems[0].endswith("beyond ±1000, clamped")


def test_a_score_of_a_thousand_is_kept_as_it_is():
    msg = email.message_from_string("X-Spam-Score: -1000\n\nbody\n")
    assert scores.score_from_headers(msg, ["X-Spam-Score"]) == (-1000.0, "header:X-Spam-Score", [])


def test_header_list_validation():
    assert scores.header_list_problems(["X-Spam-Score"]) == []
    assert scores.header_list_problems("X-Spam-Score") == ["expected a list of header names"]
    assert scores.header_list_problems(["X Spam", 3]) == [
        "'X Spam' is not a header name",
        "3 is not a header name",
    ]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200), st.sampled_from(["X-Spam-Status", "X-Spamd-Result", "X-Other"]))
def test_any_header_text_gives_a_score_within_a_thousand_or_none(value, header):
    msg = email.message_from_string(f"{header}: {value}\n\nbody\n")
    score = scores.score_from_headers(msg, [header])[0]
    assert score is None or (isinstance(score, float) and abs(score) <= scores.MAX_SCORE)
