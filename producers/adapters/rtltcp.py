"""rtl_tcp adapter: an RTL-SDR dongle served over TCP, channelised to one channel.

Protocol (read from ``src/rtl_tcp.c`` of osmocom's ``rtl-sdr``, https://gitea.osmocom.org/sdr/rtl-sdr,
mirrored at github.com/osmocom/rtl-sdr; the ``librtlsdr`` forks keep the same wire format)
---------------------------------------------------------------------------------------------
* On accept the server sends a 12-byte ``dongle_info_t``: the magic ``b"RTL0"``, the tuner
  type (u32 big-endian; 1 E4000, 2 FC0012, 3 FC0013, 4 FC2580, 5 R820T, 6 R828D, 0 unknown)
  and the number of discrete tuner gains (u32 BE).
* Then, without any framing, the samples: unsigned 8-bit I, Q interleaved, zero at 127.5,
  in whatever pieces TCP delivers (a piece may end between I and Q).
* The client sends 5-byte commands at any time: one command byte and a u32 BE parameter
  (``struct command { unsigned char cmd; unsigned int param; } __attribute__((packed))``):
  0x01 centre frequency (Hz), 0x02 sample rate (Hz), 0x03 gain mode (0 auto, 1 manual),
  0x04 tuner gain (tenths of dB), 0x05 frequency correction (ppm, signed), 0x06 IF gain
  (stage << 16 | gain in tenths), 0x07 test mode, 0x08 RTL2832 digital AGC (0/1), 0x09 direct
  sampling, 0x0a offset tuning, 0x0b RTL xtal, 0x0c tuner xtal, 0x0d gain by index,
  0x0e bias tee. The server applies them as they come and never answers; samples already
  queued were taken with the old settings (hence :attr:`RtlTcpConfig.settle_s`).
* The RTL2832U accepts sample rates in (225 kHz, 300 kHz] and (900 kHz, 3.2 MHz].

What the adapter does
---------------------
It tunes ``f_LO = f_channel + tune_offset_hz`` (default offset ``f_in/4``) so that the
dongle's DC spike and IQ image sit away from the channel, then
:class:`~heimdall.producers.adapters.dsp.ChannelDecimator` mixes the channel (at
``−tune_offset_hz``) to 0 Hz and decimates it with a multistage Kaiser FIR chain to
``channel_rate_hz`` (12 kHz): passband ±0.4·f_out, alias rejection 60 dB (see that module
for the design). Chunks of ``chunk_samples`` (2400 = 0.2 s) are published as ci16 (or cf32)
with ``center_freq_hz = f_channel``.

Timestamps (``clock = ntp``)
----------------------------
The dongle has no time reference. Each TCP read gives one estimate of when input sample 0
was taken: ``arrival_ns − n_in / f_in`` (the block's arrival on the host clock minus the
duration of everything received so far). Network and USB buffering only ever delay an
arrival, so the estimate kept is the running minimum, allowed to creep forward by
``DRIFT_PPM`` (the crystal's error, 100 ppm) between reads. A chunk's ``t_ns`` is that
epoch plus the position of its first sample, with the filter chain's group delay removed.
The error is the host clock's (NTP: ~1 ms) plus the smallest USB/TCP latency seen (~ms).

Power (uncalibrated)
--------------------
An rtl-sdr's power scale depends on the tuner, its gain and the frequency. ``full_scale_dbm``
is the configured :attr:`RtlTcpConfig.full_scale_dbm` if given (a calibration against a
known source), else the nominal ``NOMINAL_FULL_SCALE_DBM − gain_db`` (an R820T at 0 dB
gain clips near −20 dBm at the antenna; ±10 dB between units), plus the receiver's
``calibration_offset_db``. With automatic gain (no ``gain_db``) the scale is unknown and
the nominal at 0 dB is used: set a manual gain on receivers used for localisation.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, ClassVar

import numpy as np
from pydantic import Field

from heimdall.core.errors import ConfigError
from heimdall.producers.adapters.base import (
    AdapterOptions,
    ProtocolError,
    ReceiverAdapter,
    ReceiverInfo,
)
from heimdall.producers.adapters.dsp import ChannelDecimator
from heimdall.producers.adapters.options import AdapterConfig, split_host_port
from heimdall.schemas.models import ClockSource, IqChunk, SampleFormat

__all__ = [
    "DEFAULT_PORT",
    "HEADER_LEN",
    "MAGIC",
    "NOMINAL_FULL_SCALE_DBM",
    "RCVBUF_BYTES",
    "TUNER_TYPES",
    "DongleInfo",
    "RtlTcpAdapter",
    "RtlTcpCommand",
    "RtlTcpConfig",
    "encode_command",
    "parse_header",
    "tuning_commands",
]

log = logging.getLogger(__name__)

MAGIC = b"RTL0"
HEADER_LEN = 12
DEFAULT_PORT = 1234
TUNER_TYPES = {0: "unknown", 1: "E4000", 2: "FC0012", 3: "FC0013", 4: "FC2580", 5: "R820T",
               6: "R828D"}  # fmt: skip
#: Antenna power that fills the 8-bit ADC at 0 dB tuner gain, dBm (nominal R820T; ±10 dB).
NOMINAL_FULL_SCALE_DBM = -20.0
#: Largest sample-clock error the timestamp estimator follows, parts per million.
DRIFT_PPM = 100.0
#: Receive buffer asked of the kernel for each socket, bytes (holds the paced reads' data).
RCVBUF_BYTES = 1 << 20
#: Read pacing sleeps this much beyond the time a block takes to arrive, s (one wake-up per
#: block rather than one just before the block is complete and another just after).
PACING_MARGIN_S = 0.005


class RtlTcpCommand(IntEnum):
    """Command bytes of rtl_tcp.c's ``command_worker``."""

    SET_FREQUENCY = 0x01
    SET_SAMPLE_RATE = 0x02
    SET_GAIN_MODE = 0x03
    SET_GAIN = 0x04
    SET_FREQ_CORRECTION = 0x05
    SET_IF_GAIN = 0x06
    SET_TEST_MODE = 0x07
    SET_AGC_MODE = 0x08
    SET_DIRECT_SAMPLING = 0x09
    SET_OFFSET_TUNING = 0x0A
    SET_RTL_XTAL = 0x0B
    SET_TUNER_XTAL = 0x0C
    SET_GAIN_BY_INDEX = 0x0D
    SET_BIAS_TEE = 0x0E


