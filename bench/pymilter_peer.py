"""The peer for bench/postfix.py: Poolwarden's milter as it ran on pymilter (libmilter, a
thread per connection) before the pure-Python server. Same routing (`MessageState`,
`changes()`), same negotiated steps; only the protocol layer differs.

    .venv/bin/pip install pymilter    # needs gcc and libmilter-dev
    .venv/bin/python bench/pymilter_peer.py --listen unix:/tmp/peer.sock
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

import Milter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


class PeerMilter(Milter.Base):
    engine = None  # set by main()

    def __init__(self) -> None:
        from routing.mta.milter import MessageState

        self.new_state = MessageState
        self.state, self.limit = MessageState(), 0

    @Milter.noreply
    @Milter.decode("bytes")
    def header(self, name: str, value: bytes) -> int:
        self.state.add_header(name, value)
        return Milter.CONTINUE

    def body(self, chunk: bytes) -> int:
        from routing.mta.milter import body_limit

        if not self.limit:
            self.limit = body_limit(self.state, self.engine.snapshots.get()) or -1
        wanted = self.limit > 0 and self.state.body_size < self.limit
        if wanted and self.state.add_body(chunk, self.limit):
            return Milter.CONTINUE
        return Milter.SKIP if self._protocol & Milter.P_SKIP else Milter.CONTINUE

    def eom(self) -> int:
        from routing.mta.milter import changes

        state, self.state, self.limit = self.state, self.new_state(), 0
        state.mail_from = self.getsymval("{mail_addr}")
        rcpt = self.getsymval("{rcpt_addr}")
        state.rcpt_to = [rcpt] if rcpt else []
        state.source = self.getsymval("{auth_authen}") or ""
        try:
            result = changes(state, self.engine)
        except Exception:
            return Milter.TEMPFAIL
        if result.defer:
            self.setreply("451", "4.3.0", f"Poolwarden: {result.defer}, try again later")
            return Milter.TEMPFAIL
        for name, index in result.delete:
            self.chgheader(name, index, "")
        for name, value in result.add:
            self.addheader(name, value)
        return Milter.CONTINUE

    def abort(self) -> int:
        self.state, self.limit = self.new_state(), 0
        return Milter.CONTINUE


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="as `manage.py milter --listen`")
    options = parser.parse_args()
    # libmilter's signal thread must get the stop signals: block them before any thread.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT, signal.SIGHUP})
    import django

    django.setup()
    from routing.engine import get_engine, stop_engine
    from routing.mta.postfix import parse_listen

    where = parse_listen(options.listen)
    PeerMilter.engine = get_engine()
    PeerMilter.engine.snapshots.get()
    Milter.factory = PeerMilter
    if where.path:
        os.umask(0o111)  # Postfix connects as another user
    Milter.set_flags(Milter.ADDHDRS | Milter.CHGHDRS)
    try:
        Milter.runmilter("poolwarden-peer", where.libmilter, 60)
    finally:
        stop_engine()


if __name__ == "__main__":
    main()
