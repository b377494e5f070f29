"""KiwiSDR adapter: IQ of one channel with the receiver's GPS timestamps, over the SND websocket.

Protocol (read from github.com/jks-prv/kiwiclient ``kiwi/client.py`` and ``kiwirecorder.py``,
and from the server, github.com/jks-prv/Beagle_SDR_GPS ``rx/rx_sound.cpp``, ``rx/rx_sound.h``,
``rx/rx_sound_cmd.cpp``)
-----------------------------------------------------------------------------------------------
* A websocket at ``ws://host:port/<timestamp>/SND`` (timestamp: the client's Unix time in s;
  ``/W/F`` is the waterfall, not used here). Every message the server sends starts with a
  3-byte tag: ``MSG``, ``SND``, ``W/F``, ``EXT``.
* Client → server, text: ``SET auth t=kiwi p=<password>`` first; then, when the server has
  announced its rates: ``SET AR OK in=<audio_rate> out=44100`` (answer to ``audio_rate``),
  and on ``sample_rate``: ``SET squelch=0 max=0``, ``SET genattn=0``, ``SET gen=0 mix=-1``,
  ``SET ident_user=<name>``, ``SET mod=iq low_cut=<Hz> high_cut=<Hz> freq=<kHz, %.3f>``
  (the frequency minus the Kiwi's ``freq_offset``), ``SET agc=<0|1> hang=0 thresh=-100
  slope=6 decay=1000 manGain=<dB>``, and ``SET keepalive`` (then at most once a second while
  SND frames arrive, as ``kiwi/client.py`` does; the server drops a silent client).
* ``MSG`` frames: a space, then ``name=value`` pairs separated by spaces (values URL-quoted):
  ``audio_rate=12000``, ``sample_rate=12001.135`` (the real IQ rate, GPS-corrected),
  ``freq_offset=<kHz>``, ``version_maj``/``version_min``, ``bandwidth``; and the refusals
  ``too_busy=<n>``, ``badp=<code>``, ``down``, ``redirect=<url>``.
* ``SND`` frames, after the tag (``snd_pkt_iq_t``, packed)::

      u8 flags | u32 seq (LE) | u16 smeter (BE) | u8 last_gps_solution | u8 dummy |
      u32 gpssec (LE) | u32 gpsnsec (LE) | int16 I, Q, I, Q, ... (BE; LE if flags & 0x80)

  ``flags``: 0x02 ADC overflow, 0x08 IQ (stereo) mode, 0x10 compressed (never in IQ mode),
  0x80 little-endian samples. ``smeter`` codes the S-meter as ``(dBm + 127) · 10``:
  RSSI = ``0.1 · smeter − 127`` dBm (clamped by the server to [−127, 3.4] dBm), already
  corrected by the Kiwi's own S-meter calibration. ``gpssec + gpsnsec·1e-9`` is the GPS time
  (seconds of the GPS week) of the frame's first sample; ``last_gps_solution`` is the age in
  s of the receiver's last GPS clock solution (≤ 252), 255 when it never had one.

What is published
-----------------
:class:`~heimdall.schemas.models.IqChunk` s of ``chunk_samples`` (default 2400) at the
``sample_rate`` the Kiwi reports, centred on ``freq_hz``, ci16 (the Kiwi's int16 / 32768).

* ``clock = gps`` when the frame's ``last_gps_solution`` is below ``max_solution_age_s``
  (254, the criterion of ``kiwirecorder.py`` and ``tdoa_read_data.m``, also used by the
  KiwiSDR WAV reader) and its GPS time lies within ``max_clock_disagreement_s`` of the host
  clock; ``t_ns`` is then the GPS time of the chunk's first sample (the frame's stamp plus
  the position in the frame at the reported rate; the GPS week is the one that puts the stamp
  nearest the host clock; UTC through the leap-second table of
  :mod:`heimdall.producers.recordings.gpstime`). Otherwise ``clock = ntp``: the running-
  minimum estimate of the first sample's host time (arrival minus the samples received, as
  the rtl_tcp adapter). The first SND frame of a connection carries the previous user's
  stamp and audio (firmware; ``kiwi/client.py``: "first rssi is no good"): it is dropped.
* ``full_scale_dbm``: the configured value if given; otherwise referenced to the Kiwi's
  calibrated S-meter, per chunk: ``mean RSSI (mW) / mean |x|²`` in dB (the S-meter measures the
  same pass band as the IQ, before the AGC; the IQ is after it, so the ratio follows the AGC),
  plus the receiver's ``calibration_offset_db``. The features stage's dBm are then the Kiwi's.
* With ``rssi_measurements`` a :class:`~heimdall.schemas.models.Measurement` per chunk
  (features topic): ``power_dbm`` = the linear mean of the frames' RSSI (the Kiwi's
  calibrated dBm, total power in the pass band, signal plus noise) + calibration offset; the
  noise density from the median of the chunk's periodogram (``/ln 2``, its median bias), the
  SNR from both. Off by default: the features stage measures the same chunks, and the
  association would average the two kinds together.
"""