def encode_command(cmd: int, param: int) -> bytes:
    """The 5 bytes of a command: ``cmd`` then ``param`` as u32 big-endian.

    Negative parameters (a ppm correction) are sent as their 32-bit two's complement, which
    rtl_tcp.c reads back with ``(int)ntohl(param)``.
    """
    return struct.pack(">BI", cmd, param & 0xFFFFFFFF)


@dataclass(frozen=True, slots=True)
class DongleInfo:
    """The 12-byte greeting: tuner type and number of tuner gains."""

    tuner_type: int
    gain_count: int

    @property
    def tuner_name(self) -> str:
        return TUNER_TYPES.get(self.tuner_type, f"type {self.tuner_type}")


def parse_header(data: bytes) -> DongleInfo:
    """Parse ``dongle_info_t``; raise :class:`ProtocolError` unless it starts with ``RTL0``."""
    if len(data) != HEADER_LEN or data[:4] != MAGIC:
        raise ProtocolError(f"expected the 12-byte rtl_tcp header starting b'RTL0', got {data!r}")
    tuner, gains = struct.unpack(">II", data[4:])
    return DongleInfo(tuner, gains)


class RtlTcpConfig(AdapterConfig):
    """How to reach and tune one rtl_tcp server (the options of an ``rtltcp`` receiver).

    One model for the adapter, the network file's ``options`` (all but ``host``/``port``,
    which come from the receiver's ``address``) and ``heimdall receiver rtltcp``
    (:mod:`heimdall.producers.adapters.options`). What needs several fields together is
    checked by :meth:`check`.
    """

    connection_fields: ClassVar[tuple[str, ...]] = ("host", "port")
    cli_flags: ClassVar[Mapping[str, str]] = {
        "freq_hz": "--freq",
        "sample_rate_hz": "--sample-rate",
        "channel_rate_hz": "--channel-rate",
        "tune_offset_hz": "--offset",
        "gain_db": "--gain",
    }

    host: str = "127.0.0.1"
    """rtl_tcp server address (``rtl_tcp -a ADDRESS``)."""
    port: int = DEFAULT_PORT
    """rtl_tcp server port (``rtl_tcp -p PORT``)."""
    freq_hz: float = Field(gt=0)
    """Channel centre frequency, Hz."""
    sample_rate_hz: int = 1_152_000
    """Dongle sample rate, Hz: an integer multiple of the channel rate in (900 kHz, 3.2 MHz]
    or (225 kHz, 300 kHz]; default 1.152 MS/s (96 × 12 kHz)."""
    channel_rate_hz: int = Field(12_000, gt=0)
    """Published channel rate, Hz."""
    tune_offset_hz: float | None = None
    """Tune the dongle this far above the channel, Hz (default sample rate / 4); must keep
    the DC spike out of the channel (|offset| ≥ channel rate) and the channel inside the
    dongle's band (|offset| + channel rate / 2 ≤ 0.4 × sample rate)."""
    gain_db: float | None = None
    """Manual tuner gain, dB, sent in tenths (default: the tuner's automatic gain)."""
    ppm: int = 0
    """Crystal correction, parts per million (sent when non-zero)."""
    rtl_agc: bool = False
    """The RTL2832's digital AGC (off: it makes power readings meaningless)."""
    chunk_samples: int = Field(2400, ge=1)
    """Samples per published chunk at the channel rate (2400 = 0.2 s at 12 kHz)."""
    sample_format: SampleFormat = SampleFormat.CI16
    """Published sample format: ci16 (48 KB/s at 12 kHz) or cf32."""
    full_scale_dbm: float | None = None
    """Calibrated antenna power of a full-scale signal, dBm (default: nominal, module doc)."""
    atten_db: float = Field(60.0, gt=0)
    """Alias rejection of the decimation chain, dB."""
    settle_s: float = Field(0.1, ge=0)
    """Input discarded after the tuning commands are sent (samples taken before the
    retune), s."""
    read_size: int = Field(1 << 16, ge=1)
    """Room for one read from the socket beyond the block being gathered, bytes."""
    min_block_s: float = Field(0.1, ge=0)
    """Input gathered before it is channelised, s of samples (fewer, larger numpy calls: at
    288 kS/s, 100 ms is 57.6 KB; real rtl_tcp sends 256 KiB USB buffers anyway)."""
    max_read_pause_s: float = Field(0.15, ge=0)
    """Read pacing: after a read that left the kernel's socket buffer empty, reading pauses
    until about a block should have gathered, at most this long, s (0: read as data
    arrives); the socket's receive buffer is raised to RCVBUF_BYTES."""

    @classmethod
    def from_address(cls, address: str) -> dict[str, Any]:
        """``host:port`` (port default 1234) → ``{"host", "port"}``."""
        host, port = split_host_port(address, DEFAULT_PORT)
        return {"host": host, "port": port}

    @property
    def offset_hz(self) -> float:
        return self.sample_rate_hz / 4 if self.tune_offset_hz is None else self.tune_offset_hz

    @property
    def lo_hz(self) -> int:
        """Frequency the dongle is tuned to, Hz."""
        return round(self.freq_hz + self.offset_hz)

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def check(self) -> None:
        """Raise :class:`ConfigError` (one line naming the field) if it cannot work."""
        fs = self.sample_rate_hz
        if not (225_000 < fs <= 300_000 or 900_000 < fs <= 3_200_000):
            raise ConfigError(
                f"sample_rate_hz: {fs} is not a rate the RTL2832U supports "
                "((225 kHz, 300 kHz] or (900 kHz, 3.2 MHz])"
            )
        if fs % self.channel_rate_hz:
            raise ConfigError(
                f"sample_rate_hz: {fs} is not an integer multiple of channel_rate_hz "
                f"{self.channel_rate_hz}; e.g. {96 * self.channel_rate_hz} or "
                f"{200 * self.channel_rate_hz}"
            )
        off = abs(self.offset_hz)
        if off < self.channel_rate_hz:
            raise ConfigError(
                f"tune_offset_hz: {self.offset_hz:g} Hz puts the dongle's DC spike inside "
                f"the channel; use at least {self.channel_rate_hz} Hz"
            )
        if off + self.channel_rate_hz / 2 > 0.4 * fs:
            raise ConfigError(
                f"tune_offset_hz: {self.offset_hz:g} Hz puts the channel at the edge of the "
                f"dongle's {fs / 1e6:g} MHz band; use at most {0.4 * fs - self.channel_rate_hz:g}"
            )
        if not 0 < self.lo_hz < 1 << 32:
            raise ConfigError(f"freq_hz: {self.freq_hz:g} Hz cannot be tuned by rtl_tcp")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port")


