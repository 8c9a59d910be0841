"""Fixtures for the Postfix end-to-end tests (test_postfix.py): a site with loopback pools,
spamd, the milter and the policy service as `manage.py` processes, the sink, and two Postfix
instances (one routing by the milter, one by the policy service). All module-scoped: started
once, stopped cleanly."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.conftest import Site
from tests.postfix_instance import POSTFIX, PostfixInstance, Sink
from tests.support import LOOPBACK_POOLS, REPO, free_port, require_tool

SPAMD = "/usr/sbin/spamd"

CONFIG = (
    """\
[routing]
spam_threshold = 5.0
trusted_score_headers = ["X-Spam-Score"]
spamd_enabled = {spamd_enabled}
spamd_address = "127.0.0.1:{spamd_port}"
spamd_timeout = 10.0

"""
    + LOOPBACK_POOLS
)
SPAMD_CF = "use_bayes 0\nbayes_auto_learn 0\nskip_rbl_checks 1\n"


def wait_port(port: int | str, proc: subprocess.Popen, timeout: float = 60) -> None:
    """Until something listens on loopback `port` or on the unix socket at path `port`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args} exited with {proc.returncode}")
        try:
            if isinstance(port, str):
                with socket.socket(socket.AF_UNIX) as client:
                    client.connect(port)
            else:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {timeout} s")


class Daemon:
    """`manage.py <command> --listen 127.0.0.1:<port>` (or `unix:<path>`) of a site,
    restartable."""

    def __init__(self, site: Site, command: str, *args: str, path: str = ""):
        self.site, self.command, self.args = site, command, args
        self.port, self.path = free_port(), path
        self.listen = f"unix:{path}" if path else f"127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 - lives with the daemon; a pipe could fill

    def start(self) -> None:
        self.stderr.seek(0)
        self.stderr.truncate()
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", self.command, "--listen", self.listen, *self.args],
            cwd=REPO,
            env=self.site.env,
            stderr=self.stderr,
        )
        wait_port(self.path or self.port, self.proc)

    def stop(self) -> None:
        """SIGTERM; the daemon must exit 0 without a traceback."""
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        self.stderr.seek(0)
        stderr = self.stderr.read()
        assert self.proc.returncode == 0, stderr
        assert "Traceback" not in stderr, stderr


def require(group: str, path: str) -> None:
    require_tool(group, path, install=f"apt-get install {group}")


@pytest.fixture(scope="module")
def spamd():
    """A real spamd on a free loopback port, local tests only; yields the port."""
    require("spamassassin", SPAMD)
    home = Path(tempfile.mkdtemp(prefix="pw-spamd-"))
    for pre in Path("/etc/spamassassin").glob("*.pre"):  # the plugins that make a scanner
        shutil.copy(pre, home)
    (home / "local.cf").write_text(SPAMD_CF)
    shutil.chown(home, "nobody")
    port = free_port()
    proc = subprocess.Popen(
        [
            SPAMD,
            f"--listen=127.0.0.1:{port}",
            "--max-children=2",
            "--local",
            "--nouser-config",
            "--username=nobody",
            f"--siteconfigpath={home}",
            f"--helper-home-dir={home}",
            f"--pidfile={home}/spamd.pid",
            "--syslog=stderr",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)


def make_site(
    site_template: Site, base: Path, dns_server, spamd_port: int | None, config: str = CONFIG
) -> Site:
    var_dir = base / "site-var"
    shutil.copytree(site_template.env["POOLWARDEN_VAR_DIR"], var_dir)
    site = Site(var_dir)
    site.env["POOLWARDEN_NAMESERVERS"] = dns_server.nameserver
    site.env["POOLWARDEN_DNS_TIMEOUT"] = "2"
    site.env["POOLWARDEN_FLUSH_INTERVAL"] = "3600"  # counters reach the database only on stop
    config = config.format(
        spamd_enabled=str(spamd_port is not None).lower(), spamd_port=spamd_port or 783
    )
    (base / "poolwarden.toml").write_text(config)
    result = site.manage("config_import", "--prune", str(base / "poolwarden.toml"))
    assert result.returncode == 0, result.stderr
    return site


@pytest.fixture(scope="module")
def mail_site(site_template, tmp_path_factory, dns_server, spamd):
    """A migrated site whose pools are on loopback and whose milter asks the test spamd."""
    return make_site(site_template, tmp_path_factory.mktemp("mail-site"), dns_server, spamd)


@pytest.fixture(scope="module")
def sink():
    port = free_port()
    with Sink(port) as handler:
        handler.port = port
        yield handler


@pytest.fixture(scope="module")
def milter(mail_site):
    daemon = Daemon(mail_site, "milter")
    daemon.start()
    yield daemon
    daemon.stop()


@pytest.fixture(scope="module")
def policyd(mail_site, sink):
    daemon = Daemon(mail_site, "policyd", "--nexthop", f"[127.0.0.1]:{sink.port}")
    daemon.start()
    yield daemon
    daemon.stop()


def configured_postfix(site: Site, sink, *args: str, main: str = "") -> PostfixInstance:
    """A started Postfix configured from `postfix_config` output (sections main, master and,
    for the milter, header-checks), plus the `main` lines given."""
    require("postfix", POSTFIX)
    instance = PostfixInstance(relay_port=sink.port, smtpd_port=free_port())
    common = [*args, "--nexthop", f"[127.0.0.1]:{sink.port}"]
    checks = instance.base / "header_checks"
    common += ["--header-checks", str(checks)]
    sections = {}
    for section in ("main", "master", "header-checks"):
        if section == "header-checks" and "policyd" in args:
            continue
        result = site.manage("postfix_config", "--section", section, *common)
        assert result.returncode == 0, result.stderr
        sections[section] = result.stdout
    instance.configure(main=sections["main"] + main, master=sections["master"])
    if "header-checks" in sections:
        instance.files["header_checks"] = sections["header-checks"]
    instance.start()
    return instance


@pytest.fixture(scope="module")
def milter_postfix(mail_site, milter, sink):
    instance = configured_postfix(mail_site, sink, "--milter", f"127.0.0.1:{milter.port}")
    yield instance
    instance.cleanup()


@pytest.fixture(scope="module")
def policyd_postfix(mail_site, policyd, sink):
    instance = configured_postfix(
        mail_site, sink, "--adapter", "policyd", "--policyd", f"127.0.0.1:{policyd.port}"
    )
    yield instance
    instance.cleanup()