from __future__ import annotations

import logging
import math
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import unquote

import numpy as np
import numpy.typing as npt
from pydantic import Field

from heimdall.core.channels import channel_id_for
from heimdall.core.errors import ConfigError
from heimdall.core.ids import new_event_id
from heimdall.producers.adapters.base import (
    AdapterError,
    AdapterOptions,
    ProtocolError,
    ReceiverInfo,
)
from heimdall.producers.adapters.options import AdapterConfig, split_host_port
from heimdall.producers.adapters.wsbase import WebSocketAdapter
from heimdall.producers.recordings.gpstime import (
    NS_PER_S,
    SECONDS_PER_WEEK,
    gps_ns_to_utc_ns,
    utc_ns_to_gps_ns,
)
from heimdall.schemas.models import ClockSource, IqChunk, Measurement, SampleFormat

__all__ = [
    "DEFAULT_PORT",
    "SND_FLAG_ADC_OVFL",
    "SND_FLAG_COMPRESSED",
    "SND_FLAG_LITTLE_ENDIAN",
    "SND_FLAG_STEREO",
    "SND_IQ_HEADER",
    "KiwiSdrAdapter",
    "KiwiSdrConfig",
    "SndFrame",
    "gps_stamp_to_utc_ns",
    "parse_msg",
    "parse_snd",
    "rx_commands",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8073
SND_FLAG_ADC_OVFL = 0x02
SND_FLAG_STEREO = 0x08
SND_FLAG_COMPRESSED = 0x10
SND_FLAG_LITTLE_ENDIAN = 0x80
#: flags, seq, smeter, last_gps_solution, dummy, gpssec, gpsnsec (after the "SND" tag).
SND_IQ_HEADER = struct.Struct("<BI2sBBII")
_DRIFT_PPM = 100.0
_LN2 = math.log(2.0)


@dataclass(frozen=True, slots=True)
class SndFrame:
    """One IQ-mode SND frame (see the module docstring)."""

    flags: int
    seq: int
    rssi_dbm: float
    last_gps_solution: int
    gpssec: int
    gpsnsec: int
    iq: npt.NDArray[np.complex64]


def parse_snd(data: bytes | memoryview) -> SndFrame:
    """Parse an ``SND`` message (tag included) in IQ mode.

    Raises
    ------
    ValueError
        When it is not an IQ-mode frame or its length is not a header plus whole I/Q pairs.
    """
    if bytes(data[:3]) != b"SND":
        raise ValueError("not an SND frame")
    body = memoryview(data)[3:]
    if len(body) < SND_IQ_HEADER.size:
        raise ValueError(f"SND frame of {len(data)} bytes is shorter than the IQ header")
    flags, seq, smeter, last, _dummy, gpssec, gpsnsec = SND_IQ_HEADER.unpack_from(body)
    if not flags & SND_FLAG_STEREO or flags & SND_FLAG_COMPRESSED:
        raise ValueError(f"SND frame not in IQ mode (flags 0x{flags:02x})")
    raw = body[SND_IQ_HEADER.size :]
    if len(raw) % 4:
        raise ValueError(f"SND frame with {len(raw)} sample bytes: not whole I/Q pairs")
    dtype = "<i2" if flags & SND_FLAG_LITTLE_ENDIAN else ">i2"
    v = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    v *= np.float32(1.0 / 32768.0)
    rssi = 0.1 * int.from_bytes(smeter, "big") - 127.0
    return SndFrame(flags, seq, rssi, last, gpssec, gpsnsec, v.view(np.complex64))


def parse_msg(data: bytes | str) -> dict[str, str | None]:
    """A ``MSG`` message → ``{name: value}`` (values URL-unquoted; None for bare names)."""
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    out: dict[str, str | None] = {}
    for pair in text[4:].split(" "):
        if not pair:
            continue
        name, eq, value = pair.partition("=")
        out[name] = unquote(value) if eq else None
    return out


def gps_stamp_to_utc_ns(gpssec: int, gpsnsec: int, near_utc_ns: int) -> int:
    """UTC ns of a (seconds-of-week, ns) GPS stamp, in the GPS week nearest ``near_utc_ns``."""
    week_ns = SECONDS_PER_WEEK * NS_PER_S
    near_gps = utc_ns_to_gps_ns(near_utc_ns)
    sow_ns = gpssec * NS_PER_S + gpsnsec
    week = near_gps // week_ns
    cand = week * week_ns + sow_ns
    if cand - near_gps > week_ns // 2:
        cand -= week_ns
    elif near_gps - cand > week_ns // 2:
        cand += week_ns
    return gps_ns_to_utc_ns(cand)


class KiwiSdrConfig(AdapterConfig):
    """How to reach and tune one KiwiSDR (the options of a ``kiwisdr`` receiver).

    One model for the adapter, the network file's ``options`` (all but ``host``/``port``,
    which come from the receiver's ``address``) and ``heimdall receiver kiwisdr``
    (:mod:`heimdall.producers.adapters.options`).
    """

    connection_fields: ClassVar[tuple[str, ...]] = ("host", "port")
    cli_flags: ClassVar[Mapping[str, str]] = {
        "freq_hz": "--freq",
        "low_cut_hz": "--low-cut",
        "high_cut_hz": "--high-cut",
        "man_gain_db": "--gain",
        "rssi_measurements": "--rssi",
    }

    host: str
    """The KiwiSDR's host."""
    port: int = DEFAULT_PORT
    """The KiwiSDR's web server port."""
    freq_hz: float = Field(gt=0)
    """Channel centre, Hz (the IQ is centred on it)."""
    low_cut_hz: float = -5000.0
    """IQ pass band low edge from the centre, Hz (the Kiwi's iq default)."""
    high_cut_hz: float = 5000.0
    """IQ pass band high edge from the centre, Hz."""
    agc: bool = True
    """The Kiwi's AGC (SET agc=1); off: the fixed manual gain."""
    man_gain_db: int = 50
    """Manual gain when the AGC is off, dB (manGain)."""
    password: str = ""
    """The Kiwi's user password (SET auth ... p=; empty for public Kiwis)."""
    user: str = "heimdall"
    """SET ident_user= shown on the Kiwi's user list."""
    chunk_samples: int = Field(2400, ge=16)
    """Samples per published chunk (2400 ≈ 0.2 s)."""
    full_scale_dbm: float | None = None
    """Calibrated power of a full-scale signal, dBm (default: referenced to the S-meter,
    module doc)."""
    max_solution_age_s: int = Field(254, ge=0, le=255)
    """Frames with last_gps_solution at or above this are not GPS-timed, s."""
    max_clock_disagreement_s: float = Field(10.0, gt=0)
    """A GPS time further than this from the host clock is not trusted, s."""
    rssi_measurements: bool = False
    """Also publish the S-meter as measurements (module docstring)."""
    detect_threshold_db: float = 6.0
    """SNR threshold of an S-meter measurement's detected flag, dB."""

    @classmethod
    def from_address(cls, address: str) -> dict[str, Any]:
        """``host:port`` or ``http://host:port/`` (port default 8073) → ``{"host", "port"}``."""
        host, port = split_host_port(address, DEFAULT_PORT)
        return {"host": host, "port": port}

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, timestamp: int) -> str:
        return f"ws://{self.address}/{timestamp}/SND"

    def check(self) -> None:
        """Raise :class:`ConfigError` (one line naming the field) if it cannot work."""
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"port: {self.port} is not a TCP port")
        if not 0 < self.freq_hz <= 32e6:
            raise ConfigError(f"freq_hz: {self.freq_hz:g} Hz is outside a KiwiSDR's 0–32 MHz")
        if not self.high_cut_hz > self.low_cut_hz:
            raise ConfigError("high_cut_hz must be above low_cut_hz")
        for name, v in (("password", self.password), ("user", self.user)):
            if any(c.isspace() for c in v):
                raise ConfigError(f"{name}: must not contain spaces")