def tuning_commands(cfg: RtlTcpConfig) -> list[tuple[RtlTcpCommand, int]]:
    """The commands sent after the header, in order (as gr-osmosdr's rtl_tcp source does).

    Sample rate, crystal correction (when non-zero), centre frequency ``f_LO``, gain mode,
    manual gain (tenths of dB, when set), RTL AGC.
    """
    cmds: list[tuple[RtlTcpCommand, int]] = [(RtlTcpCommand.SET_SAMPLE_RATE, cfg.sample_rate_hz)]
    if cfg.ppm:
        cmds.append((RtlTcpCommand.SET_FREQ_CORRECTION, cfg.ppm))
    cmds.append((RtlTcpCommand.SET_FREQUENCY, cfg.lo_hz))
    if cfg.gain_db is None:
        cmds.append((RtlTcpCommand.SET_GAIN_MODE, 0))
    else:
        cmds.append((RtlTcpCommand.SET_GAIN_MODE, 1))
        cmds.append((RtlTcpCommand.SET_GAIN, round(cfg.gain_db * 10)))
    cmds.append((RtlTcpCommand.SET_AGC_MODE, int(cfg.rtl_agc)))
    return cmds


class RtlTcpAdapter(ReceiverAdapter):
    """Stream one channel of an rtl_tcp server (see the module docstring).

    Parameters
    ----------
    info : ReceiverInfo
        Receiver id, position, calibration offset, ...
    config : RtlTcpConfig
        Server address and tuning.
    options : AdapterOptions, optional
        Buffer, timeouts, backoff.
    """

    kind = "rtltcp"
    label = "rtl_tcp"
    refused_hint = "is rtl_tcp running and listening on that port?"

    def __init__(
        self, info: ReceiverInfo, config: RtlTcpConfig, options: AdapterOptions | None = None
    ) -> None:
        config.check()
        super().__init__(info, options)
        self.config = config
        self.decimator = ChannelDecimator(
            config.sample_rate_hz,
            config.channel_rate_hz,
            shift_hz=config.offset_hz,
            atten_db=config.atten_db,
        )
        gain = config.gain_db or 0.0
        fs_dbm = (
            config.full_scale_dbm
            if config.full_scale_dbm is not None
            else NOMINAL_FULL_SCALE_DBM - gain
        )
        self.full_scale_dbm = fs_dbm + info.calibration_offset_db
        self.dongle: DongleInfo | None = None
        self._transport: asyncio.Transport | None = None
        self._proto: _RtlTcpProtocol | None = None
        self._out = np.empty(config.chunk_samples, dtype=np.complex64)
        self.reset()

    @property
    def address(self) -> str:
        return self.config.address

    def reset(self) -> None:
        self.decimator.reset()
        self._fill = 0
        self._n_out = 0  # output samples since reset (the first one of self._out is _n_out)
        self._n_in = 0  # input samples fed to the decimator since reset
        self._skip = 2 * round(self.config.settle_s * self.config.sample_rate_hz)
        self._epoch_ns: float | None = None
        self._last_arrival_ns = 0

    async def open(self) -> None:
        cfg = self.config
        loop = asyncio.get_running_loop()
        proto = _RtlTcpProtocol(self, loop)
        self._proto = proto
        self._transport, _ = await loop.create_connection(lambda: proto, cfg.host, cfg.port)
        head = await proto.header
        if head[:4] != MAGIC:
            raise ProtocolError(
                f"{self.label} at {self.address} did not greet with the rtl_tcp header "
                f"(got {head!r} instead of b'RTL0...'): is this port an rtl_tcp server?"
            )
        self.dongle = parse_header(head)
        self._transport.write(b"".join(encode_command(c, p) for c, p in tuning_commands(cfg)))
        proto.streaming = True
        proto.consume()  # samples that came with the header
        log.info(
            "%s: rtl_tcp %s (%s tuner, %d gains), tuned to %d Hz for %.0f Hz at %d S/s",
            self.info.receiver_id, self.address, self.dongle.tuner_name, self.dongle.gain_count,
            cfg.lo_hz, cfg.freq_hz, cfg.sample_rate_hz,
        )  # fmt: skip

    async def close(self) -> None:
        transport, self._transport, self._proto = self._transport, None, None
        if transport is not None:
            transport.close()

    async def stream(self) -> None:
        proto = self._proto
        if proto is None:
            raise ProtocolError("stream() before open()")
        await proto.done  # the samples are handled as they arrive (_RtlTcpProtocol)

    def _feed(self, data: bytes | memoryview, arrival_ns: int) -> None:
        y, n_in = self.decimator.process_u8(data)
        self._n_in += n_in
        fs = self.config.sample_rate_hz
        # running-minimum epoch of input sample 0, allowed to creep by the crystal's error
        candidate = arrival_ns - self._n_in * 1e9 / fs
        if self._epoch_ns is None:
            self._epoch_ns = candidate
        else:
            creep = (arrival_ns - self._last_arrival_ns) * DRIFT_PPM * 1e-6
            self._epoch_ns = min(self._epoch_ns + creep, candidate)
        self._last_arrival_ns = arrival_ns
        n = self.config.chunk_samples
        pos = 0
        while pos < y.size:
            take = min(n - self._fill, y.size - pos)
            self._out[self._fill : self._fill + take] = y[pos : pos + take]
            self._fill += take
            pos += take
            if self._fill == n:
                self._emit_chunk()

    def _emit_chunk(self) -> None:
        cfg = self.config
        d = self.decimator
        first_in = self._n_out * d.factor + d.output_offset  # input index of the first sample
        epoch = self._epoch_ns if self._epoch_ns is not None else float(time.time_ns())
        t_ns = round(epoch + first_in * 1e9 / cfg.sample_rate_hz)
        chunk = IqChunk(
            receiver_id=self.info.receiver_id,
            seq=self.next_seq(),
            t_ns=t_ns,
            clock=ClockSource.NTP,
            center_freq_hz=float(cfg.freq_hz),
            sample_rate_hz=float(cfg.channel_rate_hz),
            sample_format=cfg.sample_format,
            iq=self._out.copy(),
            full_scale_dbm=self.full_scale_dbm,
            position=self.info.position,
            gain_db=float(cfg.gain_db or 0.0),
            source=self.kind,
            published_ns=time.time_ns(),
        )
        self._n_out += self._fill
        self._fill = 0
        self.emit(chunk)


