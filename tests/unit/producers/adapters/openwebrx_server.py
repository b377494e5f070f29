"""A local OpenWebRX(+) server for tests: the websocket protocol of ``owrx/connection.py``.

Upstream: OpenWebRX (github.com/jketterl/openwebrx) and OpenWebRX+ (github.com/luarvique/openwebrx),
files ``owrx/connection.py`` (``HandshakeMessageHandler``, ``OpenWebRxReceiverClient``:
the handshake, the JSON message types, the binary type bytes 1/2/3/4), ``owrx/dsp.py``
(``DspManager``: the ``dspcontrol`` parameters, the S-meter), ``owrx/fft.py`` and
``csdr/chain/fft.py`` (the waterfall chain); csdr (github.com/luarvique/csdr) ``src/lib/fft.cpp``,
``window.cpp`` (Hamming), ``logaveragepower.cpp`` (``add_db = −70``, mean of K periodograms),
``fftexchangesides.cpp`` (swap halves) and ``adpcm.cpp`` (``FftAdpcmEncoder``,
``AdpcmEncoder(sync=True)``). Reproduced here on the wire:

* ``/ws/`` only (anything else: HTTP 404); no websocket extension;
* waits for ``SERVER DE CLIENT ... type=receiver`` and answers
  ``CLIENT DE SERVER server=openwebrx version=<v>``, then, as the receiver client's
  constructor does: ``receiver_details``, the global ``config`` (``fft_size``,
  ``fft_compression``, ``audio_compression``, ...), ``features``, ``modes``, the SDR
  ``config`` (``center_freq``, ``samp_rate``, ``start_mod``, ``start_freq``,
  ``start_offset_freq``, ``sdr_id``, ``profile_id``) and ``profiles``;
* from then on an FFT row every ``1/fft_fps`` s (type 1): K periodograms of synthetic IQ
  (tones + complex white noise) with csdr's symmetric Hamming window, unnormalised FFT,
  ``10 log10(mean |X|²) − 70``, halves swapped, ADPCM-coded (or float32);
* after ``dspcontrol`` ``action: start``: ``{"type": "smeter", "value": P}`` every 0.25 s, P
  the mean power an ideal ``[low_cut, high_cut]`` band-pass around ``center + offset_freq``
  lets through (tones inside + noise · bandwidth / rate), and audio (type 2) coded with the
  SYNC-framed ADPCM encoder in messages of arbitrary size;
* records every text message the client sends (:attr:`received`).

Knobs reproduce the failures the adapter must survive: malformed messages
(``malformed_every``: a non-JSON text, an unknown binary type and an FFT row of the wrong
length), a TCP drop in the middle of a binary frame (``cut_after_rows``), a server that stops
sending but keeps the connection (``stall_after_rows``), a handshake answer that is not
OpenWebRX's (``wrong_handshake``), a full server (``backoff``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import numpy as np
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from heimdall.producers.adapters.adpcm import SyncAdpcmEncoder, encode_fft_row

__all__ = ["OpenWebRxTestServer", "Tone", "frame_header"]


@dataclass(frozen=True)
class Tone:
    """A carrier at an absolute frequency (Hz) with a complex amplitude magnitude (FS = 1)."""

    freq_hz: float
    amplitude: float


def frame_header(opcode: int, length: int) -> bytes:
    """RFC 6455 §5.2 header of an unmasked, final frame (what a server sends)."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 1 << 16:
        return bytes((first, 126)) + struct.pack(">H", length)
    return bytes((first, 127)) + struct.pack(">Q", length)


@dataclass
class _Conn:
    index: int
    rows: int = 0
    dsp: dict[str, Any] = field(default_factory=dict)
    started: bool = False


