"""Postfix throughput with and without Poolwarden, in one run, and the policy service alone.

    .venv/bin/python bench/postfix.py                      # 2,000 messages of 2 KB, 20 sessions
    .venv/bin/python bench/postfix.py --messages 500 --sessions 10

(a) messages per second through a real Postfix (its own `smtp-source` as the client, its own
    `smtp-sink` as the receiver): bare, with Poolwarden's milter on a unix socket and on TCP,
    with the policy service; as the ratio of bare throughput at `--sessions` sessions, and as
    the time added per message at one session (an SMTP transaction at a time). When `import
    Milter` works, the same milter on pymilter/libmilter (bench/pymilter_peer.py) runs as the
    peer, interleaved with ours. A message counts as delivered at its `status=sent` line in
    Postfix's log. Bare Postfix sends through a copy of the first generated `pw-*` transport
    (same source address binding, same options), so every variant pays the same bind cost.
    Beside each rate: CPU per message of the adapter's processes and of the instance's
    Postfix processes (the master and its children, from /proc), and the load average of
    each round.
(b) the policy service's requests per second on persistent unix-socket connections.
Everything stays on loopback: sender domains resolve through a test unbound on 127.0.0.1.
Run as root (Postfix's daemons drop to user postfix).
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.postfix_instance import PostfixInstance  # noqa: E402
from tests.support import LOOPBACK_POOLS, free_port, tree_cpu  # noqa: E402

WORK = Path(tempfile.mkdtemp(prefix="pw-bench-postfix-"))
WORK.chmod(0o755)
CPU_PER_MESSAGE: dict[str, float] = {}  # adapter process CPU seconds per message
POSTFIX_CPU_PER_MESSAGE: dict[str, float] = {}  # the same, Postfix's processes
ROUND_LOADS: list[float] = []  # the 1-minute load average at the end of each round
SENT_TIMEOUT = 300.0  # seconds for the last `status=sent` line of a batch to appear
TARGETS = {"milter": 0.80, "policyd": 0.90, "policyd_rps": 5_000, "added_ms": 5.0}
PEER = importlib.util.find_spec("Milter") is not None  # pymilter, for the peer
# variant: (adapter in Postfix, program, socket kind)
VARIANTS = {
    "bare": ("bare", "", ""),
    "milter": ("milter", "milter", "unix"),
    "milter-tcp": ("milter", "milter", "tcp"),
    "pymilter": ("milter", "peer", "unix"),
    "pymilter-tcp": ("milter", "peer", "tcp"),
    "policyd": ("policyd", "policyd", "unix"),
}
SENDER = "bench@both.test"
CONFIG = LOOPBACK_POOLS


def site_env(nameserver: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CACHE_URL")}
    env.pop("CELERY_BROKER_URL", None)
    env.update(POOLWARDEN_VAR_DIR=str(WORK / "var"), POOLWARDEN_NAMESERVERS=nameserver)
    return env


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.exit(f"manage.py {args[0]}: {result.stderr.strip()}")
    return result.stdout


def prepare_site(env: dict[str, str]) -> None:
    manage(env, "migrate", "--noinput")
    (WORK / "pools.toml").write_text(CONFIG)
    manage(env, "config_import", "--prune", str(WORK / "pools.toml"))


def start_daemon(env: dict[str, str], command: str, listen: str, *args: str) -> subprocess.Popen:
    """`manage.py <command>` (or the pymilter peer for "peer") on `listen` (unix:/path or
    127.0.0.1:port), once it accepts connections."""
    program = [str(REPO / "bench" / "pymilter_peer.py")] if command == "peer" else []
    program = program or ["manage.py", command]
    proc = subprocess.Popen(
        [sys.executable, *program, "--listen", listen, *args], cwd=REPO, env=env
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        if listening(listen):
            return proc
        time.sleep(0.05)
    sys.exit(f"{command} did not start")


def listening(listen: str) -> bool:
    if listen.startswith("unix:"):
        return os.path.exists(listen[5:])
    try:
        socket.create_connection(("127.0.0.1", int(listen.rsplit(":", 1)[1])), 1).close()
        return True
    except OSError:
        return False


def stop_daemon(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    if proc.wait(timeout=30) != 0:
        print(f"warning: {proc.args[2]} exited with {proc.returncode}")


class SmtpSink:
    """Postfix's smtp-sink on a free port (as user postfix, which it needs when root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["/usr/sbin/smtp-sink", "-u", "postfix", f"127.0.0.1:{self.port}", "256"]
        )
        wait_port(self.port)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_port(port: int) -> None:
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class SentCounter:
    """Counts `status=sent` lines that Postfix's log gains from now on."""

    def __init__(self, instance: PostfixInstance) -> None:
        self.path = instance.base / "maillog"
        self.offset = self.path.stat().st_size if self.path.exists() else 0
        self.sent, self.tail = 0, b""

    def read(self) -> int:
        if self.path.exists():
            with self.path.open("rb") as log:
                log.seek(self.offset)
                data = self.tail + log.read()
            self.offset += len(data) - len(self.tail)
            lines = data.split(b"\n")
            self.tail = lines.pop()  # a line still being written
            self.sent += sum(b" status=sent " in line for line in lines)
        return self.sent

    def wait_for(self, count: int, instance: PostfixInstance) -> None:
        deadline = time.monotonic() + SENT_TIMEOUT
        while self.read() < count:
            if time.monotonic() > deadline:
                sys.exit(
                    f"only {self.sent} of {count} sent in {SENT_TIMEOUT:.0f} s: {instance.base}"
                )
            time.sleep(0.02)


