"""Hostile input for the routing engine and the API: the cases of issue 14, and hypothesis
strategies for API requests (shared by tests/routing/test_api_hostile.py and bench/fuzz_api.py).
"""

from __future__ import annotations

from hypothesis import strategies as st

REPORT_TOP = (
    "From: MAILER-DAEMON@mx.example.net\n"
    "MIME-Version: 1.0\n"
    'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\n\n'
)
STATUS_PART = (
    "--R\nContent-Type: message/delivery-status\n\n"
    "Reporting-MTA: dns; mx.example.net\n\n"
    "Final-Recipient: rfc822; nobody@example.org\nAction: failed\nStatus: 5.1.1\n\n"
)


def nested_multipart_report(depth: int) -> str:
    """A report whose first part is `depth` multiparts inside each other."""
    opening = "".join(
        f'--{i}\nContent-Type: multipart/mixed; boundary="{i + 1}"\n\n' for i in range(depth)
    )
    closing = "".join(f"\n--{i}--\n" for i in reversed(range(depth + 1)))
    return REPORT_TOP.replace('"R"', '"0"') + opening + "--" + str(depth) + "\n\nx\n" + closing


def nested_rfc822_report(depth: int) -> str:
    """A report whose returned message holds a message/rfc822 `depth` levels deep."""
    inner = "Content-Type: message/rfc822\n\n" * depth + "From: z@example.com\n\nhi\n"
    return REPORT_TOP + STATUS_PART + "--R\nContent-Type: message/rfc822\n\n" + inner + "--R--\n"


def many_parts_report(parts: int) -> str:
    """A report with `parts` text parts before its delivery-status part."""
    return REPORT_TOP + "--R\nContent-Type: text/plain\n\nx\n" * parts + STATUS_PART + "--R--\n"


def many_recipients_report(recipients: int) -> str:
    """A report whose delivery-status part lists `recipients` recipient blocks."""
    blocks = "".join(
        f"Final-Recipient: rfc822; user{n}@example.org\nAction: failed\nStatus: 5.1.1\n\n"
        for n in range(recipients)
    )
    return REPORT_TOP + STATUS_PART + blocks + "--R--\n"


def nested_json(depth: int) -> str:
    """A route request with a list `depth` levels deep as its rcpt_to."""
    return '{"mail_from": "a@example.com", "rcpt_to": ' + "[" * depth + "]" * depth + "}"


# --- hypothesis strategies -----------------------------------------------------------------

EXTREME_NUMBERS = st.one_of(
    st.floats(),  # NaN and the infinities too: json.dumps writes them, json.loads reads them
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([1e308, -1e308, 5e-324, 0.0, -0.0, 1000, 1000.0001, -1000, 2**63, 2**1000]),
)
# Lone surrogates too: valid JSON escapes ("\ud800"), but not text.
TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=300)
ADDRESS = st.one_of(
    TEXT,
    st.sampled_from(["", "<>", "a@b", "@", "a@[127.0.0.1]", "a@" + "x" * 300, "a@-.test"]),
    st.emails().map(str),
)
MESSAGE = st.one_of(
    TEXT,
    st.builds(nested_multipart_report, st.integers(0, 60)),
    st.builds(nested_rfc822_report, st.integers(0, 60)),
    st.builds(many_parts_report, st.integers(0, 3000)),
    st.builds(many_recipients_report, st.integers(0, 3000)),
)
JSON = st.recursive(
    st.none() | st.booleans() | EXTREME_NUMBERS | TEXT,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(TEXT, children, max_size=5),
    max_leaves=20,
)
# Every field with the right type, and values at the edges.
VALID_TYPED = st.fixed_dictionaries(
    {"mail_from": ADDRESS},
    optional={
        "rcpt_to": st.lists(ADDRESS, max_size=20),
        "message": MESSAGE,
        "spam_score": EXTREME_NUMBERS,
        "source": TEXT,
    },
)
# Anything: known fields with values of any type, or any JSON at all.
ANY_JSON = st.one_of(
    st.fixed_dictionaries(
        {},
        optional={
            name: JSON for name in ("mail_from", "rcpt_to", "message", "spam_score", "source")
        },
    ),
    JSON,
)
BODY = st.one_of(VALID_TYPED, ANY_JSON)
# Bodies that are not a JSON object, or not JSON at all.
RAW_BODY = st.one_of(
    st.binary(max_size=2000),
    st.text(st.sampled_from('[]{}",:\\ 0123456789.eE-+truefalsn'), max_size=2000),
    st.builds(nested_json, st.integers(0, 5000)),
)
