"""Postfix configuration for the configured pools, as pure functions over pool addresses.

One smtp transport per source address (`pw-127-0-0-3` for 127.0.0.3) that defers its mail
when it cannot bind that address and says the address's own HELO name, a
`milter_header_checks` regexp table that turns the milter's `X-Delivery-Pool: <pool> <address>`
header into `FILTER <transport>:`, the milter lines (Postfix's own bounces pass the milter too)
or the policy service lines, and the null-sender map as the bounces' fallback.
`postfix_config` prints them; docs/postfix.md explains them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

POOL_HEADER = "X-Delivery-Pool"
REASONS_HEADER = "X-Delivery-Reasons"
HEADER_CHECKS_PATH = "/etc/postfix/poolwarden_header_checks"
MILTER_SOCKET = "unix:/var/spool/postfix/poolwarden/milter"
POLICYD_SOCKET = "unix:/var/spool/postfix/poolwarden/policy"
ADAPTERS = ("milter", "policyd")
# In policyd mode nothing of ours adds these headers: any copy comes from a client.
STRIP_OWN_HEADERS = f"regexp:{{ {{/^({POOL_HEADER}|{REASONS_HEADER}):/ IGNORE}} }}"


@dataclass(frozen=True)
class SourceAddress:
    pool: str
    kind: str  # "normal" or "high-risk"
    address: str
    in_rotation: bool = True
    hostname: str = ""  # HELO name; "" = Postfix's $myhostname


@dataclass(frozen=True)
class Options:
    adapter: str = "milter"  # which adapter decides: "milter" or "policyd"
    milter: str = MILTER_SOCKET  # Postfix syntax: unix:/path or inet:host:port
    policyd: str = POLICYD_SOCKET
    header_checks: str = HEADER_CHECKS_PATH
    nexthop: str = ""  # "" = the recipient domain (FILTER) or relayhost (bounces)


class ListenError(ValueError):
    """A `--listen` value that is not inet:HOST:PORT, HOST:PORT or unix:/path (nor one of
    libmilter's spellings)."""


@dataclass(frozen=True)
class Listen:
    """Where an adapter listens: TCP (host, port) or a unix socket (path)."""

    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def postfix(self) -> str:
        """As main.cf writes it (smtpd_milters, check_policy_service)."""
        if self.path:
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"inet:{host}:{self.port}"

    @property
    def libmilter(self) -> str:
        if self.path:
            return f"unix:{self.path}"
        family = "inet6" if ":" in self.host else "inet"
        return f"{family}:{self.port}@{self.host}"


def unix_listener(path: str, backlog: int = 128) -> socket.socket:
    """A listening unix socket at `path` that appears already writable by everyone (Postfix
    runs as another user; the directory guards it): bound under a temporary name, opened up,
    then renamed into place, so neither Postfix nor anyone else sees it half made. A stale
    socket at `path` from an earlier run is replaced. Raises OSError."""
    with contextlib.suppress(FileNotFoundError):
        if not stat.S_ISSOCK(os.stat(path).st_mode):
            raise FileExistsError(f"{path} exists and is not a socket")
    temporary = f"{path}.{os.getpid()}.new"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(temporary)
        os.chmod(temporary, 0o666)
        sock.listen(backlog)
        os.replace(temporary, path)
    except OSError:
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return sock


def parse_listen(text: str) -> Listen:
    """`inet:HOST:PORT`, `HOST:PORT` (IPv6 in brackets) or `unix:/absolute/path`; also
    libmilter's spellings `inet:PORT@HOST`, `inet6:PORT@HOST` and `local:/absolute/path`."""
    if text.startswith("local:"):
        text = "unix:" + text.removeprefix("local:")
    if libmilter := re.fullmatch(r"inet6?:(\d+)@(.+)", text):
        port, host = libmilter.groups()
        text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if text.startswith("unix:"):
        path = text[5:]
        if not path.startswith("/"):
            raise ListenError(f"{text!r}: a unix socket needs an absolute path (unix:/path)")
        return Listen(path=path)
    spec = text.removeprefix("inet:")
    host, colon, port = spec.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"{text!r}: expected HOST:PORT, inet:HOST:PORT or unix:/path")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}", host):
            raise ListenError(f"{text!r}: {host!r} is not a host name or address") from None
    return Listen(host=host, port=int(port))


def postfix_socket(text: str) -> str:
    return parse_listen(text).postfix


def transport_name(address: str) -> str:
    """The master.cf service name for one source address: `pw-` and the address, with dashes."""
    return "pw-" + re.sub(r"[.:]", "-", ipaddress.ip_address(address).compressed)


def pool_header_value(pool: str, address: str) -> str:
    """What the milter writes in X-Delivery-Pool; the header checks match on the address."""
    return f"{pool} {address}"


def filter_action(address: str, nexthop: str = "") -> str:
    return f"FILTER {transport_name(address)}:{nexthop}"


def high_risk_address(addresses: Sequence[SourceAddress]) -> SourceAddress | None:
    """The address for Postfix's own bounces: the high-risk pool's first one in rotation."""
    risky = [a for a in addresses if a.kind == "high-risk"]
    return next((a for a in risky if a.in_rotation), risky[0] if risky else None)