def bare_transport(master: str) -> str:
    """The first generated `pw-*` transport of `master`, renamed pw-bare: bare Postfix binds
    its source address with the very options the adapters' mail gets."""
    lines = master.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("pw-"))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i][:1].isspace()), None)
    name = lines[start].split()[0]
    block = "\n".join(lines[start:end]).replace(name, "pw-bare")
    return block + "\n"


def postfix_for(env: dict[str, str], sink_port: int, adapter: str, listen: str):
    """A started Postfix: bare (adapter "bare") or configured by `postfix_config`."""
    instance = PostfixInstance(relay_port=sink_port, smtpd_port=free_port(), base=None)
    instance.configure(main="smtpd_client_connection_count_limit = 0\n")
    if adapter == "bare":
        master = manage(env, "postfix_config", "--section", "master", "--adapter", "milter")
        instance.configure(main="default_transport = pw-bare\n", master=bare_transport(master))
    else:
        args = ["--adapter", adapter, f"--{adapter}", listen]
        args += ["--nexthop", f"[127.0.0.1]:{sink_port}"]
        checks = instance.base / "header_checks"
        args += ["--header-checks", str(checks)]
        for section in ("main", "master"):
            text = manage(env, "postfix_config", "--section", section, *args)
            instance.configure(**{section: text})
        if adapter == "milter":
            instance.files["header_checks"] = manage(
                env, "postfix_config", "--section", "header-checks", *args
            )
    instance.start()
    return instance


def deliver(instance: PostfixInstance, messages: int, sessions: int) -> tuple[float, float]:
    """(messages per second from the first SMTP connection until the last one's `status=sent`
    line, seconds per message that the SMTP client took)."""
    counter = SentCounter(instance)
    started = time.perf_counter()
    subprocess.run(
        [
            "/usr/sbin/smtp-source",
            "-s",
            str(sessions),
            "-m",
            str(messages),
            "-l",
            "2048",
            "-f",
            SENDER,
            "-t",
            "rcpt@sink.test",
            f"127.0.0.1:{instance.smtpd_port}",
        ],
        check=True,
        timeout=600,
    )
    submitted = time.perf_counter()
    counter.wait_for(messages, instance)
    return messages / (time.perf_counter() - started), (submitted - started) / messages


