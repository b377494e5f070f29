"""A local KiwiSDR for tests and benchmarks: the SND websocket of ``rx/rx_sound.cpp``.

Upstream: KiwiSDR firmware (github.com/jks-prv/Beagle_SDR_GPS) ``rx/rx_sound.cpp`` (the MSG
lines sent on connect, the SND frame: ``snd_pkt_iq_t`` of ``rx/rx_sound.h``, the S-meter
coding, the flags), ``rx/rx_sound_cmd.cpp`` (the ``SET`` commands it parses); and the client
that defines what a client sends, github.com/jks-prv/kiwiclient ``kiwi/client.py`` and
``kiwirecorder.py``. Reproduced here on the wire:

* ``/<timestamp>/SND`` only (anything else: HTTP 404); binary messages tagged ``MSG``/``SND``;
* waits for ``SET auth t=kiwi p=<password>``; a wrong password gets ``MSG badp=1`` and a close,
  a full server ``MSG too_busy=<n>``; otherwise the MSG lines (``version_maj``/``version_min``,
  ``center_freq``/``bandwidth``/``adc_clk_nom``, ``audio_init``/``audio_rate``,
  ``sample_rate``), then waits for ``SET mod=iq ...`` and streams;
* SND frames of 512 I/Q pairs at ``sample_rate`` (real-time paced): flags 0x08 (IQ), seq u32 LE,
  S-meter u16 BE = ``(dBm + 127)·10`` with dBm = ``full_scale_dbm + 10 log10(mean |x|²)``
  of the frame, ``last_gps_solution``, a dummy byte, ``gpssec``/``gpsnsec`` u32 LE: the GPS
  time of the frame's first sample (from the host clock at the start of the stream, advanced
  at exactly ``sample_rate``; the first frame carries a stale stamp, as the firmware's does),
  then big-endian int16 I, Q of tones + complex noise;
* records every text command (:attr:`received`) and the true UTC time of every frame's first
  sample (:attr:`frame_times_ns`).

Knobs: ``malformed_every`` (a short SND, an audio-mode SND and an unknown tag), ``cut_after_frames``
(a TCP drop in the middle of a frame), ``stall_after_frames``, ``last_gps_solution`` (255: no GPS),
``not_kiwi`` (greets with something else).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from heimdall.producers.recordings.gpstime import NS_PER_S, SECONDS_PER_WEEK, utc_ns_to_gps_ns

from .openwebrx_server import Tone, frame_header

__all__ = ["KiwiTestServer", "Tone"]

FRAME_SAMPLES = 512
_PATH = re.compile(r"^/\d+/SND$")


@dataclass
class KiwiTestServer:
    """An asyncio KiwiSDR stand-in on ``ws://host:port/<ts>/SND`` (port 0: a free port)."""

    tones: Sequence[Tone] = ()
    noise_rms: float = 0.01
    full_scale_dbm: float = -10.0
    sample_rate_hz: float = 12_001.135
    password: str = ""
    last_gps_solution: int = 3
    malformed_every: int | None = None
    cut_after_frames: int | None = None
    cut_connections: int = 1
    stall_after_frames: int | None = None
    stall_connections: int = 1
    too_busy: bool = False
    not_kiwi: bool = False
    realtime: bool = True
    loop_frames: int | None = None
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    received: list[list[str]] = field(default_factory=list)
    frame_times_ns: list[int] = field(default_factory=list)
    connections: int = 0
    frames_sent: int = 0

    def __post_init__(self) -> None:
        self._server: Server | None = None
        self._rng = np.random.default_rng(self.seed)
        self.freq_hz: float | None = None
        self._loop: list[bytes] = []

    async def start(self) -> KiwiTestServer:
        self._server = await serve(
            self._handle,
            self.host,
            self.port,
            compression=None,
            process_request=self._check_path,
            ping_interval=None,
        )
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else 0
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 3.0)
            self._server = None

    async def __aenter__(self) -> KiwiTestServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    def _check_path(conn: ServerConnection, request: Request) -> Response | None:
        if not _PATH.match(request.path):
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    # ------------------------------------------------------------------ signal

    def samples(self, n: int, t0_s: float) -> np.ndarray:
        t = t0_s + np.arange(n) / self.sample_rate_hz
        x = np.zeros(n, dtype=np.complex128)
        for tone in self.tones:
            x += tone.amplitude * np.exp(2j * np.pi * (tone.freq_hz - (self.freq_hz or 0)) * t)
        s = self.noise_rms / np.sqrt(2)
        return x + s * (self._rng.standard_normal(n) + 1j * self._rng.standard_normal(n))

    def snd_frame(self, seq: int, x: np.ndarray, gps_utc_ns: int, last: int) -> bytes:
        p = float(np.mean(np.abs(x) ** 2))
        dbm = min(max(self.full_scale_dbm + 10 * np.log10(max(p, 1e-30)), -127.0), 3.4)
        smeter = int((dbm + 127.0) * 10)
        gps = utc_ns_to_gps_ns(gps_utc_ns) % (SECONDS_PER_WEEK * NS_PER_S)
        gpssec, gpsnsec = divmod(gps, NS_PER_S)
        iq = np.empty(2 * x.size)
        iq[0::2], iq[1::2] = x.real, x.imag
        raw = np.clip(np.rint(iq * 32768), -32768, 32767).astype(">i2").tobytes()
        head = struct.pack("<BI", 0x08, seq) + struct.pack(">H", smeter)
        return b"SND" + head + struct.pack("<BBII", last, 0, gpssec, gpsnsec) + raw

    # ------------------------------------------------------------------ protocol

    async def _msg(self, ws: ServerConnection, text: str) -> None:
        await ws.send(b"MSG " + text.encode())

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        index = self.connections
        log: list[str] = []
        self.received.append(log)
        reader: asyncio.Task[None] | None = None
        try:
            if self.not_kiwi:
                await ws.send(b"<html>hello</html>")
                await ws.wait_closed()
                return
            first = await ws.recv()
            log.append(str(first))
            if not (isinstance(first, str) and first.startswith("SET auth t=kiwi p=")):
                return
            if self.too_busy:
                await self._msg(ws, "too_busy=4")
                await ws.close()
                return
            if first != f"SET auth t=kiwi p={self.password}":
                await self._msg(ws, "badp=1")
                await ws.close()
                return
            await self._msg(ws, "version_maj=1 version_min=826")
            await self._msg(ws, "center_freq=15000000 bandwidth=30000000 adc_clk_nom=66666600")
            await self._msg(ws, "audio_init=0 audio_rate=12000")
            await self._msg(ws, f"sample_rate={self.sample_rate_hz:.6f}")
            tuned = asyncio.Event()
            reader = asyncio.create_task(self._read(ws, log, tuned))
            await asyncio.wait_for(tuned.wait(), 10.0)
            await self._stream(ws, index)
        except (ConnectionClosed, TimeoutError):
            pass
        finally:
            if reader is not None:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader

    async def _read(self, ws: ServerConnection, log: list[str], tuned: asyncio.Event) -> None:
        async for msg in ws:
            log.append(str(msg))
            m = re.match(r"SET mod=iq low_cut=-?\d+ high_cut=-?\d+ freq=([\d.]+)", str(msg))
            if m:
                self.freq_hz = float(m.group(1)) * 1e3
                tuned.set()

    async def _stream(self, ws: ServerConnection, index: int) -> None:
        cut = self.cut_after_frames if index <= self.cut_connections else None
        stall = self.stall_after_frames if index <= self.stall_connections else None
        fs = self.sample_rate_hz
        start_ns = time.time_ns()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        seq = 0
        while True:
            if stall is not None and seq >= stall:
                await asyncio.Future()
            t_ns = start_ns + round(seq * FRAME_SAMPLES * 1e9 / fs)
            if self.loop_frames:
                if len(self._loop) < self.loop_frames:
                    x = self.samples(FRAME_SAMPLES, seq * FRAME_SAMPLES / fs)
                    self._loop.append(self.snd_frame(0, x, 0, 0))
                proto = self._loop[seq % len(self._loop)]
                msg = self._restamp(proto, seq, t_ns)
            else:
                x = self.samples(FRAME_SAMPLES, seq * FRAME_SAMPLES / fs)
                stamp = t_ns - 300 * NS_PER_S if seq == 0 else t_ns  # stale first stamp
                msg = self.snd_frame(seq, x, stamp, self.last_gps_solution)
            if cut is not None and seq >= cut:
                ws.transport.write(frame_header(0x2, len(msg)) + msg[: len(msg) // 2])
                ws.transport.abort()
                return
            await ws.send(msg)
            self.frame_times_ns.append(t_ns)
            seq += 1
            self.frames_sent += 1
            if self.malformed_every and seq % self.malformed_every == 0:
                await ws.send(msg[:12])  # shorter than the IQ header
                await ws.send(b"SND" + bytes([0x10]) + msg[4:])  # compressed audio mode
                await ws.send(b"XYZ junk")
            if self.realtime:
                ahead = t0 + seq * FRAME_SAMPLES / fs - loop.time()
                await asyncio.sleep(max(ahead, 0.0))
            else:
                await asyncio.sleep(0)

    def _restamp(self, proto: bytes, seq: int, t_ns: int) -> bytes:
        gps = utc_ns_to_gps_ns(t_ns) % (SECONDS_PER_WEEK * NS_PER_S)
        gpssec, gpsnsec = divmod(gps, NS_PER_S)
        gps_fields = struct.pack("<BBII", self.last_gps_solution, 0, gpssec, gpsnsec)
        return proto[:4] + struct.pack("<I", seq) + proto[8:10] + gps_fields + proto[20:]