def master_cf(addresses: Iterable[SourceAddress]) -> list[str]:
    """master.cf services: one smtp client per source address. An address that cannot be
    bound defers its mail (Postfix 3.7+) rather than leaving by the host's default address."""
    lines = ["# One smtp client per pool address, saying the address's HELO name (PTR = A)"]
    for source in addresses:
        name = transport_name(source.address)
        bind = "smtp_bind_address6" if ":" in source.address else "smtp_bind_address"
        lines += [
            f"# pool {source.pool} ({source.kind})",
            f"{name} unix - - n - - smtp",
            f"  -o {bind}={source.address}",
            "  -o smtp_bind_address_enforce=yes",
            f"  -o smtp_helo_name={source.hostname or '$myhostname'}",
            f"  -o syslog_name=postfix/{name}",
        ]
    return lines


def header_checks(addresses: Iterable[SourceAddress], nexthop: str = "") -> list[str]:
    """The milter_header_checks regexp table: each pool address to its transport."""
    lines = [f"# {POOL_HEADER}: <pool> <address>, added by the Poolwarden milter"]
    for source in addresses:
        pattern = rf"^{POOL_HEADER}:\s*\S+\s+{re.escape(source.address)}\s*$"
        lines.append(f"/{pattern}/ {filter_action(source.address, nexthop)}")
    return lines


def null_sender_map(addresses: Sequence[SourceAddress], nexthop: str = "") -> str:
    """The sender_dependent_default_transport_maps value sending `<>` by the high-risk pool."""
    risky = high_risk_address(addresses)
    if risky is None:
        return ""
    target = transport_name(risky.address) + (f":{nexthop}" if nexthop else "")
    return f"inline:{{ {{<>={target}}} }}"


def main_cf(addresses: Sequence[SourceAddress], options: Options) -> list[str]:
    """main.cf lines for the chosen adapter, the bounce map and the header checks."""
    if options.adapter == "milter":
        lines = ["# Fallback while the milter is down: Postfix's own bounces by the high-risk pool"]
    else:
        lines = ["# Postfix's own bounces (null sender) leave by the high-risk pool"]
    bounces = null_sender_map(addresses, options.nexthop)
    if bounces:
        lines.append(f"sender_dependent_default_transport_maps = {bounces}")
    else:
        lines.append("# (no high-risk pool address configured: bounces use default_transport)")
    if options.adapter == "policyd":
        return lines + policyd_main_cf(options)
    return lines + milter_main_cf(options)


def milter_main_cf(options: Options) -> list[str]:
    return [
        "# The Poolwarden milter adds X-Delivery-Pool; its header checks pick the transport.",
        f"smtpd_milters = {options.milter}",
        "milter_protocol = 6",
        "# While Poolwarden is down mail waits (4xx) instead of leaving by the wrong pool.",
        "milter_default_action = tempfail",
        f"milter_header_checks = regexp:{options.header_checks}",
        "# Postfix's own bounces (and sendmail's mail) pass the milter too: routed and counted.",
        "# While it is down they are accepted and leave by the null-sender map above.",
        "internal_mail_filter_classes = bounce",
        f"non_smtpd_milters = {{ {options.milter}, default_action=accept }}",
    ]


def policyd_main_cf(options: Options) -> list[str]:
    return [
        "# Envelope-only routing: the Poolwarden policy service answers FILTER <transport>:",
        f"smtpd_data_restrictions = check_policy_service {options.policyd}",
        "# While Poolwarden is down mail waits (4xx) instead of leaving by the wrong pool.",
        "smtpd_policy_service_default_action = 451 4.3.5 Poolwarden policy service unavailable",
        "# Clients' copies of the pool headers go: recipients never see a forged pool",
        f"header_checks = {STRIP_OWN_HEADERS}",
    ]


def render(addresses: Sequence[SourceAddress], options: Options, section: str = "all") -> str:
    """The configuration as text: one section ("main", "master", "header-checks") or all."""
    parts = {
        "main": ("main.cf", main_cf(addresses, options)),
        "master": ("master.cf", master_cf(addresses)),
        "header-checks": (
            f"{options.header_checks} (postfix reload after a change)",
            header_checks(addresses, options.nexthop),
        ),
    }
    if options.adapter == "policyd":
        del parts["header-checks"]
    if section != "all":
        return "\n".join(parts[section][1]) + "\n"
    blocks = [f"# ---- {title} ----\n" + "\n".join(lines) for title, lines in parts.values()]
    return "\n\n".join(blocks) + "\n"


def load_addresses() -> list[SourceAddress]:
    """Every address of every pool, in rotation or not: rotation changes need no reload."""
    from routing.models import PoolAddress

    rows = PoolAddress.objects.select_related("pool").order_by("pool__kind", "pool__name", "id")
    return [
        SourceAddress(row.pool.name, row.pool.kind, row.address, row.in_rotation, row.hostname)
        for row in rows
    ]