class Variant:
    """One Postfix (bare, or routing by an adapter on a unix socket or TCP) and its daemon."""

    def __init__(self, env: dict[str, str], sink_port: int, name: str):
        self.adapter, self.daemon = name, None
        adapter, program, kind = VARIANTS[name]
        listen = f"unix:{WORK / name}.sock" if kind == "unix" else f"127.0.0.1:{free_port()}"
        if program:
            extra = ("--nexthop", f"[127.0.0.1]:{sink_port}") if adapter == "policyd" else ()
            self.daemon = start_daemon(env, program, listen, *extra)
        self.instance = postfix_for(env, sink_port, adapter, listen)

    def cpu_seconds(self) -> float:
        """CPU used so far by the adapter's processes (0 for bare Postfix)."""
        return tree_cpu(self.daemon.pid) if self.daemon else 0.0

    def postfix_cpu_seconds(self) -> float:
        """CPU used so far by this instance's Postfix: its master and every descendant."""
        pid = (self.instance.base / "queue" / "pid" / "master.pid").read_text().split()[0]
        return tree_cpu(int(pid))

    def check_routed(self) -> None:
        expected = "postfix/pw-127-0-0-" if self.daemon else "postfix/pw-bare/"
        if expected not in self.instance.log():
            sys.exit(f"{self.adapter}: no delivery by {expected}; see the Postfix log")

    def stop(self) -> None:
        self.instance.cleanup()
        if self.daemon:
            stop_daemon(self.daemon)


def variant_names() -> list[str]:
    return [name for name, (_, program, _) in VARIANTS.items() if PEER or program != "peer"]


