"""A plain TCP proxy for tests that can make the broker "go away" for a while.

The embedded Tansu broker keeps its records in memory, so killing it loses them; an outage is
emulated instead by this proxy in front of it (Tansu advertises the proxy's address, so every
client connection goes through it). :meth:`PausableProxy.pause` closes every connection it
carries and stops listening (clients see connection refused, as with a broker that is down);
:meth:`PausableProxy.resume` listens again. It runs an asyncio loop in a daemon thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class PausableProxy:
    """Forward ``127.0.0.1:listen_port`` to ``127.0.0.1:target_port``, pausable."""

    def __init__(self, listen_port: int, target_port: int) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> PausableProxy:
        self._thread.start()
        self._call(self._listen())
        return self

    def __exit__(self, *exc: object) -> None:
        self._call(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)

    def pause(self) -> None:
        """Drop every connection and refuse new ones until :meth:`resume`."""
        self._call(self._stop())

    def resume(self) -> None:
        self._call(self._listen())

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(
                self._handle, "127.0.0.1", self.listen_port, reuse_address=True
            )

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for w in list(self._writers):
            w.transport.abort()  # a reset, as when the broker's host goes away
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()  # one side ended: end the other

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}
        for w in (writer, up_writer):
            w.transport.abort()
