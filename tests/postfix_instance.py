"""A real Postfix instance of its own, and an SMTP sink that records where mail came from.

`PostfixInstance` writes main.cf/master.cf into a temporary directory (own queue and data
directories, loopback only, no DNS, a literal relayhost) and runs `postfix -c DIR start`.
`Sink` is an aiosmtpd server recording each message with the source address and the HELO
name of the connection that delivered it. Used by tests/e2e/test_postfix.py and bench/postfix.py.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"
NORMAL = ("127.0.0.2", "127.0.0.4")  # the test pools' addresses (all on lo)
HIGH_RISK = "127.0.0.3"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
DAEMONS = "/usr/lib/postfix/sbin"

MASTER_CF = """\
{listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def main_cf(base: Path, *, relay_port: int, smtpd_port: int) -> str:
    return f"""\
compatibility_level = 3.6
queue_directory = {base}/queue
data_directory = {base}/data
command_directory = /usr/sbin
daemon_directory = {DAEMONS}
shlib_directory = /usr/lib/postfix
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = pw-test-{smtpd_port}.localdomain
mydomain = localdomain
myorigin = $myhostname
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 no local delivery here
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{relay_port}
smtp_dns_support_level = disabled
smtputf8_enable = no
biff = no
maillog_file_prefixes = /var, /dev/stdout, {base}
maillog_file = {base}/maillog
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
smtp_connection_cache_on_demand = no
default_destination_concurrency_limit = 50
"""


class PostfixInstance:
    """Postfix in `base` (created world-traversable: the daemons run as user postfix)."""

    def __init__(self, *, relay_port: int, smtpd_port: int, base: Path | None = None):
        self.base = base or Path(tempfile.mkdtemp(prefix="pw-postfix-"))
        self.base.chmod(0o755)
        self.relay_port, self.smtpd_port = relay_port, smtpd_port
        self.main_lines: list[str] = []
        self.master_lines: list[str] = []
        self.files: dict[str, str] = {}

    def configure(self, *, main: str = "", master: str = "", **files: str) -> None:
        """Add main.cf and master.cf lines, and files (written as base/<name>)."""
        self.main_lines.append(main)
        self.master_lines.append(master)
        self.files.update(files)

    def write(self) -> None:
        for name in ("queue", "data"):
            (self.base / name).mkdir(exist_ok=True)
            shutil.chown(self.base / name, "postfix", "postfix")
        for name, text in self.files.items():
            (self.base / name).write_text(text)
        main = main_cf(self.base, relay_port=self.relay_port, smtpd_port=self.smtpd_port)
        (self.base / "main.cf").write_text(main + "\n".join(self.main_lines) + "\n")
        master = MASTER_CF.format(listen=f"127.0.0.1:{self.smtpd_port}")
        (self.base / "master.cf").write_text(master + "\n".join(self.master_lines) + "\n")

    def postfix(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run(
            [POSTFIX, "-c", str(self.base), *args], capture_output=True, text=True, timeout=60
        )
        if check and result.returncode != 0:
            raise AssertionError(f"postfix {' '.join(args)}: {result.stderr}{self.log()[-2000:]}")
        return result

    def start(self) -> None:
        self.write()
        self.postfix("set-permissions", check=False)
        self.postfix("start")
        self.wait_listening()

    def wait_listening(self, timeout: float = 20) -> None:
        import socket

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.smtpd_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"postfix did not listen on {self.smtpd_port}: {self.log()}")

    def flush(self) -> None:
        subprocess.run(
            ["/usr/sbin/postqueue", "-c", str(self.base), "-f"], capture_output=True, timeout=30
        )

    def stop(self) -> None:
        if self.postfix("stop", check=False).returncode != 0:
            self.postfix("abort", check=False)

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass(frozen=True)
class Delivery:
    source: str  # the address the delivering connection came from
    mail_from: str
    rcpt_to: tuple[str, ...]
    data: bytes
    helo: str = ""  # the name the delivering client gave in HELO/EHLO


class SinkHandler:
    """Records each message; refuses recipients whose local part is `reject` (a 5xx)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.arrived = threading.Condition()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.partition("@")[0] == "reject":
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        delivery = Delivery(
            source=session.peer[0],
            mail_from=envelope.mail_from,
            rcpt_to=tuple(envelope.rcpt_tos),
            data=envelope.original_content or envelope.content,
            helo=session.host_name or "",
        )
        with self.arrived:
            self.deliveries.append(delivery)
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, predicate, timeout: float = 30) -> Delivery:
        """The first delivery matching `predicate`, waiting up to `timeout` seconds."""
        with self.arrived:
            found = self.arrived.wait_for(
                lambda: next((d for d in self.deliveries if predicate(d)), None), timeout
            )
        if found is None:
            raise AssertionError(f"no matching delivery within {timeout} s: {self.deliveries}")
        return found


class Sink:
    """An aiosmtpd server on 127.0.0.1:`port` in a thread."""

    def __init__(self, port: int):
        from aiosmtpd.controller import Controller

        self.handler = SinkHandler()
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=port, decode_data=False
        )
        self.port = port

    def __enter__(self) -> SinkHandler:
        self.controller.start()
        return self.handler

    def __exit__(self, *exc) -> None:
        self.controller.stop()
