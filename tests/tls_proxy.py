"""A TLS-terminating TCP proxy for tests: the embedded Tansu broker cannot serve TLS itself
(see README "Security"), so TLS tests put this proxy in front of it and make Tansu advertise
the proxy's address. Clients then speak TLS (optionally with a client certificate, mutual
TLS) to the proxy, which forwards the plain Kafka bytes to Tansu on loopback.

It runs an asyncio loop in a daemon thread; :meth:`TlsProxy.close` stops it and joins it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path


class TlsProxy:
    """Listen with TLS on ``127.0.0.1:listen_port``, forward to ``127.0.0.1:target_port``.

    Parameters
    ----------
    cert, key
        The server's certificate and key (PEM).
    client_ca
        With a CA file, clients must present a certificate it signed (mutual TLS).
    """

    def __init__(
        self,
        listen_port: int,
        target_port: int,
        cert: Path,
        key: Path,
        client_ca: Path | None = None,
    ) -> None:
        self.listen_port = listen_port
        self.target_port = target_port
        self.ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ctx.load_cert_chain(str(cert), str(key))
        if client_ca is not None:
            self.ctx.load_verify_locations(str(client_ca))
            self.ctx.verify_mode = ssl.CERT_REQUIRED
        self.connections = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="tls-proxy", daemon=True)

    def start(self) -> TlsProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("TLS proxy did not start")
        return self

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.listen_port, ssl=self.ctx
        )
        self._ready.set()
        async with server:
            await self._stop.wait()
            server.close()
            for task in asyncio.all_tasks() - {asyncio.current_task()}:
                task.cancel()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, ssl.SSLError, asyncio.IncompleteReadError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        await asyncio.gather(pump(reader, up_w), pump(up_r, writer), return_exceptions=True)

    def __enter__(self) -> TlsProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