class _RtlTcpProtocol(asyncio.BufferedProtocol):
    """The socket side of :class:`RtlTcpAdapter`: bytes straight into one preallocated buffer.

    The event loop ``recv_into``\\ s the buffer (no ``bytes`` object per read, no stream
    reader, no task switch per read); every read notes its arrival (stall detector) and,
    once ``min_block_s`` of samples has gathered, the even-length head of the buffer is
    channelised in place and the odd byte (if any) moved to the front. The first 12 bytes are
    the header (:attr:`header`), the next ``settle_s`` of samples are dropped. :attr:`done`
    ends with the connection (its error, if any).
    """

    def __init__(self, adapter: RtlTcpAdapter, loop: asyncio.AbstractEventLoop) -> None:
        cfg = adapter.config
        self.adapter = adapter
        self.min_bytes = max(2, 2 * round(cfg.min_block_s * cfg.sample_rate_hz))
        self.buf = bytearray(self.min_bytes + max(cfg.read_size, HEADER_LEN))
        self.view = memoryview(self.buf)
        self.fill = 0
        self.arrival_ns = 0
        self.byte_rate = 2.0 * cfg.sample_rate_hz
        self.max_pause_s = cfg.max_read_pause_s
        self.loop = loop
        self._resume_handle: asyncio.TimerHandle | None = None
        self.streaming = False  # header accepted, tuning sent
        self.transport: asyncio.Transport | None = None
        self.header: asyncio.Future[bytes] = loop.create_future()
        self.done: asyncio.Future[None] = loop.create_future()
        for fut in (self.header, self.done):  # an error nobody awaited is not worth a warning
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.max_pause_s > 0:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    if sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < RCVBUF_BYTES:
                        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
                except OSError:  # pragma: no cover - not a TCP socket / not permitted
                    pass

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view[self.fill :]

    def buffer_updated(self, nbytes: int) -> None:
        room = len(self.buf) - self.fill  # what this read could have taken
        self.fill += nbytes
        self.arrival_ns = time.time_ns()
        self.adapter.data_received(nbytes)
        try:
            if not self.header.done():
                if self.fill < HEADER_LEN:
                    return
                self.header.set_result(bytes(self.buf[:HEADER_LEN]))
                self._drop(HEADER_LEN)
                return  # open() checks it, sends the tuning, then calls consume()
            if self.streaming:
                self.consume()
                if nbytes < room and self.max_pause_s > 0:
                    self._pace()
            elif self.fill + HEADER_LEN > len(self.buf):  # open() has not resumed yet
                self._drop(self.fill)
        except Exception as exc:
            self._fail(exc)

    def _pace(self) -> None:
        """Pause reading until about a block has gathered in the kernel's socket buffer.

        Only called after a read that did not fill the offered buffer (so the kernel had no
        more): a full read is followed by another at once and the connection never falls
        behind. The data waits in the kernel, not on the wire, so arrival order, the stall
        detector (fed at every read) and the chunks are unchanged; a block is channelised
        at most ``PACING_MARGIN_S`` plus one loop turn after its last byte arrived.
        """
        transport = self.transport
        if transport is None or self._resume_handle is not None or transport.is_closing():
            return
        deficit = self.min_bytes - self.fill
        delay = min(self.max_pause_s, max(deficit, 0) / self.byte_rate + PACING_MARGIN_S)
        transport.pause_reading()
        self._resume_handle = self.loop.call_later(delay, self._resume)

    def _resume(self) -> None:
        self._resume_handle = None
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.resume_reading()

    def consume(self) -> None:
        """Skip the settling bytes, then channelise once a block has gathered."""
        a = self.adapter
        if a._skip:
            n = min(a._skip, self.fill)
            a._skip -= n
            self._drop(n)
        if self.fill >= self.min_bytes:
            even = self.fill & ~1
            a._feed(self.view[:even], self.arrival_ns)
            self._drop(even)

    def _drop(self, n: int) -> None:
        """Forget the first ``n`` bytes of the buffer."""
        rest = self.fill - n
        if rest:
            self.buf[:rest] = self.view[n : self.fill]
        self.fill = rest

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)
        if self.transport is not None:
            self.transport.abort()

    def eof_received(self) -> bool:
        return False  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        if self._resume_handle is not None:
            self._resume_handle.cancel()
            self._resume_handle = None
        if not self.header.done():
            self.header.set_exception(
                ProtocolError(
                    f"{self.adapter.label} at {self.adapter.address} closed the connection "
                    f"before its 12-byte header (got {bytes(self.buf[: self.fill])!r}): is "
                    "this port an rtl_tcp server?"
                )
            )
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)
