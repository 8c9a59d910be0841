"""An asyncio milter server on TCP or a unix socket: one task per MTA connection, reading a
packet, acting on it and answering, until the MTA quits or stays silent for `timeout` seconds.

The filter's end of message is decided in the event loop when that needs no I/O (the
common case); otherwise (routing that may wait on DNS or the database) it runs in a bounded
thread pool, so a slow message holds up only its own connection. A broken packet closes its
connection, never the server. `run()` serves until SIGTERM, SIGINT or SIGHUP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from routing.mta.milter_protocol import (
    ABORT,
    BODY,
    BODYEOB,
    CONTINUE,
    HEADER,
    IGNORED,
    MACRO,
    NR_HDR,
    OPTNEG,
    P_SKIP,
    QUIT,
    QUIT_NC,
    SKIP,
    TEMPFAIL,
    Macros,
    Packets,
    ProtocolError,
    negotiate,
    options,
    packet,
    strings,
)
from routing.mta.postfix import Listen, unix_listener

logger = logging.getLogger(__name__)
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
# Postfix's default_process_limit: one message at its end per smtpd process, none queued.
THREADS = 100
REPLY_CONTINUE, REPLY_SKIP, REPLY_TEMPFAIL = packet(CONTINUE), packet(SKIP), packet(TEMPFAIL)
QUICKACK = getattr(socket, "TCP_QUICKACK", 0)  # Linux only
READ_SIZE = 256 * 1024


class Filter(Protocol):
    """What the server asks of a filter, one instance per MTA connection."""

    def header(self, name: str, value: bytes) -> None: ...

    def body(self, chunk: bytes) -> bool:
        """Take a body chunk; False once no more of the body is needed."""

    def end_of_message_now(self, macros: Macros) -> list[bytes] | None:
        """The reply packets when they need no I/O (runs in the event loop), else None."""

    def end_of_message(self, macros: Macros) -> list[bytes]:
        """The reply packets (edits, then the decision); runs in a worker thread."""

    def abort(self) -> None: ...


class Session(asyncio.Protocol):
    """One MTA connection; the MTA waits for each reply before its next command. Packets are
    handled as they arrive (no task or stream per connection: the loop calls us)."""

    def __init__(self, server: MilterServer) -> None:
        self.server = server
        self.filter = server.factory()
        self.macros = Macros()
        self.packets = Packets()
        self.steps: int | None = None  # the negotiated SMFIP_* flags, once OPTNEG is done
        self.transport: asyncio.Transport | None = None
        self.sock: socket.socket | None = None
        self.tcp = False
        self.routing: asyncio.Future | None = None  # an end of message in a worker thread
        self.last = 0.0  # loop time of the last bytes read, for the idle timeout

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.sock = transport.get_extra_info("socket")
        self.tcp = self.sock.family in (socket.AF_INET, socket.AF_INET6)
        if self.tcp:
            # Replies are small and the MTA waits for each: never hold one back (Nagle).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.last = self.server.loop.time()
        self.server.sessions.add(self)

    def connection_lost(self, exc) -> None:
        self.server.sessions.discard(self)
        if self.routing is None:
            self.filter.abort()

    def data_received(self, data: bytes) -> None:
        self.last = self.server.loop.time()
        self.packets.feed(data)
        self.answer()

    def answer(self) -> None:
        """Answer the packets that have come (the MTA may send several that need no reply
        at once: macros, headers), up to an end of message that must wait for a thread."""
        replies: list[bytes] = []
        try:
            while self.routing is None and (item := self.packets.next()) is not None:
                command, data = item
                if command == QUIT:
                    self.close()
                    return
                if command == BODYEOB:
                    replies += self.end_of_message()
                else:
                    replies += self.handle(command, data)
        except ProtocolError as exc:
            logger.warning("milter: %s; connection closed", exc)
            self.close()
            return
        if replies:
            self.transport.write(b"".join(replies))
        if self.tcp and QUICKACK and self.routing is None:
            # Postfix writes a command's macros and the command itself separately, and
            # Nagle's algorithm on its side holds the second until the first is
            # acknowledged: acknowledge at once, not after Linux's 40 ms delayed ACK.
            # Linux leaves quick-ACK mode by itself, hence before every read.
            self.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)

    def handle(self, command: bytes, data: bytes) -> list[bytes]:
        if command == OPTNEG:
            version, actions, self.steps = negotiate(
                data, actions=self.server.actions, steps=self.server.steps
            )
            return [options(version, actions, self.steps)]
        steps = self.negotiated(command)
        if command == MACRO:
            self.macros.define(data)
            return []
        if command == HEADER:
            name, value = strings(data, 2)
            self.filter.header(name.decode("ascii", "replace"), value)
            return [] if steps & NR_HDR else [REPLY_CONTINUE]
        if command == BODY:
            more = self.filter.body(data)
            return [REPLY_SKIP if not more and steps & P_SKIP else REPLY_CONTINUE]
        if command == ABORT:
            self.filter.abort()
            self.macros.end_message()
            return []
        if command == QUIT_NC:  # the MTA reuses this socket for a new SMTP connection
            self.filter, self.macros = self.server.factory(), Macros()
            return []
        if command in IGNORED:
            return [REPLY_CONTINUE]
        raise ProtocolError(f"unknown command {command!r}")

    def negotiated(self, command: bytes) -> int:
        if self.steps is None:
            raise ProtocolError(f"command {command!r} before OPTNEG")
        return self.steps

    def end_of_message(self) -> list[bytes]:
        """The replies when the filter decides at once; otherwise [] and the decision is
        made in a worker thread, reading paused until it is written."""
        self.negotiated(BODYEOB)
        try:
            now = self.filter.end_of_message_now(self.macros)
        except Exception:  # a filter bug: the message waits, the connection goes on
            logger.exception("milter: end of message failed; message deferred")
            now = [REPLY_TEMPFAIL]
        if now is not None:
            self.macros.end_message()
            return now
        self.transport.pause_reading()
        self.routing = self.server.loop.run_in_executor(
            self.server.executor, self.filter.end_of_message, self.macros
        )
        self.routing.add_done_callback(self.routed)
        return []

    def routed(self, future: asyncio.Future) -> None:
        self.routing = None
        self.macros.end_message()
        if future.cancelled():
            return
        if future.exception() is not None:  # a filter bug: the message waits
            logger.error(
                "milter: end of message failed; message deferred", exc_info=future.exception()
            )
            replies = [REPLY_TEMPFAIL]
        else:
            replies = future.result()
        if self.transport.is_closing():
            return
        self.transport.write(b"".join(replies))
        self.last = self.server.loop.time()
        self.transport.resume_reading()
        self.answer()  # anything that came with the end of message

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class MilterServer:
    """`start()` binds and serves in the running event loop; `stop()` closes every connection,
    lets the routing in progress finish and removes the unix socket."""

    def __init__(
        self,
        factory: Callable[[], Filter],
        *,
        actions: int,
        steps: int,
        timeout: float = 60.0,
        threads: int = THREADS,
    ) -> None:
        self.factory, self.actions, self.steps, self.timeout = factory, actions, steps, timeout
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="milter")
        self.server: asyncio.AbstractServer | None = None
        self.sessions: set[Session] = set()
        self.path = ""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.reaper: asyncio.TimerHandle | None = None

    async def start(self, listen: Listen) -> None:
        """Raises OSError when `listen` cannot be used."""
        self.loop = asyncio.get_running_loop()
        if listen.path:
            self.server = await self.loop.create_unix_server(
                lambda: Session(self), sock=unix_listener(listen.path)
            )
            self.path = listen.path
        else:
            self.server = await self.loop.create_server(
                lambda: Session(self), listen.host, listen.port, reuse_address=True
            )
        self.reap()

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self.server.sockets) if self.server else []

    def reap(self) -> None:
        """Close connections silent for `timeout` seconds (not those waiting for routing),
        checking a few times per timeout: one timer for all, not one per packet."""
        now = self.loop.time()
        for session in list(self.sessions):
            if session.routing is None and now - session.last >= self.timeout:
                logger.info("milter: the MTA was silent for %s s; connection closed", self.timeout)
                session.close()
        self.reaper = self.loop.call_later(min(self.timeout / 4, 5.0), self.reap)

    async def stop(self) -> None:
        if self.reaper is not None:
            self.reaper.cancel()
        if self.server is not None:
            self.server.close()
        for session in list(self.sessions):
            session.close()
        await asyncio.sleep(0)  # let the transports call connection_lost
        await self.loop.run_in_executor(None, self.executor.shutdown)  # routing in progress
        if self.path:
            remove_socket(self.path)


def remove_socket(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)


def run(server: MilterServer, listen: Listen) -> None:
    """Serve on `listen` until SIGTERM, SIGINT or SIGHUP, then stop cleanly and return.
    Raises OSError when `listen` cannot be used."""

    async def main() -> None:
        loop, stopping = asyncio.get_running_loop(), asyncio.Event()
        for signum in STOP_SIGNALS:
            loop.add_signal_handler(signum, stopping.set)
        try:
            await server.start(listen)
            await stopping.wait()
        finally:
            for signum in STOP_SIGNALS:
                loop.remove_signal_handler(signum)
            await server.stop()

    asyncio.run(main())
