"""A local rtl_tcp server for tests and benchmarks: the wire protocol of ``src/rtl_tcp.c``.

Upstream: osmocom ``rtl-sdr`` (https://gitea.osmocom.org/sdr/rtl-sdr, mirror
github.com/osmocom/rtl-sdr), file ``src/rtl_tcp.c``. What it does on the wire, reproduced
byte for byte here:

* on accept, the 12-byte ``dongle_info_t``: ``b"RTL0"``, tuner type (u32 BE), number of
  tuner gains (u32 BE) — here an R820T (5) with 29 gains, as a typical dongle reports;
* then an endless stream of unsigned 8-bit I, Q pairs (zero at 127.5) in blocks, with no
  framing;
* it reads 5-byte commands (u8 command, u32 BE parameter), applies them (0x01 frequency,
  0x02 sample rate; the others are recorded only) and never answers. Its defaults are
  100 MHz and 2.048 MS/s (``rtl_tcp -f``, ``-s``).

The signal is synthetic: tones at absolute frequencies (each appears at
``f_tone − f_centre`` in baseband once the client has tuned) plus complex white Gaussian
noise and an optional DC offset (the dongle's spike at the tuned frequency), quantised as
the RTL2832U does (``round(127.5 + 127.5 x)``, clipped to 0..255).
Knobs reproduce the failures the adapter must survive: a greeting that is not rtl_tcp's
(``malformed_header``), a disconnection in the middle of an I/Q pair (``cut_after_bytes``),
a server that stops sending but keeps the connection (``stall_after_bytes``).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["RtlTcpTestServer", "Tone"]


@dataclass(frozen=True)
class Tone:
    """A carrier at an absolute frequency (Hz) with a complex amplitude magnitude (FS = 1)."""

    freq_hz: float
    amplitude: float


@dataclass
class _Conn:
    index: int
    bytes_sent: int = 0


@dataclass
class RtlTcpTestServer:
    """An asyncio rtl_tcp stand-in on ``host:port`` (port 0: a free port, see :attr:`port`).

    Parameters
    ----------
    tones : sequence of Tone
        Carriers in the air.
    noise_rms : float
        RMS of the complex noise (per complex sample, full scale 1).
    dc : complex
        A constant added to every sample: the dongle's DC spike at the tuned frequency.
    realtime : bool
        Pace the samples at the sample rate (True) or send as fast as TCP takes them.
    block_bytes : int
        Bytes per send (rtl_tcp sends the dongle's USB buffers, 256 KiB by default; smaller
        here so that the pacing is smooth).
    malformed_header : bool
        Greet with an HTTP error instead of ``RTL0`` (a client pointed at a web server).
    cut_after_bytes : int, optional
        Close the first ``cut_connections`` connections after this many sample bytes (odd:
        in the middle of an I/Q pair).
    stall_after_bytes : int, optional
        Stop sending (but keep the connection open) after this many sample bytes, on the
        first ``stall_connections`` connections.
    loop_s : float, optional
        Benchmarks: compute this much signal once per tuning and send it in a loop (cheap
        for the server at high rates; the tones jump in phase where the loop restarts).
    """

    tones: Sequence[Tone] = ()
    noise_rms: float = 0.02
    dc: complex = 0j
    tuner_type: int = 5
    gain_count: int = 29
    center_freq_hz: float = 100e6
    sample_rate_hz: float = 2_048_000.0
    realtime: bool = True
    block_bytes: int = 16384
    malformed_header: bool = False
    cut_after_bytes: int | None = None
    cut_connections: int = 1
    stall_after_bytes: int | None = None
    stall_connections: int = 1
    seed: int = 0
    loop_s: float | None = None
    host: str = "127.0.0.1"
    port: int = 0
    #: (command byte, parameter) of every command received, in order.
    commands: list[tuple[int, int]] = field(default_factory=list)
    #: The raw bytes of every command received.
    raw_commands: bytearray = field(default_factory=bytearray)
    #: (time.monotonic(), command, parameter): when each command arrived.
    command_times: list[tuple[float, int, int]] = field(default_factory=list)
    connections: int = 0
    bytes_sent: int = 0

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._rng = np.random.default_rng(self.seed)
        self._phases = [0.0] * len(self.tones)
        self._handlers: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop_key: tuple[float, float] | None = None
        self._loop_bytes = b""
        self._loop_pos = 0

    async def start(self) -> RtlTcpTestServer:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        """Stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
        for w in list(self._writers):
            w.close()
        for t in list(self._handlers):
            t.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> RtlTcpTestServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # ------------------------------------------------------------------ protocol

    def header(self) -> bytes:
        """``dongle_info_t``: magic, tuner type, gain count (u32 big-endian each)."""
        return b"RTL0" + struct.pack(">II", self.tuner_type, self.gain_count)

    def samples(self, n: int) -> bytes:
        """The next ``n`` I/Q pairs as rtl-sdr bytes, phase-continuous tones plus noise."""
        if self.loop_s:
            key = (self.center_freq_hz, self.sample_rate_hz)
            if key != self._loop_key:
                self._loop_key = key
                total = max(n, round(self.loop_s * self.sample_rate_hz))
                self._loop_bytes = self._generate(total) * 2
                self._loop_pos = 0
            half = len(self._loop_bytes) // 2
            out = self._loop_bytes[self._loop_pos : self._loop_pos + 2 * n]
            self._loop_pos = (self._loop_pos + 2 * n) % half
            return out
        return self._generate(n)

    def _generate(self, n: int) -> bytes:
        fs = self.sample_rate_hz
        k = np.arange(n, dtype=np.float64)
        x = np.full(n, self.dc, dtype=np.complex128)
        for i, tone in enumerate(self.tones):
            w = 2 * np.pi * (tone.freq_hz - self.center_freq_hz) / fs
            x += tone.amplitude * np.exp(1j * (self._phases[i] + w * k))
            self._phases[i] = (self._phases[i] + w * n) % (2 * np.pi)
        if self.noise_rms:
            s = self.noise_rms / np.sqrt(2)
            x += s * (self._rng.standard_normal(n) + 1j * self._rng.standard_normal(n))
        iq = np.empty(2 * n, dtype=np.float64)
        iq[0::2] = x.real
        iq[1::2] = x.imag
        return np.clip(np.rint(127.5 + 127.5 * iq), 0, 255).astype(np.uint8).tobytes()

    async def _read_commands(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                raw = await reader.readexactly(5)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            cmd, param = struct.unpack(">BI", raw)
            self.raw_commands += raw
            self.commands.append((cmd, param))
            self.command_times.append((time.monotonic(), cmd, param))
            if cmd == 0x01:
                self.center_freq_hz = float(param)
            elif cmd == 0x02:
                self.sample_rate_hz = float(param)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._writers.add(writer)
        self.connections += 1
        conn = _Conn(self.connections)
        commands = asyncio.create_task(self._read_commands(reader))
        try:
            if self.malformed_header:
                writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(self.header())
            await writer.drain()
            await self._stream(writer, conn, commands)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            commands.cancel()
            with contextlib.suppress(BaseException):
                await commands
            writer.close()
            self._writers.discard(writer)
            if task is not None:
                self._handlers.discard(task)

    async def _stream(
        self, writer: asyncio.StreamWriter, conn: _Conn, commands: asyncio.Task[None]
    ) -> None:
        cut = self.cut_after_bytes if conn.index <= self.cut_connections else None
        stall = self.stall_after_bytes if conn.index <= self.stall_connections else None
        limits = [x for x in (cut, stall) if x is not None]
        limit = min(limits) if limits else None
        t0 = time.monotonic()
        signal_s = 0.0  # duration of the samples sent, at the rate in force when sent
        while True:
            block = self.samples(self.block_bytes // 2)
            if limit is not None and conn.bytes_sent + len(block) >= limit:
                block = block[: limit - conn.bytes_sent]
                writer.write(block)
                conn.bytes_sent += len(block)
                self.bytes_sent += len(block)
                await writer.drain()
                if cut is not None and conn.bytes_sent >= cut:
                    return  # closes in the middle of a pair when cut is odd
                await commands  # stalled: wait for the client to give up
                return
            writer.write(block)
            await writer.drain()
            conn.bytes_sent += len(block)
            self.bytes_sent += len(block)
            signal_s += len(block) / 2 / self.sample_rate_hz
            if self.realtime:
                ahead = t0 + signal_s - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            else:
                await asyncio.sleep(0)
