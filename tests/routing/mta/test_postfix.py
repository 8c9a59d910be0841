"""The Postfix configuration generator and `manage.py postfix_config`."""

from __future__ import annotations

import os
import re
import socket
import stat

import pytest
from django.core.management import CommandError, call_command

from routing.mta.postfix import (
    ListenError,
    Options,
    SourceAddress,
    header_checks,
    main_cf,
    master_cf,
    null_sender_map,
    parse_listen,
    render,
    transport_name,
    unix_listener,
)

ADDRESSES = [
    SourceAddress("normal", "normal", "192.0.2.1", hostname="mail1.example.net"),
    SourceAddress("normal", "normal", "2001:db8::25"),
    SourceAddress("risky", "high-risk", "198.51.100.1", in_rotation=False),
    SourceAddress("risky", "high-risk", "198.51.100.2"),
]


def test_each_address_gets_a_transport_named_after_it():
    assert transport_name("192.0.2.1") == "pw-192-0-2-1"
    assert transport_name("2001:0db8::0025") == "pw-2001-db8--25"


def test_master_cf_binds_each_transport_to_its_address():
    text = "\n".join(master_cf(ADDRESSES))
    assert "pw-192-0-2-1 unix - - n - - smtp\n  -o smtp_bind_address=192.0.2.1" in text
    assert "  -o smtp_bind_address6=2001:db8::25" in text


def test_every_transport_defers_when_its_address_cannot_be_bound():
    text = "\n".join(master_cf(ADDRESSES))
    assert text.count("  -o smtp_bind_address_enforce=yes") == len(ADDRESSES)


def test_each_transport_says_its_address_hostname_else_myhostname():
    helo = [line.strip() for line in master_cf(ADDRESSES) if "smtp_helo_name" in line]
    assert helo == [
        "-o smtp_helo_name=mail1.example.net",
        *["-o smtp_helo_name=$myhostname"] * 3,
    ]


def test_header_checks_map_the_pool_header_to_the_address_transport():
    table = header_checks(ADDRESSES, nexthop="[relay.test]:25")
    rule = next(line for line in table if "198" in line and "\\.2" in line)
    pattern, action = re.fullmatch(r"/(.*)/ (.*)", rule).groups()
    assert action == "FILTER pw-198-51-100-2:[relay.test]:25"
    assert re.match(pattern, "X-Delivery-Pool: risky 198.51.100.2", re.IGNORECASE)
    assert not re.match(pattern, "X-Delivery-Pool: risky 198.51.100.22", re.IGNORECASE)


def test_bounces_use_the_first_high_risk_address_in_rotation():
    assert null_sender_map(ADDRESSES) == "inline:{ {<>=pw-198-51-100-2} }"
    assert null_sender_map(ADDRESSES[:2]) == ""


def test_milter_lines_defer_mail_while_poolwarden_is_down():
    lines = main_cf(ADDRESSES, Options(milter="unix:/run/pw/milter"))
    assert "smtpd_milters = unix:/run/pw/milter" in lines
    assert "milter_default_action = tempfail" in lines
    assert any(line.startswith("sender_dependent_default_transport_maps = ") for line in lines)


def test_postfix_bounces_pass_the_milter_and_fall_back_to_the_map_while_it_is_down():
    lines = main_cf(ADDRESSES, Options(milter="unix:/run/pw/milter"))
    assert "internal_mail_filter_classes = bounce" in lines
    assert "non_smtpd_milters = { unix:/run/pw/milter, default_action=accept }" in lines


def test_the_adapters_default_to_unix_sockets():
    assert Options().milter.startswith("unix:/") and Options().policyd.startswith("unix:/")


def test_policyd_lines_use_a_data_restriction_and_no_header_table():
    text = render(ADDRESSES, Options(adapter="policyd", policyd="inet:127.0.0.1:9"))
    assert "smtpd_data_restrictions = check_policy_service inet:127.0.0.1:9" in text
    assert "milter" not in text.replace("Poolwarden", "")


def test_policyd_lines_strip_client_copies_of_the_pool_headers():
    lines = main_cf(ADDRESSES, Options(adapter="policyd"))
    value = next(line for line in lines if line.startswith("header_checks = "))
    pattern = re.search(r"/(.*)/ IGNORE", value)[1]
    for header in ("X-Delivery-Pool: normal 192.0.2.1", "x-delivery-reasons: none"):
        assert re.match(pattern, header, re.IGNORECASE)
    assert not re.match(pattern, "X-Delivery-Poolside: 1", re.IGNORECASE)


@pytest.mark.parametrize(
    ("text", "postfix", "libmilter"),
    [
        ("127.0.0.1:8891", "inet:127.0.0.1:8891", "inet:8891@127.0.0.1"),
        ("inet:localhost:8891", "inet:localhost:8891", "inet:8891@localhost"),
        ("[::1]:8891", "inet:[::1]:8891", "inet6:8891@::1"),
        ("unix:/run/pw.sock", "unix:/run/pw.sock", "unix:/run/pw.sock"),
    ],
)
def test_listen_values_in_both_syntaxes(text, postfix, libmilter):
    listen = parse_listen(text)
    assert (listen.postfix, listen.libmilter) == (postfix, libmilter)
    assert parse_listen(libmilter) == listen  # libmilter's spelling is accepted too


def test_libmilter_local_socket_spelling_is_a_unix_socket():
    assert parse_listen("local:/run/pw.sock").path == "/run/pw.sock"


@pytest.mark.parametrize(
    "text", ["8891", "host:", ":8891", "h:99999", "unix:rel", "a b:1", "inet:x@h", "local:rel"]
)
def test_bad_listen_values_are_refused(text):
    with pytest.raises(ListenError):
        parse_listen(text)


@pytest.mark.django_db
def test_command_prints_every_section_for_the_configured_pools(capsys):
    call_command("postfix_config", "--milter", "127.0.0.1:7000")
    out = capsys.readouterr().out
    for title in ("# ---- main.cf ----", "# ---- master.cf ----", "poolwarden_header_checks"):
        assert title in out
    assert "smtpd_milters = inet:127.0.0.1:7000" in out
    assert "pw-198-51-100-1 unix" in out


@pytest.mark.django_db
def test_command_refuses_a_bad_socket_with_status_2():
    with pytest.raises(CommandError) as error:
        call_command("postfix_config", "--milter", "nowhere")
    assert error.value.returncode == 2


@pytest.mark.django_db
def test_command_writes_each_address_hostname_as_its_helo(capsys):
    from routing.models import PoolAddress

    PoolAddress.objects.filter(address="198.51.100.1").update(hostname="out1.example.net")
    call_command("postfix_config", "--section", "master")
    out = capsys.readouterr().out
    assert "-o smtp_bind_address=198.51.100.1\n  -o smtp_bind_address_enforce=yes\n" in out
    assert "  -o smtp_helo_name=out1.example.net\n" in out


def test_a_unix_listener_appears_writable_replaces_a_stale_socket_and_spares_other_files(tmp_path):
    path = tmp_path / "milter"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # left behind by a run that died
    stale.close()
    sock = unix_listener(str(path))
    try:
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and mode & 0o666 == 0o666
        assert sorted(p.name for p in tmp_path.iterdir()) == ["milter"]  # no temporary left
        client = socket.socket(socket.AF_UNIX)
        client.connect(str(path))
        client.close()
    finally:
        sock.close()
    path.unlink()
    path.write_text("not a socket")
    with pytest.raises(FileExistsError):
        unix_listener(str(path))
    assert path.read_text() == "not a socket"
