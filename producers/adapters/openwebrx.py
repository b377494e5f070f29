"""OpenWebRX / OpenWebRX+ adapter: channel power, waterfall rows and demodulated audio.

An OpenWebRX server shares one SDR among web users: it sends each one the waterfall of the
whole SDR band and the demodulated audio of the channel that user tunes. It never sends IQ,
so this adapter publishes, all with key = receiver id:

* **measurements** of the tuned channel (:class:`~heimdall.schemas.models.Measurement`,
  features topic), from the waterfall and the S-meter (below);
* every **waterfall row** as the server computed it, decoded
  (:class:`~heimdall.schemas.models.WaterfallRow`, waterfall topic; ``publish_waterfall``,
  one row in ``waterfall_stride``), values in the server's unit ``v_k`` (below, not dBm);
* the **demodulated audio**, decoded to int16 and batched into chunks of ``audio_chunk_s``
  (:class:`~heimdall.schemas.models.AudioChunk`, audio topic; ``publish_audio``).

Protocol (read from github.com/jketterl/openwebrx and its fork OpenWebRX+ at
github.com/luarvique/openwebrx: ``owrx/connection.py``, ``owrx/websocket.py``, ``owrx/dsp.py``,
``owrx/fft.py``, ``csdr/chain/{fft,selector,clientaudio}.py``, ``htdocs/openwebrx.js``,
``htdocs/lib/{Demodulator,AudioEngine}.js``; and csdr, github.com/luarvique/csdr:
``src/lib/{fft,window,logpower,logaveragepower,fftexchangesides,power,adpcm}.cpp``)
-----------------------------------------------------------------------------------------------
* A websocket at ``/ws/`` of the web server (default port 8073), no extension.
* Client → server, text: ``SERVER DE CLIENT client=<name> type=receiver``; the server answers
  ``CLIENT DE SERVER server=openwebrx version=<v>`` and from then on both sides speak JSON
  ``{"type": ..., ...}`` in text messages.
* Server → client JSON, by ``type``: ``receiver_details`` (name, location, ...),
  ``config`` (partial updates of a dict: ``center_freq`` and ``samp_rate`` of the SDR profile
  in use, ``fft_size``, ``fft_compression`` and ``audio_compression`` (``"adpcm"`` or
  ``"none"``), ``start_mod``, ``start_offset_freq``, ``sdr_id``, ``profile_id``, ...),
  ``features``, ``modes``, ``profiles`` (``[{"id": "sdr|profile", "name": ...}]``),
  ``smeter`` (``{"value": float}``), ``backoff`` (``{"reason": "Too many clients"}``, then
  the server closes), ``sdr_error``, ``demodulator_error``, ``log_message``, chat, ...
* Client → server JSON: ``connectionproperties`` ``{"params": {"output_rate": 12000,
  "hd_output_rate": 48000}}``; ``dspcontrol`` ``{"params": {"low_cut", "high_cut",
  "offset_freq", "mod", "squelch_level", ...}}`` and ``{"action": "start"}``;
  ``selectprofile`` ``{"params": {"profile": "sdr_id|profile_id", "key": ...}}``;
  ``setfrequency`` ``{"params": {"frequency": Hz, "key": ...}}`` (moves the SDR's centre,
  if the server allows it).
* Server → client binary, by the first byte: 1 an FFT row of the SDR band, 2 audio, 3 the
  secondary (digimode) FFT, 4 "HD" audio (wideband FM).

What the numbers are
--------------------
**FFT rows** (type 1; ``owrx/fft.py`` → ``FftChain``): N = ``fft_size`` complex samples of
the SDR stream are windowed with a symmetric Hamming window ``w_t = 0.54 − 0.46 cos(2πt/(N−1))``
(csdr ``HammingWindow``), transformed with an unnormalised FFT ``X_k = Σ w_t x_t e^{−j2πkt/N}``
(FFTW), and each bin is ``v_k = 10 log10(mean_K |X_k|²) − 70`` dB (``LogAveragePower`` over K
transforms with ``add_db = −70``; K = ``round(f_s / N / fft_fps / (1 − fft_voverlap_factor))``,
or ``LogPower`` when K = 0), then swapped so the row runs from ``centre − f_s/2`` to
``centre + f_s/2`` (bin k at ``centre + (k − N/2) f_s/N``). With ``fft_compression = "adpcm"``
the row is ADPCM coded at 0.01 dB resolution (:mod:`.adpcm`), otherwise float32 little-endian.

Undoing the scaling, ``P_k = 10^((v_k + 70)/10) / (N Σ w_t²)`` is the power in bin k in the
units of the SDR's complex samples (full scale |x| = 1), normalised so that the bins of a row
add up to the mean power ``mean |x|²`` (Parseval): white noise of total power σ² gives
``P_k ≈ σ²/N`` in every bin and a tone of amplitude A gives ``Σ_k P_k = A²`` over its main lobe.

Channel quantities from the rows: the rows arriving during ``integration_s`` are averaged
(linear); the channel is the set C of bins within ``[f + low_cut, f + high_cut]``; the noise
floor per bin ``N̂`` is the median of the bins of the central ``noise_span`` of the row outside
C, divided by the median of ``χ²_ν/ν`` (``ν = 2 K · rows``: each bin is an average of K
periodograms); then, as in the features stage, ``P_s = max(Σ_C P_k − |C| N̂, 10⁻⁶ |C| N̂)``,
``SNR = P_s / (|C| N̂)``, the noise density ``N̂ / Δf`` (Δf = f_s/N), a 99 % occupied
bandwidth and a power-weighted frequency offset over C; ``psd_dbm_hz`` is the averaged row
over C (density, low to high). Signals elsewhere in the noise span bias ``N̂`` up a little
(a median is robust to less than half the bins being occupied).

ADPCM rows cannot follow a narrow peak. The coder's step grows by at most ×2.1 per bin, so
a carrier rising 60–80 dB above the noise within the ±2-bin Hamming main lobe is decoded
several dB low (measured here: a tone 54 dB above the noise per bin came out 10.9 dB low, one
at 34 dB 1.4 dB low; float rows measure it to 0.1 dB). Wide signals (NFM spans tens of
bins) are less affected, but the FFT's channel power from a compressed waterfall is a lower
bound. Hence the default ``measure = "combined"``.

**S-meter** (``smeter``; ``csdr/chain/selector.py`` ``Selector`` → csdr ``Squelch``/``Power``):
the demodulator's input, shifted to the channel, decimated to the audio rate and band-pass
filtered to ``[low_cut, high_cut]``, is averaged as ``mean |x|²`` over blocks of 1/16 s
(every 5th sample), and every 4th block is sent: 4 readings per second of **linear power** in
the same full-scale units as ``P_k`` (the decimation filters have unit gain in the pass band).
OpenWebRX's own page shows ``10 log10(value)`` as "dB". The readings are plain floats in JSON,
so they do not suffer from the ADPCM slew limit.

What is published (``measure``): one measurement per ``integration_s`` window of rows.
``"combined"`` (default): the power is the mean S-meter reading of the window minus the
FFT's noise in the channel ``|C| N̂`` (clamped as above), SNR accordingly, and everything else
(noise density, offset, occupied bandwidth, PSD) from the rows; a window without S-meter
readings (before the demodulator runs) falls back to the FFT power. ``"fft"``: everything from
the rows. ``"smeter"``: like combined, but windows without a reading are not published.

Units: **neither number is an absolute power.** OpenWebRX knows nothing of the antenna: its
samples are whatever the SDR driver delivers (an rtl-sdr's bytes mapped to ±1, gain
dependent). ``power_dbm = 10 log10(P) + full_scale_dbm + calibration_offset_db`` where
``full_scale_dbm`` (default 0) is the antenna power of a full-scale signal *if calibrated*;
with the defaults ``power_dbm`` is dB relative to full scale (dBFS) plus the receiver's
calibration offset, and comparable across receivers only after calibration against a known
source. The SDR's gain (and any AGC in its profile) must stay fixed for the numbers to mean
anything over time.

Waterfall rows and audio as events
----------------------------------
A :class:`~heimdall.schemas.models.WaterfallRow` carries the decoded row ``v_k`` unchanged
(float32; after ADPCM it carries the codec's error: 0.01 dB truncation and the slew limit
above), with the band (``center_freq_hz``, ``sample_rate_hz``, ``bin_hz``), K
(``averages``), the row period, the wire ``compression`` and ``full_scale_dbm`` (the
configured one plus the calibration offset), so a subscriber can turn it into bin powers
(:meth:`~heimdall.schemas.models.WaterfallRow.bin_powers`) or dBm as above. Rows are published
whether or not the measured channel fits the band. An
:class:`~heimdall.schemas.models.AudioChunk` carries int16 samples exactly as the server's
``ClientAudioChain`` produced them (the demodulator's float output × 32767, clipped; after
the demodulator's AGC, so not a signal level) with the mode, tuned frequency and pass band;
type-4 "HD" audio (wideband FM) has its own chunks at ``hd_output_rate``. A partial chunk is
published when the tuning changes; one left at the end of a session is dropped.

Time (``clock = ntp``)
----------------------
The server does not timestamp anything. A measurement's ``t_ns`` is the host clock at the
arrival of its first row (or reading) minus one row period ``1/fft_fps``; the server's
pipeline (SDR buffers, FFT averaging, websocket) adds a latency of the order of 0.1–1 s
that is not removed. ``duration_s`` spans the rows integrated. A waterfall row's ``t_ns`` is
its arrival minus one row period; an audio chunk's is the arrival of the message holding its
first sample minus the duration of that message's samples from it on.

The SDR is shared: another user may switch the profile (the ``config`` message then carries
the new ``center_freq``/``samp_rate``). The adapter re-sends its ``offset_freq`` when the
centre moves and the channel still fits; when it does not, rows are skipped (counted as
malformed with reason ``channel outside the band``) until the band comes back, or a reconnect
with ``profile`` set selects ours again.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
from pydantic import Field
from scipy.special import gammaincinv

from heimdall.core.channels import channel_id_for
from heimdall.core.dsp import occupied_band
from heimdall.core.errors import ConfigError
from heimdall.core.ids import new_event_id
from heimdall.producers.adapters.adpcm import (
    COMPRESS_FFT_PAD_N,
    SyncAdpcmDecoder,
    decode_fft_row,
)
from heimdall.producers.adapters.base import (
    AdapterError,
    AdapterOptions,
    ProtocolError,
    ReceiverInfo,
)
from heimdall.producers.adapters.options import AdapterConfig
from heimdall.producers.adapters.wsbase import WebSocketAdapter, ws_address
from heimdall.schemas.models import AudioChunk, ClockSource, Measurement, WaterfallRow

__all__ = [
    "FFT_ADD_DB",
    "ChannelPower",
    "OpenWebRxAdapter",
    "OpenWebRxConfig",
    "bin_powers",
    "channel_power",
    "client_handshake",
    "dsp_messages",
    "hamming_window",
    "parse_server_handshake",
]

log = logging.getLogger(__name__)

#: ``add_db`` of OpenWebRX's FFT averager (``csdr/chain/fft.py``).
FFT_ADD_DB = -70.0
#: Server defaults (``owrx/config/defaults.py``) used when the server does not tell.
DEFAULT_FFT_FPS = 9.0
DEFAULT_FFT_VOVERLAP = 0.3
_SNR_FLOOR = 1e-6

MeasureKind = Literal["combined", "fft", "smeter"]


# ------------------------------------------------------------------------- wire


def client_handshake(client: str = "heimdall") -> str:
    """The first text message: ``SERVER DE CLIENT client=<client> type=receiver``."""
    if not client or any(c.isspace() for c in client):
        raise ValueError(f"client name {client!r} must be one word")
    return f"SERVER DE CLIENT client={client} type=receiver"


def parse_server_handshake(text: str) -> dict[str, str]:
    """``CLIENT DE SERVER server=openwebrx version=1.2.3`` → ``{"server": ..., "version": ...}``.

    Raises
    ------
    ValueError
        When ``text`` is not the server's handshake line.
    """
    if not text.startswith("CLIENT DE SERVER"):
        raise ValueError(f"not an OpenWebRX handshake: {text[:60]!r}")
    out: dict[str, str] = {}
    for word in text[17:].split(" "):
        if word:
            key, _, value = word.partition("=")
            out[key] = value
    return out


def dsp_messages(
    *, low_cut: float, high_cut: float, offset_freq: int, mod: str, squelch_level: float
) -> list[dict[str, Any]]:
    """The two ``dspcontrol`` messages that start the demodulator, as the web client sends them.

    ``Demodulator.prototype.start`` (``htdocs/lib/Demodulator.js``) sends the parameters, then
    ``{"type": "dspcontrol", "action": "start"}``.
    """
    params = {
        "low_cut": low_cut,
        "high_cut": high_cut,
        "offset_freq": offset_freq,
        "mod": mod,
        "squelch_level": squelch_level,
    }
    return [
        {"type": "dspcontrol", "params": params},
        {"type": "dspcontrol", "action": "start"},
    ]


# ------------------------------------------------------------------------- DSP


@cache
def hamming_window(n: int) -> npt.NDArray[np.float64]:
    """csdr's ``HammingWindow`` precalculated for n points: ``0.54 − 0.46 cos(2πt/(n−1))``."""
    t = np.arange(n, dtype=np.float64)
    return 0.54 - 0.46 * np.cos(2.0 * np.pi * t / (n - 1))