def rx_commands(cfg: KiwiSdrConfig, freq_offset_khz: float = 0.0) -> list[str]:
    """What ``kiwirecorder.py`` sends on ``sample_rate`` (IQ mode, squelch and generator off)."""
    khz = cfg.freq_hz / 1e3 - freq_offset_khz
    return [
        "SET squelch=0 max=0",
        "SET genattn=0",
        "SET gen=0 mix=-1",
        f"SET ident_user={cfg.user}",
        f"SET mod=iq low_cut={round(cfg.low_cut_hz)} high_cut={round(cfg.high_cut_hz)} "
        f"freq={khz:.3f}",
        f"SET agc={int(cfg.agc)} hang=0 thresh=-100 slope=6 decay=1000 manGain={cfg.man_gain_db}",
        "SET keepalive",
    ]


_REFUSALS = {
    "too_busy": "all client slots are taken",
    "down": "the server is down",
}
_BADP = {
    "1": "bad password, or all channels that need none are busy",
    "2": "still determining its local interface address: try again in a moment",
    "5": "no multiple connections from the same IP address",
    "6": "database update in progress: try again in a minute",
}


class KiwiSdrAdapter(WebSocketAdapter):
    """Stream one IQ channel of a KiwiSDR (see the module docstring).

    Parameters
    ----------
    info : ReceiverInfo
        Receiver id, position, calibration offset, ...
    config : KiwiSdrConfig
        Address and tuning.
    options : AdapterOptions, optional
        Buffer, timeouts, backoff.
    """

    kind = "kiwisdr"
    label = "KiwiSDR"
    refused_hint = "is the KiwiSDR up and is that its port (8073 by default)?"

    def __init__(
        self, info: ReceiverInfo, config: KiwiSdrConfig, options: AdapterOptions | None = None
    ) -> None:
        config.check()
        super().__init__(info, options)
        self.config = config
        self.frames = 0
        self.lost_frames = 0
        self.gps_frames = 0
        self.reset()

    @property
    def address(self) -> str:
        return self.config.address

    def reset(self) -> None:
        self.sample_rate_hz: float | None = None
        self.msg: dict[str, str | None] = {}
        self._first_frame = True
        self._last_seq: int | None = None
        self._last_keepalive_s = 0
        self._parts: list[tuple[npt.NDArray[np.complex64], int, ClockSource, float]] = []
        self._fill = 0
        self._n_in = 0
        self._epoch_ns: float | None = None
        self._last_arrival_ns = 0
        self._rssi_mw: list[tuple[float, int]] = []  # (mW, samples) per frame in the chunk

    # ---------------------------------------------------------------- session

    async def open(self) -> None:
        cfg = self.config
        await self.connect_ws(cfg.url(int(time.time())))
        await self.send_text(f"SET auth t=kiwi p={cfg.password}")

    async def stream(self) -> None:
        first = True
        while True:
            msg = await self.recv()
            if msg is None:
                return
            self.data_received(len(msg))
            data = msg.encode() if isinstance(msg, str) else msg
            tag = data[:3]
            if first and tag not in (b"MSG", b"SND", b"W/F", b"EXT"):
                raise ProtocolError(
                    f"{self.label} at {self.address} sent {data[:16]!r} instead of a tagged "
                    "message (MSG/SND): is this a KiwiSDR?"
                )
            first = False
            if tag == b"MSG":
                await self._on_msg(data)
            elif tag == b"SND":
                self._on_snd(data, time.time_ns())
                await self._keepalive()
            elif tag in (b"W/F", b"EXT"):
                pass
            else:
                self.malformed("unknown message tag", repr(data[:8]))

    async def _keepalive(self) -> None:
        now = int(time.time())
        if now != self._last_keepalive_s:
            self._last_keepalive_s = now
            await self.send_text("SET keepalive")

    async def _on_msg(self, data: bytes) -> None:
        params = parse_msg(data)
        self.msg.update(params)
        for name in _REFUSALS:
            if name in params:
                raise AdapterError(f"{self.label} at {self.address} refused us: {_REFUSALS[name]}")
        if "badp" in params and params["badp"] not in ("0", None):
            why = _BADP.get(str(params["badp"]), f"badp={params['badp']}")
            raise AdapterError(f"{self.label} at {self.address} refused us: {why}")
        if "redirect" in params:
            raise AdapterError(
                f"{self.label} at {self.address} redirects to {params['redirect']}: use that"
            )
        if params.get("audio_rate"):
            await self.send_text(f"SET AR OK in={int(float(params['audio_rate'] or 0))} out=44100")
        if params.get("sample_rate"):
            try:
                rate = float(params["sample_rate"] or "")
            except ValueError:
                self.malformed("sample_rate is not a number", str(params["sample_rate"]))
                return
            first = self.sample_rate_hz is None
            self.sample_rate_hz = rate
            if first:
                foff = float(self.msg.get("freq_offset") or 0.0)
                for cmd in rx_commands(self.config, foff):
                    await self.send_text(cmd)
                log.info("%s: KiwiSDR %s at %.3f kS/s, tuned to %.3f kHz", self.info.receiver_id,
                         self.address, rate / 1e3, self.config.freq_hz / 1e3)  # fmt: skip

    # ---------------------------------------------------------------- samples

    def _on_snd(self, data: bytes, arrival_ns: int) -> None:
        try:
            frame = parse_snd(data)
        except ValueError as exc:
            self.malformed("bad SND frame", str(exc))
            return
        fs = self.sample_rate_hz
        if fs is None:
            self.malformed("SND frame before sample_rate")
            return
        self.frames += 1
        if self._last_seq is not None and frame.seq != (self._last_seq + 1) & 0xFFFFFFFF:
            self.lost_frames += (frame.seq - self._last_seq - 1) & 0xFFFFFFFF
        self._last_seq = frame.seq
        if self._first_frame:  # the previous user's leftover (module docstring)
            self._first_frame = False
            return
        n = frame.iq.size
        if n == 0:
            return
        # host-clock estimate (running minimum, allowed to creep by the clock error)
        self._n_in += n
        candidate = arrival_ns - self._n_in * 1e9 / fs
        if self._epoch_ns is None:
            self._epoch_ns = candidate
        else:
            creep = (arrival_ns - self._last_arrival_ns) * _DRIFT_PPM * 1e-6
            self._epoch_ns = min(self._epoch_ns + creep, candidate)
        self._last_arrival_ns = arrival_ns
        host_t0 = round(self._epoch_ns + (self._n_in - n) * 1e9 / fs)
        cfg = self.config
        t0, clock = host_t0, ClockSource.NTP
        if frame.last_gps_solution < cfg.max_solution_age_s:
            gps_t0 = gps_stamp_to_utc_ns(frame.gpssec, frame.gpsnsec, arrival_ns)
            if abs(gps_t0 - arrival_ns) <= cfg.max_clock_disagreement_s * 1e9:
                t0, clock = gps_t0, ClockSource.GPS
                self.gps_frames += 1
        self._parts.append((frame.iq, t0, clock, 10 ** (frame.rssi_dbm / 10)))
        self._fill += n
        while self._fill >= cfg.chunk_samples:
            self._emit_chunk(fs)

    def _emit_chunk(self, fs: float) -> None:
        cfg = self.config
        need = cfg.chunk_samples
        pieces: list[npt.NDArray[np.complex64]] = []
        rssi: list[tuple[float, int]] = []
        t0, clock = self._parts[0][1], self._parts[0][2]
        while need:
            iq, t, ck, mw = self._parts[0]
            take = min(need, iq.size)
            pieces.append(iq[:take])
            rssi.append((mw, take))
            clock = ck if ck is ClockSource.NTP else clock  # any NTP part makes the chunk NTP
            if take == iq.size:
                self._parts.pop(0)
            else:
                self._parts[0] = (iq[take:], t + round(take * 1e9 / fs), ck, mw)
            need -= take
        self._fill -= cfg.chunk_samples
        x = np.concatenate(pieces)
        p_iq = float(np.mean(x.real.astype(np.float64) ** 2 + x.imag.astype(np.float64) ** 2))
        rssi_mw = sum(mw * k for mw, k in rssi) / cfg.chunk_samples
        if cfg.full_scale_dbm is not None:
            fs_dbm = cfg.full_scale_dbm
        elif p_iq > 0:
            fs_dbm = 10 * math.log10(rssi_mw / p_iq)
        else:
            fs_dbm = 0.0
        cal = self.info.calibration_offset_db
        chunk = IqChunk(
            receiver_id=self.info.receiver_id,
            seq=self.next_seq(),
            t_ns=t0,
            clock=clock,
            center_freq_hz=float(cfg.freq_hz),
            sample_rate_hz=fs,
            sample_format=SampleFormat.CI16,
            iq=x,
            full_scale_dbm=fs_dbm + cal,
            position=self.info.position,
            gain_db=0.0 if cfg.agc else float(cfg.man_gain_db),
            source=self.kind,
            published_ns=time.time_ns(),
        )
        self.emit(chunk)
        if cfg.rssi_measurements:
            self.emit_measurement(self._rssi_measurement(chunk, x, rssi_mw, fs_dbm))

    def _rssi_measurement(
        self, chunk: IqChunk, x: npt.NDArray[np.complex64], rssi_mw: float, fs_dbm: float
    ) -> Measurement:
        cfg = self.config
        fs = chunk.sample_rate_hz
        w = np.hanning(x.size)
        psd = np.abs(np.fft.fft(x * w)) ** 2 / (fs * np.sum(w**2))  # FS²/Hz
        n0_mw_hz = float(np.median(psd)) / _LN2 * 10 ** (fs_dbm / 10)
        bw = cfg.high_cut_hz - cfg.low_cut_hz
        noise = max(n0_mw_hz * bw, 1e-30)
        cal = self.info.calibration_offset_db
        snr_db = 10 * math.log10(max(rssi_mw - noise, 1e-6 * noise) / noise)
        return Measurement(
            event_id=new_event_id(),
            chunk_id=chunk.event_id,
            receiver_id=chunk.receiver_id,
            t_ns=chunk.t_ns,
            duration_s=x.size / fs,
            clock=chunk.clock,
            position=chunk.position,
            channel_id=channel_id_for(cfg.freq_hz),
            channel_freq_hz=float(cfg.freq_hz),
            channel_bw_hz=bw,
            power_dbm=10 * math.log10(max(rssi_mw, 1e-30)) + cal,
            noise_floor_dbm_hz=10 * math.log10(max(n0_mw_hz, 1e-30)) + cal,
            snr_db=snr_db,
            freq_offset_hz=0.0,
            occupied_bw_hz=0.0,
            detected=bool(snr_db >= cfg.detect_threshold_db),
            chunk_published_ns=chunk.published_ns,
            published_ns=time.time_ns(),
        )