@dataclass
class OpenWebRxTestServer:
    """An asyncio OpenWebRX stand-in on ``ws://host:port/ws/`` (port 0: a free port)."""

    tones: Sequence[Tone] = ()
    noise_rms: float = 0.01
    center_freq_hz: float = 145_000_000.0
    samp_rate_hz: float = 240_000.0
    fft_size: int = 1024
    fft_fps: float = 10.0
    fft_voverlap_factor: float = 0.3
    fft_compression: str = "adpcm"
    audio_compression: str = "adpcm"
    version: str = "v1.2.80"
    allow_center_freq_changes: bool = True
    malformed_every: int | None = None
    cut_after_rows: int | None = None
    cut_connections: int = 1
    stall_after_rows: int | None = None
    stall_connections: int = 1
    wrong_handshake: bool = False
    backoff: str | None = None
    seed: int = 0
    host: str = "127.0.0.1"
    port: int = 0
    #: Every text message received, in order, per connection.
    received: list[list[str]] = field(default_factory=list)
    connections: int = 0
    rows_sent: int = 0
    audio_bytes_sent: int = 0
    smeter_sent: list[float] = field(default_factory=list)
    #: Every FFT row sent whole, as computed (float dB, before any ADPCM), in order.
    rows_db_sent: list[np.ndarray] = field(default_factory=list)
    #: Every block of audio sent: the int16 PCM before coding, and the bytes on the wire.
    audio_pcm_sent: list[np.ndarray] = field(default_factory=list)
    audio_data_sent: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server: Server | None = None
        self._rng = np.random.default_rng(self.seed)
        self._phases: dict[float, float] = {}

    # ------------------------------------------------------------------ life cycle

    async def start(self) -> OpenWebRxTestServer:
        self._server = await serve(
            self._handle, self.host, self.port, compression=None,
            process_request=self._check_path, ping_interval=None,
        )  # fmt: skip
        self.port = self._server.sockets[0].getsockname()[1] if self._server.sockets else 0
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 3.0)
            self._server = None

    async def __aenter__(self) -> OpenWebRxTestServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws/"

    @staticmethod
    def _check_path(conn: ServerConnection, request: Request) -> Response | None:
        if request.path != "/ws/":
            return conn.respond(HTTPStatus.NOT_FOUND, "not found\n")
        return None

    # ------------------------------------------------------------------ signal

    @property
    def averages(self) -> int:
        """K of ``csdr/chain/fft.py``: ``round(rate / size / fps / (1 − overlap))``."""
        k = round(self.samp_rate_hz / self.fft_size / self.fft_fps / (1 - self.fft_voverlap_factor))
        return max(int(k), 1)

    def iq(self, n: int) -> np.ndarray:
        fs = self.samp_rate_hz
        t = np.arange(n)
        x = np.zeros(n, dtype=np.complex128)
        for tone in self.tones:
            w = 2 * np.pi * (tone.freq_hz - self.center_freq_hz) / fs
            ph = self._phases.get(tone.freq_hz, 0.0)
            x += tone.amplitude * np.exp(1j * (ph + w * t))
            self._phases[tone.freq_hz] = (ph + w * n) % (2 * np.pi)
        s = self.noise_rms / np.sqrt(2)
        x += s * (self._rng.standard_normal(n) + 1j * self._rng.standard_normal(n))
        return x

    def fft_row_db(self) -> np.ndarray:
        """One row as csdr computes it (float dB, halves swapped)."""
        n, k = self.fft_size, self.averages
        w = 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(n) / (n - 1))
        acc = np.zeros(n)
        for _ in range(k):
            acc += np.abs(np.fft.fft(self.iq(n) * w)) ** 2
        v = 10 * np.log10(acc) - 70.0 - 10 * np.log10(k)
        return np.concatenate((v[n // 2 :], v[: n // 2])).astype(np.float32)

    def encode_row(self, row: np.ndarray) -> bytes:
        if self.fft_compression == "adpcm":
            return b"\x01" + encode_fft_row(row)
        return b"\x01" + row.astype("<f4").tobytes()

    def smeter_value(self, conn: _Conn) -> float:
        f0 = self.center_freq_hz + float(conn.dsp.get("offset_freq", 0))
        lo, hi = float(conn.dsp.get("low_cut", -6000)), float(conn.dsp.get("high_cut", 6000))
        p = sum(t.amplitude**2 for t in self.tones if f0 + lo <= t.freq_hz <= f0 + hi)
        return p + self.noise_rms**2 * (hi - lo) / self.samp_rate_hz

    # ------------------------------------------------------------------ protocol

    async def _send_json(self, ws: ServerConnection, obj: dict[str, Any]) -> None:
        await ws.send(json.dumps(obj))

    async def _greet(self, ws: ServerConnection) -> None:
        await ws.send(f"CLIENT DE SERVER server=openwebrx version={self.version}")
        await self._send_json(
            ws,
            {
                "type": "receiver_details",
                "value": {
                    "receiver_name": "test",
                    "receiver_location": "lab",
                    "receiver_asl": 240,
                    "receiver_gps": {"lat": 45.0, "lon": 7.6},
                    "photo_title": "",
                    "photo_desc": "",
                },
            },
        )
        await self._send_json(
            ws,
            {
                "type": "config",
                "value": {
                    "waterfall_scheme": "GoogleTurboWaterfall",
                    "fft_size": self.fft_size,
                    "audio_compression": self.audio_compression,
                    "fft_compression": self.fft_compression,
                    "max_clients": 20,
                    "tuning_precision": 2,
                    "allow_center_freq_changes": self.allow_center_freq_changes,
                },
            },
        )
        await self._send_json(ws, {"type": "features", "value": {"digital_voice_digiham": False}})
        await self._send_json(
            ws,
            {
                "type": "modes",
                "value": [
                    {
                        "modulation": "nfm",
                        "name": "FM",
                        "type": "analog",
                        "requirements": [],
                        "squelch": True,
                        "bandpass": {"low_cut": -4000, "high_cut": 4000},
                    }
                ],
            },
        )
        await self._send_config(ws)
        await self._send_json(
            ws,
            {
                "type": "profiles",
                "value": [
                    {"id": "rtl|2m", "name": "RTL-SDR 2m"},
                    {"id": "rtl|70cm", "name": "RTL 70cm"},
                ],
            },
        )

    async def _send_config(self, ws: ServerConnection) -> None:
        await self._send_json(ws, {"type": "config", "value": {
            "samp_rate": int(self.samp_rate_hz), "center_freq": int(self.center_freq_hz),
            "start_mod": "nfm", "start_freq": int(self.center_freq_hz) + 10_000,
            "start_offset_freq": 10_000, "tuning_step": 100, "sdr_id": "rtl",
            "profile_id": "2m", "waterfall_levels": {"min": -88, "max": -20}}})  # fmt: skip

    async def _handle(self, ws: ServerConnection) -> None:
        self.connections += 1
        conn = _Conn(self.connections)
        log: list[str] = []
        self.received.append(log)
        try:
            first = await ws.recv()
            if isinstance(first, str):
                log.append(first)
            if not (isinstance(first, str) and first.startswith("SERVER DE CLIENT")
                    and "type=receiver" in first):  # fmt: skip
                return  # upstream logs and never answers
            if self.wrong_handshake:
                await ws.send("HTTP/1.1 200 OK")
                return
            if self.backoff:
                await ws.send(f"CLIENT DE SERVER server=openwebrx version={self.version}")
                await self._send_json(ws, {"type": "backoff", "reason": self.backoff})
                await ws.close()
                return
            await self._greet(ws)
            reader = asyncio.create_task(self._read(ws, conn, log))
            try:
                await self._pump(ws, conn)
            finally:
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
        except ConnectionClosed:
            pass

    async def _read(self, ws: ServerConnection, conn: _Conn, log: list[str]) -> None:
        async for msg in ws:
            if not isinstance(msg, str):
                continue
            log.append(msg)
            with contextlib.suppress(ValueError):
                m = json.loads(msg)
                if m.get("type") == "dspcontrol":
                    conn.dsp.update(m.get("params", {}))
                    if m.get("action") == "start":
                        conn.started = True
                elif m.get("type") == "setfrequency" and self.allow_center_freq_changes:
                    self.center_freq_hz = float(m["params"]["frequency"])
                    await self._send_config(ws)

    async def _pump(self, ws: ServerConnection, conn: _Conn) -> None:
        cut = self.cut_after_rows if conn.index <= self.cut_connections else None
        stall = self.stall_after_rows if conn.index <= self.stall_connections else None
        period = 1.0 / self.fft_fps
        audio = SyncAdpcmEncoder()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        next_smeter = t0
        audio_phase = 0.0
        while True:
            if stall is not None and conn.rows >= stall:
                await asyncio.Future()  # keep the connection, send nothing
            row = self.fft_row_db()
            msg = self.encode_row(row)
            if cut is not None and conn.rows >= cut:
                # a binary frame announced in full but cut in the middle, then a TCP drop
                ws.transport.write(frame_header(0x2, len(msg)) + msg[: len(msg) // 2])
                ws.transport.abort()
                return
            await ws.send(msg)
            conn.rows += 1
            self.rows_sent += 1
            self.rows_db_sent.append(row)
            if self.malformed_every and conn.rows % self.malformed_every == 0:
                await ws.send("this is not json")
                await ws.send(b"\x09junk")
                await ws.send(msg[: len(msg) // 2])  # an FFT row of the wrong length
            now = loop.time()
            if conn.started and now >= next_smeter:
                v = self.smeter_value(conn)
                self.smeter_sent.append(v)
                await self._send_json(ws, {"type": "smeter", "value": v})
                next_smeter = now + 0.25
            if conn.started:
                n = int(12_000 * period) // 2 * 2
                t = audio_phase + np.arange(n) / 12_000
                audio_phase += n / 12_000
                pcm = np.round(8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
                data = audio.encode(pcm) if self.audio_compression == "adpcm" else pcm.tobytes()
                self.audio_bytes_sent += len(data)
                self.audio_pcm_sent.append(pcm)
                self.audio_data_sent.append(data)
                half = len(data) // 3  # messages cut anywhere
                await ws.send(b"\x02" + data[:half])
                await ws.send(b"\x02" + data[half:])
            ahead = t0 + conn.rows * period - loop.time()
            await asyncio.sleep(max(ahead, 0.0))