def postfix_rates(env, sink_port: int, messages: int, sessions: int, rounds: int) -> tuple:
    """Per variant, msgs/s at `sessions` sessions and SMTP seconds per message at one session,
    over `rounds` interleaved rounds (the machine is shared and CPU-bound: interleaving spreads
    any outside load over all variants alike)."""
    variants = [Variant(env, sink_port, name) for name in variant_names()]
    rates: dict[str, list[float]] = {v.adapter: [] for v in variants}
    latency: dict[str, list[float]] = {v.adapter: [] for v in variants}
    cpu = dict.fromkeys(rates, 0.0)
    postfix_cpu = dict.fromkeys(rates, 0.0)
    single = max(50, messages // 10)
    try:
        for variant in variants:
            deliver(variant.instance, min(200, messages), sessions)  # warm up
            variant.check_routed()
        for _ in range(rounds):
            for variant in list(variants):
                before = variant.cpu_seconds(), variant.postfix_cpu_seconds()
                if rate := survive(variants, variant, messages, sessions):
                    rates[variant.adapter].append(rate[0])
                    cpu[variant.adapter] += variant.cpu_seconds() - before[0]
                    postfix_cpu[variant.adapter] += variant.postfix_cpu_seconds() - before[1]
            for variant in list(variants):
                if timing := survive(variants, variant, single, 1):
                    latency[variant.adapter].append(timing[1])
            ROUND_LOADS.append(os.getloadavg()[0])
            print(f"round {len(ROUND_LOADS)} done, load average {load()}", flush=True)
    finally:
        for variant in variants:
            variant.stop()
    for name in rates:
        CPU_PER_MESSAGE[name] = cpu[name] / (messages * max(1, len(rates[name])))
        POSTFIX_CPU_PER_MESSAGE[name] = postfix_cpu[name] / (messages * max(1, len(rates[name])))
    return rates, latency


def survive(variants: list, variant, messages: int, sessions: int) -> tuple | None:
    """`deliver()`, or None when a peer's process died (it is dropped from the run)."""
    try:
        return deliver(variant.instance, messages, sessions)
    except subprocess.CalledProcessError:
        status = variant.daemon.poll() if variant.daemon else None
        if status is None or not variant.adapter.startswith("pymilter"):
            raise
        print(f"warning: the {variant.adapter} peer died (exit {status}); dropped from the run")
        variants.remove(variant)
        variant.instance.cleanup()
        return None


REQUEST = (
    b"request=smtpd_access_policy\nprotocol_state=DATA\nprotocol_name=ESMTP\n"
    b"client_address=192.0.2.10\nclient_name=client.test\nhelo_name=client.test\n"
    b"sender=%s\nrecipient=\nrecipient_count=1\nqueue_id=\nsize=2048\n\n"
)


def policy_client(path: str, count: int, index: int) -> None:
    sender = f"user{index}@both.test".encode() if index % 4 else b""
    request = REQUEST % sender
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        replies = sock.makefile("rb")
        for _ in range(count):
            sock.sendall(request)
            replies.readline()
            replies.readline()


def policyd_rate(env, connections: int = 4, per_connection: int = 5_000) -> float:
    sock = WORK / "policyd-rps.sock"
    daemon = start_daemon(env, "policyd", f"unix:{sock}")
    try:
        policy_client(str(sock), 200, 1)  # warm up
        clients = [
            multiprocessing.Process(target=policy_client, args=(str(sock), per_connection, i))
            for i in range(connections)
        ]
        started = time.perf_counter()
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        return connections * per_connection / (time.perf_counter() - started)
    finally:
        stop_daemon(daemon)


def report(runs: dict, latency: dict, rps: float, messages: int, sessions: int) -> None:
    runs = {name: values for name, values in runs.items() if values}
    latency = {name: values for name, values in latency.items() if values}
    rates = {name: statistics.median(values) for name, values in runs.items()}
    added = {
        name: (statistics.median(values) - statistics.median(latency["bare"])) * 1000
        for name, values in latency.items()
    }
    bare = rates["bare"]
    print(
        f"\n(a) Postfix, {messages} messages of 2 KB over {sessions} sessions (smtp-source), "
        f"median of {len(runs['bare'])} interleaved rounds; delivered = `status=sent` lines"
    )
    print(
        "    load average (1 min) after each round: " + ", ".join(f"{x:.2f}" for x in ROUND_LOADS)
    )
    for name, values in runs.items():
        print(f"    {name:13} rounds: " + ", ".join(f"{v:.0f}" for v in values))
    print(
        f"    {'bare Postfix':26} {bare:8.0f} msgs/s  (pw-bare transport); "
        f"CPU/msg: Postfix {POSTFIX_CPU_PER_MESSAGE['bare'] * 1000:.2f} ms"
    )
    for name in rates:
        if name == "bare":
            continue
        target = TARGETS["policyd" if name == "policyd" else "milter"]
        ratio = rates[name] / bare
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        peer = " (peer)" if name.startswith("pymilter") else ""
        print(
            f"    {'with ' + name + peer:26} {rates[name]:8.0f} msgs/s  "
            f"{ratio:6.1%} of bare (target >= {target:.0%}) {verdict}; "
            f"CPU/msg: {name} {CPU_PER_MESSAGE[name] * 1000:.2f} ms, "
            f"Postfix {POSTFIX_CPU_PER_MESSAGE[name] * 1000:.2f} ms"
        )
    print(
        f"\n    one session: bare {statistics.median(latency['bare']) * 1000:.2f} ms per SMTP "
        f"transaction; added per message (target <= {TARGETS['added_ms']:.0f} ms):"
    )
    for name in added:
        if name != "bare":
            verdict = "ok" if added[name] <= TARGETS["added_ms"] else "ABOVE TARGET"
            rounds = ", ".join(f"{v * 1000:.2f}" for v in latency[name])
            print(f"    {name:26} {added[name]:+6.2f} ms {verdict}  (rounds: {rounds} ms)")
    if not PEER:
        print("    (no pymilter peer: `.venv/bin/pip install pymilter` to run it too)")
    verdict = "ok" if rps >= TARGETS["policyd_rps"] else "BELOW TARGET"
    print("\n(b) policy service, 4 persistent unix-socket connections")
    print(f"    {rps:8.0f} requests/s (target >= {TARGETS['policyd_rps']:,}) {verdict}")
    print(f"\nload average at the end: {load()}")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    for tool in ("/usr/sbin/postfix", "/usr/sbin/smtp-source", "/usr/sbin/smtp-sink"):
        if not os.path.exists(tool):
            sys.exit(f"bench needs {tool}: apt-get install postfix")
    from tests.dns_server import serve

    try:
        (WORK / "dns").mkdir()
        with serve(WORK / "dns") as dns:
            env = site_env(dns.nameserver)
            prepare_site(env)
            print(f"load average at the start: {load()}")
            sink = SmtpSink()
            try:
                rates, latency = postfix_rates(env, sink.port, **vars(options))
            finally:
                sink.stop()
            rps = policyd_rate(env)
        report(rates, latency, rps, options.messages, options.sessions)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