@cache
def _window_power(n: int) -> float:
    return float(np.sum(hamming_window(n) ** 2))


def bin_powers(row_db: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """OpenWebRX FFT row (dB) → per-bin power ``P_k`` in full-scale units (module docstring)."""
    v = np.asarray(row_db, dtype=np.float64)
    n = v.size
    return np.power(10.0, (v - FFT_ADD_DB) / 10.0) / (n * _window_power(n))


@cache
def _median_factor(dof: float) -> float:
    """Median of ``χ²_ν / ν``."""
    return float(2.0 * gammaincinv(dof / 2.0, 0.5) / dof)


@dataclass(frozen=True, slots=True)
class ChannelPower:
    """One channel measured on an averaged FFT row (powers in full-scale units, linear).

    Attributes
    ----------
    signal : float
        Noise-subtracted power in the channel, ``P_s`` (clamped at −60 dB SNR).
    total : float
        ``Σ_C P_k``: everything in the channel bins.
    noise_bin : float
        Noise power per bin ``N̂``.
    noise_density : float
        ``N̂ / Δf``, per Hz.
    snr_db : float
    freq_offset_hz : float
        Power-weighted centroid of the excess over the noise, relative to the channel's
        nominal frequency.
    occupied_bw_hz : float
        99 % power bandwidth of the excess.
    n_bins : int
        ``|C|``.
    bin_hz : float
        Δf.
    bins : slice
        Where C lies in the row (contiguous).
    """

    signal: float
    total: float
    noise_bin: float
    noise_density: float
    snr_db: float
    freq_offset_hz: float
    occupied_bw_hz: float
    n_bins: int
    bin_hz: float
    bins: slice


def channel_power(
    powers: npt.ArrayLike,
    *,
    sample_rate_hz: float,
    center_freq_hz: float,
    channel_freq_hz: float,
    low_cut_hz: float,
    high_cut_hz: float,
    dof: float,
    noise_span: float = 0.8,
) -> ChannelPower:
    """Measure one channel on a row of per-bin powers (see the module docstring).

    Parameters
    ----------
    powers : array_like
        ``P_k`` of one (averaged) row, low to high frequency.
    sample_rate_hz, center_freq_hz : float
        The SDR band: bin k is at ``centre + (k − N/2) f_s/N``.
    channel_freq_hz : float
        Nominal frequency f of the channel.
    low_cut_hz, high_cut_hz : float
        The channel is ``[f + low_cut, f + high_cut]``.
    dof : float
        Equivalent degrees of freedom of each noise bin (2 per averaged periodogram).
    noise_span : float
        Central fraction of the row whose bins (outside the channel) estimate the noise.

    Raises
    ------
    ValueError
        When the channel holds no bin of the row.
    """
    p = np.asarray(powers, dtype=np.float64)
    n = p.size
    df = sample_rate_hz / n
    f = center_freq_hz + (np.arange(n) - n // 2) * df
    lo, hi = channel_freq_hz + low_cut_hz, channel_freq_hz + high_cut_hz
    in_ch = (f >= lo - 1e-9 * df) & (f <= hi + 1e-9 * df)
    if not np.any(in_ch):
        raise ValueError(
            f"channel {lo:.0f}–{hi:.0f} Hz has no bin in the band {f[0]:.0f}–{f[-1] + df:.0f} Hz"
        )
    k = np.arange(n)
    margin = round(n * (1.0 - noise_span) / 2.0)
    noise_sel = (k >= margin) & (k < n - margin) & ~in_ch
    if np.count_nonzero(noise_sel) < 8:
        noise_sel = ~in_ch
    med = float(np.median(p[noise_sel])) if np.any(noise_sel) else float(np.min(p))
    n0 = max(med / _median_factor(max(dof, 2.0)), 1e-30)
    pc = p[in_ch]
    fc = f[in_ch]
    noise_in = n0 * pc.size
    total = float(pc.sum())
    d = pc - n0
    excess = float(d.sum())
    signal = max(excess, _SNR_FLOOR * noise_in)
    obw, centre_hz = occupied_band(d, fc, df)
    freq_offset = centre_hz - channel_freq_hz if math.isfinite(centre_hz) else 0.0
    return ChannelPower(
        signal=signal,
        total=total,
        noise_bin=n0,
        noise_density=n0 / df,
        snr_db=10.0 * math.log10(signal / noise_in),
        freq_offset_hz=freq_offset,
        occupied_bw_hz=obw,
        n_bins=int(pc.size),
        bin_hz=df,
        bins=slice(int(np.argmax(in_ch)), int(np.argmax(in_ch)) + int(pc.size)),
    )


# ------------------------------------------------------------------------- config


class OpenWebRxConfig(AdapterConfig):
    """How to reach one OpenWebRX server and which channel to measure (the options of an
    ``openwebrx`` receiver).

    One model for the adapter, the network file's ``options`` (all but ``url``, which is
    the receiver's ``address``) and ``heimdall receiver openwebrx``
    (:mod:`heimdall.producers.adapters.options`).
    """

    connection_fields: ClassVar[tuple[str, ...]] = ("url",)
    cli_flags: ClassVar[Mapping[str, str]] = {
        "freq_hz": "--freq",
        "channel_bw_hz": "--bandwidth",
        "center_freq_hz": "--center",
        "magic_key": "--key",
        "integration_s": "--integration",
    }

    url: str
    """The websocket, ws://host:8073/ws/ (http(s)://host:port/ is accepted and becomes
    ws(s)://host:port/ws/)."""
    freq_hz: float = Field(gt=0)
    """Channel frequency, Hz (the demodulator is tuned there)."""
    mod: str = "nfm"
    """Demodulator (nfm, am, usb, ...): it sets the S-meter's path, not the FFT."""
    low_cut_hz: float | None = None
    """Channel low edge from the frequency, Hz, sent as the demodulator's pass band
    (default −channel width / 2)."""
    high_cut_hz: float | None = None
    """Channel high edge from the frequency, Hz (default +channel width / 2)."""
    channel_bw_hz: float = Field(12_000.0, gt=0)
    """Channel width when the cuts are not given, Hz (12 kHz: 12.5 kHz NFM)."""
    profile: str | None = None
    """SDR profile to select on connect, 'sdr_id|profile_id' (selectprofile)."""
    center_freq_hz: float | None = None
    """Ask the server to move the SDR's centre here, Hz (setfrequency; honoured only when
    its allow_center_freq_changes is on, with the magic key when one is set)."""
    magic_key: str | None = None
    """The server's key for locked profiles and centre changes, if any."""
    squelch_level_db: float = -150.0
    """Sent as squelch_level, dB (−150: open; the squelch would gate the audio only)."""
    output_rate: int = Field(12_000, gt=0)
    """Audio rate asked for in connectionproperties, Hz."""
    hd_output_rate: int = Field(48_000, gt=0)
    """HD audio rate asked for in connectionproperties, Hz."""
    measure: MeasureKind = "combined"
    """Where the channel power comes from: combined (S-meter with the FFT's noise floor),
    fft (the FFT rows only) or smeter (the S-meter only)."""
    integration_s: float = Field(0.5, gt=0)
    """Rows and S-meter readings are averaged over this long per measurement, s."""
    full_scale_dbm: float = 0.0
    """Antenna power of a full-scale signal if calibrated, dBm (0: report dBFS)."""
    fft_fps: float = Field(DEFAULT_FFT_FPS, gt=0)
    """The server's fft_fps (not sent to clients; default the server's): with the overlap
    it gives each row's averaging, hence the noise statistics and the row period."""
    fft_voverlap_factor: float = Field(DEFAULT_FFT_VOVERLAP, ge=0, lt=1)
    """The server's fft_voverlap_factor (not sent to clients; default the server's)."""
    noise_span: float = Field(0.8, gt=0, le=1)
    """Central fraction of the row used for the noise floor."""
    detect_threshold_db: float = 6.0
    """SNR threshold of a measurement's detected flag, dB."""
    client_name: str = "heimdall"
    """client= of the handshake."""
    publish_waterfall: bool = True
    """Publish the decoded waterfall rows (WaterfallRow)."""
    waterfall_stride: int = Field(1, ge=1)
    """Publish one server row in this many (1 = every row; the others are skipped)."""
    publish_audio: bool = True
    """Publish the decoded audio (AudioChunk)."""
    audio_chunk_s: float = Field(0.25, gt=0)
    """Length of an audio chunk, s (3000 samples at 12 kHz for 0.25 s)."""

    @classmethod
    def from_address(cls, address: str) -> dict[str, Any]:
        """The server's URL is the ``url``."""
        return {"url": address}

    @property
    def ws_url(self) -> str:
        """The websocket URL (``/ws/`` added to a bare ``http(s)://host:port/``)."""
        u = self.url.strip()
        if u.startswith("http://"):
            u = "ws://" + u[7:]
        elif u.startswith("https://"):
            u = "wss://" + u[8:]
        scheme, _, rest = u.partition("://")
        if "/" not in rest:
            rest += "/"
        host, _, path = rest.partition("/")
        if path == "":
            path = "ws/"
        return f"{scheme}://{host}/{path}"

    @property
    def cuts(self) -> tuple[float, float]:
        lo = -self.channel_bw_hz / 2 if self.low_cut_hz is None else self.low_cut_hz
        hi = self.channel_bw_hz / 2 if self.high_cut_hz is None else self.high_cut_hz
        return float(lo), float(hi)

    def check(self) -> None:
        """Raise :class:`ConfigError` (one line naming the field) if it cannot work.

        Single-field ranges are the fields' constraints (checked when the model is built).
        """
        try:
            ws_address(self.ws_url)
        except ValueError as exc:
            raise ConfigError(f"url: {exc}") from None
        lo, hi = self.cuts
        if not hi > lo:
            raise ConfigError(f"high_cut_hz {hi:g} must be above low_cut_hz {lo:g}")
        if self.profile is not None and "|" not in self.profile:
            raise ConfigError(f"profile: {self.profile!r} must be 'sdr_id|profile_id'")
        if not self.mod or any(c.isspace() for c in self.mod):
            raise ConfigError(f"mod: {self.mod!r} is not a modulation name")
        client_handshake(self.client_name)


@dataclass
class _Window:
    """Rows or readings gathered for one measurement."""

    first_ns: int = 0
    last_ns: int = 0
    count: int = 0
    total: npt.NDArray[np.float64] | float | None = None


@dataclass
class _AudioBatch:
    """Decoded audio gathered for one :class:`AudioChunk`."""

    parts: list[npt.NDArray[np.int16]] = field(default_factory=list)
    count: int = 0
    first_ns: int = 0
    tuned: tuple[float, float] | None = None  # (SDR centre, offset), Hz


@dataclass
class ServerState:
    """What the server told us so far (``config`` is the merge of every ``config`` message)."""

    handshake: dict[str, str] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    profiles: list[dict[str, Any]] = field(default_factory=list)

    @property
    def center_freq_hz(self) -> float | None:
        v = self.config.get("center_freq")
        return float(v) if isinstance(v, int | float) else None

    @property
    def samp_rate_hz(self) -> float | None:
        v = self.config.get("samp_rate")
        return float(v) if isinstance(v, int | float) and v > 0 else None


# ------------------------------------------------------------------------- adapter


class OpenWebRxAdapter(WebSocketAdapter):
    """Measure one channel of an OpenWebRX(+) receiver, publish its waterfall and audio.

    See the module docstring.

    Parameters
    ----------
    info : ReceiverInfo
        Receiver id, position, calibration offset, ...
    config : OpenWebRxConfig
        Server URL, channel, what to measure.
    options : AdapterOptions, optional
        Buffer, timeouts, backoff.

    Attributes
    ----------
    on_audio : callable, optional
        Called with ``(int16 samples, rate)`` for every audio message (decoded from ADPCM when
        the server compresses); audio is decoded only when this is set or ``publish_audio``.
    waterfall_rows, audio_chunks : int
        Rows and audio chunks published so far (the next ``seq`` of each).
    server : ServerState
        What the server said in this session.
    """

    kind = "openwebrx"
    label = "OpenWebRX"
    refused_hint = "is the URL right and the server running?"

    def __init__(
        self, info: ReceiverInfo, config: OpenWebRxConfig, options: AdapterOptions | None = None
    ) -> None:
        config.check()
        super().__init__(info, options)
        self.config = config
        self.on_audio: Callable[[npt.NDArray[np.int16], int], None] | None = None
        self.rows = 0
        self.smeter_readings = 0
        self.audio_bytes = 0
        self.waterfall_rows = 0
        self.audio_chunks = 0
        self.reset()

    @property
    def address(self) -> str:
        return self.config.ws_url

    def reset(self) -> None:
        self.server = ServerState()
        self._dsp_offset: int | None = None
        self._started = False
        self._asked_center = False
        self._fft = _Window()
        self._smeter = _Window()
        self._last_noise: tuple[float, float] | None = None  # (N̂ per bin, Δf)
        self._audio = SyncAdpcmDecoder()
        self._hd_audio = SyncAdpcmDecoder()
        self._audio_batches = {2: _AudioBatch(), 4: _AudioBatch()}
        self._server_rows = 0

    # ---------------------------------------------------------------- session

    async def open(self) -> None:
        cfg = self.config
        await self.connect_ws(cfg.ws_url)
        await self.send_text(client_handshake(cfg.client_name))
        first = await self.recv()
        if first is None:
            raise ProtocolError(
                f"{self.label} at {self.address} closed the connection after the handshake: "
                "is this an OpenWebRX server?"
            )
        self.data_received(len(first))
        if not isinstance(first, str) or not first.startswith("CLIENT DE SERVER"):
            shown = first[:40] if isinstance(first, str) else bytes(first[:16])
            raise ProtocolError(
                f"{self.label} at {self.address} did not answer the handshake with "
                f"'CLIENT DE SERVER ...' (got {shown!r}): is this an OpenWebRX server?"
            )
        self.server.handshake = parse_server_handshake(first)
        await self._send_json(
            {
                "type": "connectionproperties",
                "params": {"output_rate": cfg.output_rate, "hd_output_rate": cfg.hd_output_rate},
            }
        )
        if cfg.profile is not None:
            params: dict[str, Any] = {"profile": cfg.profile}
            if cfg.magic_key:
                params["key"] = cfg.magic_key
            await self._send_json({"type": "selectprofile", "params": params})
        log.info("%s: %s %s (version %s)", self.info.receiver_id, self.label, self.address,
                 self.server.handshake.get("version", "?"))  # fmt: skip

    async def stream(self) -> None:
        while True:
            msg = await self.recv()
            if msg is None:
                return
            self.data_received(len(msg))
            arrival_ns = time.time_ns()
            if isinstance(msg, str):
                await self._on_text(msg, arrival_ns)
            else:
                self._on_binary(msg, arrival_ns)

    async def _send_json(self, obj: Mapping[str, Any]) -> None:
        await self.send_text(json.dumps(obj, separators=(",", ":")))

    # ---------------------------------------------------------------- text

    async def _on_text(self, text: str, arrival_ns: int) -> None:
        try:
            msg = json.loads(text)
        except ValueError:
            self.malformed("text message is not JSON", text[:60])
            return
        if not isinstance(msg, dict) or "type" not in msg:
            self.malformed("JSON message without a type", text[:60])
            return
        kind = msg["type"]
        value = msg.get("value")
        if kind == "config":
            if not isinstance(value, dict):
                self.malformed("config without a dict value")
                return
            before = (self.server.center_freq_hz, self.server.samp_rate_hz)
            self.server.config.update(value)
            if (self.server.center_freq_hz, self.server.samp_rate_hz) != before:
                self._fft = _Window()  # rows of another band must not be averaged together
            await self._tune()
        elif kind == "smeter":
            if not isinstance(value, int | float) or not math.isfinite(value):
                self.malformed("smeter value is not a number", repr(value)[:40])
                return
            self._on_smeter(float(value), arrival_ns)
        elif kind == "receiver_details" and isinstance(value, dict):
            self.server.details = value
        elif kind == "profiles" and isinstance(value, list):
            self.server.profiles = [p for p in value if isinstance(p, dict)]
        elif kind == "backoff":
            reason = msg.get("reason", "no reason given")
            raise AdapterError(f"{self.label} at {self.address} turned us away: {reason}")
        elif kind == "sdr_error":
            raise AdapterError(f"{self.label} at {self.address} reports an SDR error: {value}")
        elif kind == "demodulator_error":
            log.warning("%s: %s at %s: demodulator error: %s",
                        self.info.receiver_id, self.label, self.address, value)  # fmt: skip

    async def _tune(self) -> None:
        """Start or re-tune the demodulator once the band is known (and fits the channel)."""
        cfg = self.config
        center, rate = self.server.center_freq_hz, self.server.samp_rate_hz
        if center is None or rate is None:
            return
        if (
            cfg.center_freq_hz is not None
            and not self._asked_center
            and center != cfg.center_freq_hz
        ):
            self._asked_center = True
            params: dict[str, Any] = {"frequency": round(cfg.center_freq_hz)}
            if cfg.magic_key:
                params["key"] = cfg.magic_key
            await self._send_json({"type": "setfrequency", "params": params})
        if not self._fits(center, rate):
            return
        offset = round(cfg.freq_hz - center)
        if offset == self._dsp_offset:
            return
        lo, hi = cfg.cuts
        if not self._started:
            for m in dsp_messages(low_cut=lo, high_cut=hi, offset_freq=offset, mod=cfg.mod,
                                  squelch_level=cfg.squelch_level_db):  # fmt: skip
                await self._send_json(m)
            self._started = True
        else:
            await self._send_json({"type": "dspcontrol", "params": {"offset_freq": offset}})
        self._dsp_offset = offset

    def _fits(self, center: float, rate: float) -> bool:
        lo, hi = self.config.cuts
        f = self.config.freq_hz
        return center - rate / 2 <= f + lo and f + hi <= center + rate / 2

    # ---------------------------------------------------------------- binary

    def _on_binary(self, data: bytes, arrival_ns: int) -> None:
        if not data:
            self.malformed("empty binary message")
            return
        kind = data[0]
        payload = memoryview(data)[1:]
        if kind == 1:
            self._on_fft(payload, arrival_ns)
        elif kind in (2, 4):
            self.audio_bytes += len(payload)
            if self.on_audio is not None or self.config.publish_audio:
                self._on_audio_data(kind, payload, arrival_ns)
        elif kind == 3:
            pass  # secondary (digimode) FFT: not used
        else:
            self.malformed("unknown binary message type", f"type {kind}, {len(data)} bytes")

    def _on_audio_data(self, kind: int, payload: memoryview, arrival_ns: int) -> None:
        cfg = self.config
        rate = cfg.output_rate if kind == 2 else cfg.hd_output_rate
        if self.server.config.get("audio_compression") == "adpcm":
            dec = self._audio if kind == 2 else self._hd_audio
            samples = dec.decode(payload)
        else:
            if len(payload) % 2:
                self.malformed("audio message of an odd number of bytes", f"{len(payload)}")
                return
            samples = np.frombuffer(payload, dtype="<i2").astype(np.int16)
        if samples.size and self.on_audio is not None:
            self.on_audio(samples, rate)
        if samples.size and self.config.publish_audio:
            self._batch_audio(kind, samples, rate, arrival_ns)

    def _batch_audio(
        self, kind: int, samples: npt.NDArray[np.int16], rate: int, arrival_ns: int
    ) -> None:
        """Cut the decoded audio into chunks of ``audio_chunk_s`` and publish each."""
        b = self._audio_batches[kind]
        center = self.server.center_freq_hz
        offset = self._dsp_offset
        tuned = None if center is None or offset is None else (center, float(offset))
        if b.count and b.tuned != tuned:
            self._emit_audio(kind, rate)  # the channel moved: what came before is published
            b = self._audio_batches[kind]
        target = max(round(self.config.audio_chunk_s * rate), 1)
        n = int(samples.size)
        i = 0
        while i < n:
            if b.count == 0:
                b.first_ns = arrival_ns - round((n - i) * 1e9 / rate)
                b.tuned = tuned
            take = min(target - b.count, n - i)
            b.parts.append(samples[i : i + take])
            b.count += take
            i += take
            if b.count >= target:
                self._emit_audio(kind, rate)
                b = self._audio_batches[kind]

    def _emit_audio(self, kind: int, rate: int) -> None:
        b, self._audio_batches[kind] = self._audio_batches[kind], _AudioBatch()
        if not b.count:
            return
        cfg = self.config
        center, offset = b.tuned if b.tuned is not None else (cfg.freq_hz, 0.0)
        lo, hi = cfg.cuts
        seq, self.audio_chunks = self.audio_chunks, self.audio_chunks + 1
        self.emit_event(AudioChunk(
            receiver_id=self.info.receiver_id, seq=seq, t_ns=b.first_ns, clock=ClockSource.NTP,
            position=self.info.position, sample_rate_hz=float(rate), mode=cfg.mod,
            freq_hz=center + offset, center_freq_hz=center, offset_freq_hz=offset,
            low_cut_hz=lo, high_cut_hz=hi,
            samples=np.concatenate(b.parts).astype(np.int16, copy=False),
            compression=self._compression("audio_compression"), source=self.kind,
            published_ns=time.time_ns(),
        ))  # fmt: skip

    def _compression(self, key: str) -> str:
        return "adpcm" if self.server.config.get(key) == "adpcm" else "none"

    def _publish_row(
        self, row: npt.NDArray[np.float32], center: float, rate: float, arrival_ns: int
    ) -> None:
        """Publish one decoded row as a :class:`WaterfallRow` (one in ``waterfall_stride``)."""
        cfg = self.config
        k, self._server_rows = self._server_rows, self._server_rows + 1
        if not cfg.publish_waterfall or k % cfg.waterfall_stride:
            return
        seq, self.waterfall_rows = self.waterfall_rows, self.waterfall_rows + 1
        n = int(row.size)
        self.emit_event(WaterfallRow(
            receiver_id=self.info.receiver_id, seq=seq,
            t_ns=arrival_ns - round(self._row_period_s * 1e9), clock=ClockSource.NTP,
            position=self.info.position, center_freq_hz=center, sample_rate_hz=rate,
            bin_hz=rate / n, n_bins=n, values=row, row_period_s=self._row_period_s,
            averages=self._averages(rate, n), row_stride=cfg.waterfall_stride,
            compression=self._compression("fft_compression"),
            full_scale_dbm=cfg.full_scale_dbm + self.info.calibration_offset_db,
            source=self.kind, published_ns=time.time_ns(),
        ))  # fmt: skip

    def _decode_row(self, payload: memoryview) -> npt.NDArray[np.float32] | None:
        size = self.server.config.get("fft_size")
        compression = self.server.config.get("fft_compression", "none")
        if compression == "adpcm":
            if isinstance(size, int) and len(payload) != (COMPRESS_FFT_PAD_N + size) // 2:
                self.malformed("FFT row of the wrong length",
                               f"{len(payload)} bytes for fft_size {size} (ADPCM)")  # fmt: skip
                return None
            try:
                return decode_fft_row(payload)
            except ValueError as exc:
                self.malformed("FFT row of the wrong length", str(exc))
                return None
        if len(payload) % 4 or (isinstance(size, int) and len(payload) != 4 * size):
            self.malformed("FFT row of the wrong length",
                           f"{len(payload)} bytes for fft_size {size} (float32)")  # fmt: skip
            return None
        return np.frombuffer(payload, dtype="<f4").astype(np.float32)

    def _on_fft(self, payload: memoryview, arrival_ns: int) -> None:
        center, rate = self.server.center_freq_hz, self.server.samp_rate_hz
        if center is None or rate is None:
            self.malformed("FFT row before the band is known")
            return
        row = self._decode_row(payload)
        if row is None:
            return
        if not np.all(np.isfinite(row)):
            self.malformed("FFT row with non-finite values")
            return
        self._publish_row(row, center, rate, arrival_ns)
        if not self._fits(center, rate):
            self.malformed("channel outside the band",
                           f"{self.config.freq_hz:.0f} Hz, band {center - rate / 2:.0f}–"
                           f"{center + rate / 2:.0f} Hz")  # fmt: skip
            return
        self.rows += 1
        p = bin_powers(row)
        w = self._fft
        if w.count and (not isinstance(w.total, np.ndarray) or w.total.size != p.size):
            w = self._fft = _Window()
        if w.count == 0:
            w.first_ns, w.total = arrival_ns, p.copy()
        else:
            assert isinstance(w.total, np.ndarray)
            w.total += p
        w.count += 1
        w.last_ns = arrival_ns
        if (arrival_ns - w.first_ns) / 1e9 + self._row_period_s >= self.config.integration_s:
            self._finish_fft(center, rate)

    @property
    def _row_period_s(self) -> float:
        return 1.0 / self.config.fft_fps

    def _averages(self, rate: float, size: int) -> int:
        cfg = self.config
        if cfg.fft_voverlap_factor <= 0:
            return 1
        k = round(rate / size / cfg.fft_fps / (1.0 - cfg.fft_voverlap_factor))
        return max(int(k), 1)

    def _finish_fft(self, center: float, rate: float) -> None:
        w, self._fft = self._fft, _Window()
        assert isinstance(w.total, np.ndarray)
        mean = w.total / w.count
        cfg = self.config
        lo, hi = cfg.cuts
        dof = 2.0 * self._averages(rate, mean.size) * w.count
        try:
            cp = channel_power(mean, sample_rate_hz=rate, center_freq_hz=center,
                               channel_freq_hz=cfg.freq_hz, low_cut_hz=lo, high_cut_hz=hi,
                               dof=dof, noise_span=cfg.noise_span)  # fmt: skip
        except ValueError as exc:
            self.malformed("channel outside the band", str(exc))
            return
        self._last_noise = (cp.noise_bin, cp.bin_hz)
        sm, self._smeter = self._smeter, _Window()
        signal, snr_db = cp.signal, cp.snr_db
        if cfg.measure in ("combined", "smeter") and sm.count:
            assert isinstance(sm.total, float)
            noise_in = cp.noise_bin * (hi - lo) / cp.bin_hz
            signal = max(sm.total / sm.count - noise_in, _SNR_FLOOR * noise_in)
            snr_db = 10.0 * math.log10(signal / noise_in)
        elif cfg.measure == "smeter":
            return  # no reading in this window (demodulator not running yet)
        self.emit_measurement(self._measurement(
            w, signal=signal, noise_density=cp.noise_density, snr_db=snr_db,
            freq_offset_hz=cp.freq_offset_hz, occupied_bw_hz=cp.occupied_bw_hz,
            psd=tuple(float(x) for x in self._db(mean[cp.bins] / cp.bin_hz)),
            psd_bin_hz=cp.bin_hz,
        ))  # fmt: skip

    def _on_smeter(self, value: float, arrival_ns: int) -> None:
        self.smeter_readings += 1
        w = self._smeter
        if w.count == 0:
            w.first_ns, w.total = arrival_ns, 0.0
        assert isinstance(w.total, float)
        w.total += max(value, 0.0)
        w.count += 1
        w.last_ns = arrival_ns

    @staticmethod
    def _db(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return 10.0 * np.log10(np.maximum(x, 1e-30))

    def _measurement(
        self,
        w: _Window,
        *,
        signal: float,
        noise_density: float,
        snr_db: float,
        freq_offset_hz: float,
        occupied_bw_hz: float,
        psd: tuple[float, ...],
        psd_bin_hz: float,
    ) -> Measurement:
        cfg = self.config
        period = self._row_period_s
        offset = cfg.full_scale_dbm + self.info.calibration_offset_db
        lo, hi = cfg.cuts
        return Measurement(
            event_id=new_event_id(),
            chunk_id=new_event_id(),
            receiver_id=self.info.receiver_id,
            t_ns=w.first_ns - round(period * 1e9),
            duration_s=(w.last_ns - w.first_ns) / 1e9 + period,
            clock=ClockSource.NTP,
            position=self.info.position,
            channel_id=channel_id_for(cfg.freq_hz),
            channel_freq_hz=float(cfg.freq_hz),
            channel_bw_hz=hi - lo,
            power_dbm=10.0 * math.log10(signal) + offset,
            noise_floor_dbm_hz=10.0 * math.log10(max(noise_density, 1e-30)) + offset,
            snr_db=snr_db,
            freq_offset_hz=freq_offset_hz,
            occupied_bw_hz=occupied_bw_hz,
            detected=bool(snr_db >= cfg.detect_threshold_db),
            psd_dbm_hz=tuple(v + offset for v in psd),
            psd_bin_hz=psd_bin_hz,
            chunk_published_ns=w.last_ns,
            published_ns=time.time_ns(),
        )
