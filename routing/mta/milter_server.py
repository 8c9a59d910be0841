"""An asyncio milter server on TCP or a unix socket: one task per MTA connection, reading a
packet, acting on it and answering, until the MTA quits or stays silent for `timeout` seconds.

The filter's end of message (routing, which may wait on DNS) runs in a bounded thread pool,
so a slow message holds up only its own connection. A broken packet closes its connection,
never the server. `run()` serves until SIGTERM, SIGINT or SIGHUP.
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
from routing.mta.postfix import Listen

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

    def end_of_message(self, macros: Macros) -> list[bytes]:
        """The reply packets (edits, then the decision); runs in a worker thread."""

    def abort(self) -> None: ...


class Session:
    """One MTA connection; the MTA waits for each reply before its next command."""

    def __init__(self, server: MilterServer, reader, writer) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.filter = server.factory()
        self.macros = Macros()
        self.steps: int | None = None  # the negotiated SMFIP_* flags, once OPTNEG is done
        self.sock = writer.get_extra_info("socket")
        self.tcp = self.sock.family in (socket.AF_INET, socket.AF_INET6)
        if self.tcp:
            # Replies are small and the MTA waits for each: never hold one back (Nagle).
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def run(self) -> None:
        """Answer what has come, then read more (the MTA may send several packets that
        need no reply at once: macros, headers); returns when the MTA quits or closes."""
        packets = Packets()
        while True:
            replies: list[bytes] = []
            while (item := packets.next()) is not None:
                command, data = item
                if command == QUIT:
                    return
                if command == BODYEOB:
                    replies += await self.end_of_message()
                else:
                    replies += self.handle(command, data)
            if replies:
                self.writer.write(b"".join(replies))
                await self.writer.drain()
            if self.tcp and QUICKACK:
                # Postfix writes a command's macros and the command itself separately, and
                # Nagle's algorithm on its side holds the second until the first is
                # acknowledged: acknowledge at once, not after Linux's 40 ms delayed ACK.
                # Linux leaves quick-ACK mode by itself, hence before every read.
                self.sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            async with asyncio.timeout(self.server.timeout):
                chunk = await self.reader.read(READ_SIZE)
            if not chunk:
                return  # the MTA closed the connection (in a packet or not: nothing to do)
            packets.feed(chunk)

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

    async def end_of_message(self) -> list[bytes]:
        self.negotiated(BODYEOB)
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(
                self.server.executor, self.filter.end_of_message, self.macros
            )
        except Exception:  # a filter bug: the message waits, the connection goes on
            logger.exception("milter: end of message failed; message deferred")
            return [REPLY_TEMPFAIL]
        finally:
            self.macros.end_message()


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
        self.sessions: dict[Session, asyncio.Task] = {}
        self.path = ""

    async def start(self, listen: Listen) -> None:
        """Raises OSError when `listen` cannot be used."""
        if listen.path:
            remove_socket(listen.path)  # a stale one from an earlier run
            self.server = await asyncio.start_unix_server(self.connected, path=listen.path)
            self.path = listen.path
            os.chmod(listen.path, 0o666)  # Postfix runs as another user; guard the directory
        else:
            self.server = await asyncio.start_server(
                self.connected, listen.host, listen.port, reuse_address=True
            )

    @property
    def sockets(self) -> list[socket.socket]:
        return list(self.server.sockets) if self.server else []

    async def connected(self, reader, writer) -> None:
        session = Session(self, reader, writer)
        self.sessions[session] = asyncio.current_task()
        try:
            await session.run()
        except ConnectionError:
            pass  # the MTA went away
        except asyncio.CancelledError:
            pass  # stop(): end quietly (3.11's stream callback logs a cancelled task as an error)
        except TimeoutError:
            logger.info("milter: the MTA was silent for %s s; connection closed", self.timeout)
        except ProtocolError as exc:
            logger.warning("milter: %s; connection closed", exc)
        except Exception:
            logger.exception("milter: connection failed")
        finally:
            del self.sessions[session]
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
        tasks = list(self.sessions.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.executor.shutdown(wait=True)  # what is being routed is counted before the flush
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
