"""A loopback TCP proxy whose link to the server can fail on demand, for outage tests and
bench/outage.py: in front of PostgreSQL or Redis, switched at run time between

- `pass`: bytes flow both ways;
- `cut`: every open connection is reset and new ones are refused (the server is down);
- `hang`: connections are accepted and kept, but nothing is forwarded either way (a
  blackholed network); on `pass` the held bytes flow on, as after a healed partition.

Asyncio in a daemon thread; `mode` may be set from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading

MODES = ("pass", "cut", "hang")
CHUNK = 65536


class TcpProxy:
    def __init__(self, upstream: tuple[str, int], *, host: str = "127.0.0.1", port: int = 0):
        self.upstream, self.host, self.port = upstream, host, port
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy", daemon=True)
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()  # both ends of every open connection
        self.flowing: asyncio.Event | None = None  # set unless hanging
        self._mode = "pass"
        self.accepted = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> TcpProxy:
        self.thread.start()
        self.call(self._start)
        return self

    def stop(self) -> None:
        self.call(self._close_all)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.call(self._switch, mode)

    def call(self, coroutine_function, *args):
        """Run a coroutine on the proxy's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine_function(*args), self.loop).result(10)

    async def _start(self) -> None:
        self.flowing = asyncio.Event()
        self.flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        # The same port again after a cut: clients keep the address they were given.
        self.server = await asyncio.start_server(
            self._accept, self.host, self.port, reuse_address=True
        )
        self.port = self.server.sockets[0].getsockname()[1]

    async def _switch(self, mode: str) -> None:
        previous, self._mode = self._mode, mode
        if mode == "hang":
            self.flowing.clear()
            return
        self.flowing.set()
        if mode == "cut":
            self.server.close()
            await self.server.wait_closed()
            self.server = None
            self._reset_all()
        elif previous == "cut":
            await self._listen()

    def _reset_all(self) -> None:
        for writer in list(self.writers):
            reset(writer)
        self.writers.clear()

    async def _close_all(self) -> None:
        if self.server is not None:
            self.server.close()
        self._reset_all()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.add(writer)
        try:
            await self.flowing.wait()  # a connection made during a hang is held, not forwarded
            if self._mode != "pass":
                return
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except (OSError, asyncio.CancelledError):
            reset(writer)
            self.writers.discard(writer)
            return
        self.writers.add(up_writer)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        for end in (writer, up_writer):
            self.writers.discard(end)
            end.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self.flowing.wait()  # hang: hold the bytes until the link heals
                if self._mode == "cut":
                    return
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except OSError:
            reset(writer)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST rather than a FIN, as a crashed server or a rebooted firewall."""
    sock = writer.get_extra_info("socket")
    with contextlib.suppress(OSError):
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
