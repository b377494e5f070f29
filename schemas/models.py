"""Heimdall's events as Python objects, apart from their Avro wire dicts.

The fields of every model, their types and defaults, and its conversion to and from the wire
dict come from its ``.avsc`` record: each model subclasses the dataclass generated from it
(:mod:`heimdall.schemas.events_generated`, by :mod:`heimdall.schemas.codegen`), whose
``to_dict()``/``from_dict()`` are the one generic conversion of :mod:`heimdall.schemas.wire`.
This module adds what the schema cannot say: validation, derived quantities, and the three
fields held as numpy arrays where the wire has bytes (:class:`IqChunk` holds its samples as
the complex64 array ``iq`` where the wire has ``samples``), each with its declared
:class:`~heimdall.schemas.wire.FieldConverter`. A new Avro field needs nothing here.

``SCHEMA`` is the Avro full name of the record. Units are SI and named in the fields.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from heimdall.core.errors import InvalidEventError
from heimdall.schemas import events_generated as gen
from heimdall.schemas.events_generated import ClockSource, ReceiverState, SampleFormat
from heimdall.schemas.wire import FieldConverter, register

__all__ = [
    "CI16_SCALE",
    "MAX_ABS_DB",
    "MAX_T_NS",
    "MODELS",
    "AudioChunk",
    "Band",
    "ClockSource",
    "IqChunk",
    "Localization",
    "Measurement",
    "ModelPointer",
    "Observation",
    "ObservationMember",
    "Position",
    "ReceiverState",
    "ReceiverStatus",
    "SampleFormat",
    "TdoaPair",
    "Truth",
    "WaterfallRow",
    "decode_samples",
    "encode_samples",
]

#: ci16 wire value = clip(round(x * CI16_SCALE), -32768, 32767); decoded x = value / CI16_SCALE.
CI16_SCALE = 32768.0
#: Event times (ns since the epoch) must lie in [0, MAX_T_NS), i.e. up to the year 2116, so
#: that windows and blocks computed from them stay 64-bit Avro longs.
MAX_T_NS = 1 << 62
#: A level in dB (dBm, dBm/Hz, dB) beyond ±MAX_ABS_DB is not physical; ``10**(P/10)``
#: overflows a double near 3,083 dB.
MAX_ABS_DB = 1000.0


def _check_time_ns(name: str, t_ns: int) -> None:
    if not 0 <= t_ns < MAX_T_NS:
        raise InvalidEventError(f"{name}: {t_ns} is not in [0, 2**62) ns since the epoch")


def _check_finite(prefix: str, obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(obj, name)
        if not math.isfinite(v):
            raise InvalidEventError(f"{prefix}{name}: {v!r} is not finite")


def _check_db(prefix: str, obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        v = getattr(obj, name)
        if not -MAX_ABS_DB <= v <= MAX_ABS_DB:  # NaN fails too
            raise InvalidEventError(f"{prefix}{name}: {v!r} is not in [-1000, 1000] dB")


def _check_id(name: str, value: str) -> None:
    if not value:
        raise InvalidEventError(f"{name}: empty")


def _array_eq(a: Any, b: Any, array_field: str) -> bool:
    """Dataclass equality with ``array_field`` compared by ``np.array_equal``."""
    if type(a) is not type(b):
        return NotImplemented
    names = _field_names(type(a))
    return all(
        getattr(a, f) == getattr(b, f) for f in names if f != array_field
    ) and np.array_equal(getattr(a, array_field), getattr(b, array_field))


_FIELDS: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Position(gen.PositionFields):
    """WGS84 position.

    Parameters
    ----------
    lat_deg, lon_deg : float
        Latitude and longitude, degrees.
    alt_m : float
        Height above the ellipsoid, m.
    """

    def check(self, prefix: str = "position") -> None:
        """Raise :class:`InvalidEventError` unless lat is in [-90, 90] and lon in [-180, 180]."""
        if not -90.0 <= self.lat_deg <= 90.0:
            raise InvalidEventError(f"{prefix}.lat_deg: {self.lat_deg!r} is not in [-90, 90]")
        if not -180.0 <= self.lon_deg <= 180.0:
            raise InvalidEventError(f"{prefix}.lon_deg: {self.lon_deg!r} is not in [-180, 180]")
        if not np.isfinite(self.alt_m):
            raise InvalidEventError(f"{prefix}.alt_m: {self.alt_m!r} is not finite")


# --------------------------------------------------------------------------- IQ


def encode_samples(iq: npt.ArrayLike, fmt: SampleFormat) -> bytes:
    """Complex samples -> wire bytes in ``fmt``.

    ci16 writes ``clip(round(x * 32768), -32768, 32767)`` for I and Q (error at most
    1/65536 inside [-1, 32767/32768]); cf32 writes float32. Both interleaved little-endian.
    """
    x = np.ascontiguousarray(iq, dtype=np.complex64).reshape(-1)
    if fmt is SampleFormat.CF32:
        return x.astype("<c8", copy=False).tobytes()
    v = x.view(np.float32) * np.float32(CI16_SCALE)
    if not np.isfinite(v).all():
        raise InvalidEventError("samples: NaN or infinite samples cannot be written as ci16")
    np.rint(v, out=v)
    np.clip(v, -32768.0, 32767.0, out=v)
    return v.astype("<i2").tobytes()


def decode_samples(data: bytes, fmt: SampleFormat) -> npt.NDArray[np.complex64]:
    """Wire bytes in ``fmt`` -> complex64 array (read-only when no conversion was needed)."""
    pair = 8 if fmt is SampleFormat.CF32 else 4
    if len(data) % pair:
        raise InvalidEventError(
            f"samples: {len(data)} bytes is not a whole number of {fmt.value} IQ pairs "
            f"({pair} bytes each)"
        )
    if fmt is SampleFormat.CF32:
        return np.frombuffer(data, dtype="<c8").astype(np.complex64, copy=False)
    v = np.frombuffer(data, dtype="<i2").astype(np.float32)
    v *= np.float32(1.0 / CI16_SCALE)
    return v.view(np.complex64)


def _iq_to_wire(chunk: IqChunk) -> bytes:
    return encode_samples(chunk.iq, SampleFormat(chunk.sample_format))


def _iq_from_wire(d: Mapping[str, Any]) -> npt.NDArray[np.complex64]:
    return decode_samples(d["samples"], SampleFormat(d["sample_format"]))


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class IqChunk(gen.IqChunkFields):
    """A contiguous block of complex baseband samples from one receiver (``rf.iq.v1``).

    Parameters
    ----------
    receiver_id : str
        Receiver that took the samples (also the Kafka key).
    seq : int
        Per-receiver sequence number, +1 per chunk.
    t_ns : int
        Time of the first sample, ns since the Unix epoch (UTC).
    clock : ClockSource
        What disciplines ``t_ns``.
    center_freq_hz, sample_rate_hz : float
        Tuning frequency and complex sample rate, Hz.
    sample_format : SampleFormat
        Encoding of the samples on the wire.
    iq : numpy.ndarray
        complex64 samples, full scale = 1 (``samples`` on the wire).
    full_scale_dbm : float
        Power at the antenna port, dBm, of a mean ``|x|^2`` of 1.
    position : Position
        Antenna position when the chunk was taken.
    gain_db : float
        Receiver gain setting, dB (informational).
    source : str
        Adapter kind (sim, openwebrx, kiwisdr, rtltcp, sigmf, kiwi-wav).
    published_ns : int
        Wall clock at publication, ns since the epoch (0 = unknown).
    event_id : str
        UUIDv7; a new one by default.
    """

    WIRE_FIELDS: ClassVar[Mapping[str, FieldConverter]] = {
        "samples": FieldConverter("iq", _iq_to_wire, _iq_from_wire)
    }

    @property
    def n_samples(self) -> int:
        return int(self.iq.shape[0])

    @property
    def duration_s(self) -> float:
        """Length of the chunk, s."""
        return self.n_samples / self.sample_rate_hz

    def __eq__(self, other: object) -> bool:
        return _array_eq(self, other, "iq")

    __hash__ = None  # type: ignore[assignment]

    def validate(self, max_samples: int) -> None:
        """Raise :class:`InvalidEventError` (one line naming the field) if unusable.

        Checks: 1..``max_samples`` samples, all finite; ``sample_rate_hz`` in (0, 100e6];
        ``center_freq_hz`` in (0, 300e9]; a valid position; a receiver id; ``t_ns`` and
        ``published_ns`` in [0, 2**62); finite ``full_scale_dbm`` (within ±1000 dB) and
        ``gain_db``.
        """
        if self.iq.ndim != 1:
            raise InvalidEventError(f"samples: expected a 1-D array, got shape {self.iq.shape}")
        n = self.n_samples
        if n == 0:
            raise InvalidEventError("samples: no samples")
        if n > max_samples:
            raise InvalidEventError(f"samples: {n} samples exceed the maximum of {max_samples}")
        bad = n - int(np.count_nonzero(np.isfinite(self.iq)))
        if bad:
            raise InvalidEventError(f"samples: {bad} of {n} samples are NaN or infinite")
        if not 0.0 < self.sample_rate_hz <= 100e6:
            raise InvalidEventError(f"sample_rate_hz: {self.sample_rate_hz!r} is not in (0, 100e6]")
        if not 0.0 < self.center_freq_hz <= 300e9:
            raise InvalidEventError(f"center_freq_hz: {self.center_freq_hz!r} is not in (0, 300e9]")
        self.position.check()
        _check_id("receiver_id", self.receiver_id)
        _check_time_ns("t_ns", self.t_ns)
        if self.published_ns:
            _check_time_ns("published_ns", self.published_ns)
        _check_db("", self, ("full_scale_dbm", "gain_db"))


# ------------------------------------------------------------------- features


@dataclass(frozen=True, slots=True, kw_only=True)
class Measurement(gen.MeasurementFields):
    """What the features stage measured of one channel in one IQ chunk (``rf.features.v1``).

    Powers in dBm at the antenna port, densities in dBm/Hz, frequencies and bandwidths in
    Hz, times in ns since the epoch, ``duration_s`` in s. ``psd_dbm_hz`` is a Welch PSD
    over the chunk bandwidth, low to high frequency, ``psd_bin_hz`` apart.
    """

    def validate(self) -> None:
        """Raise :class:`InvalidEventError` (one line naming the field) if unusable.

        Checks: receiver and channel ids; ``t_ns`` and the publication times in [0, 2**62);
        ``duration_s`` in (0, 3600]; finite frequencies and bandwidths; powers, noise floor
        and SNR within ±1000 dB; a valid position.
        """
        _check_id("receiver_id", self.receiver_id)
        _check_id("channel_id", self.channel_id)
        _check_time_ns("t_ns", self.t_ns)
        for name in ("chunk_published_ns", "published_ns"):
            if getattr(self, name):
                _check_time_ns(name, getattr(self, name))
        if not 0.0 < self.duration_s <= 3600.0:
            raise InvalidEventError(f"duration_s: {self.duration_s!r} is not in (0, 3600]")
        names = ("channel_freq_hz", "channel_bw_hz", "freq_offset_hz", "occupied_bw_hz")
        _check_finite("", self, (*names, "psd_bin_hz"))
        _check_db("", self, ("power_dbm", "noise_floor_dbm_hz", "snr_db"))
        self.position.check()


# --------------------------------------------------------------- observations


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservationMember(gen.ObservationMemberFields):
    """One receiver's measurements of an emission within a window, averaged.

    ``power_dbm`` is the mean of the linear powers, ``power_std_db`` the spread of the
    per-chunk powers (dB), ``t_ns`` the earliest measurement.
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class TdoaPair(gen.TdoaPairFields):
    """``tdoa_s`` = t(receiver_a) - t(receiver_b) of the emission, s, with 1-sigma ``sigma_s``.

    ``sigma_s`` holds the statistical and the systematic parts in quadrature;
    ``sigma_sys_s`` is the systematic part, ``quality`` the normalised correlation peak
    (0..1) and ``method`` how the lag was measured (``xcorr`` or ``dcf77-pn``).
    """


@dataclass(frozen=True, slots=True, kw_only=True)
class Observation(gen.ObservationFields):
    """One emission heard by N receivers in one association window (``rf.observations.v1``).

    Window bounds in ns since the epoch; ``upstream_latency_s`` in s.
    """

    def validate(self) -> None:
        """Raise :class:`InvalidEventError` (one line naming the field) if unusable.

        Checks: a channel id and finite frequency; window times in [0, 2**62), start before
        end; members with distinct non-empty receiver ids, valid positions, times in range,
        levels within ±1000 dB and a finite non-negative spread; TDOA pairs between two
        distinct members with a finite ``|tdoa_s|`` ≤ 1 s, ``sigma_s`` > 0 and finite,
        ``sigma_sys_s`` ≥ 0.
        """
        _check_id("channel_id", self.channel_id)
        _check_finite("", self, ("channel_freq_hz", "upstream_latency_s"))
        _check_time_ns("window_start_ns", self.window_start_ns)
        _check_time_ns("window_end_ns", self.window_end_ns)
        if self.window_end_ns < self.window_start_ns:
            raise InvalidEventError(
                f"window_end_ns: {self.window_end_ns} is before window_start_ns "
                f"{self.window_start_ns}"
            )
        seen: set[str] = set()
        for i, m in enumerate(self.members):
            at = f"members[{i}]."
            _check_id(f"{at}receiver_id", m.receiver_id)
            if m.receiver_id in seen:
                raise InvalidEventError(f"{at}receiver_id: {m.receiver_id!r} appears twice")
            seen.add(m.receiver_id)
            m.position.check(f"{at}position")
            _check_time_ns(f"{at}t_ns", m.t_ns)
            _check_db(at, m, ("power_dbm", "snr_db", "noise_floor_dbm_hz"))
            _check_finite(at, m, ("freq_offset_hz",))
            if not 0.0 <= m.power_std_db <= MAX_ABS_DB:
                raise InvalidEventError(f"{at}power_std_db: {m.power_std_db!r} is not in [0, 1000]")
            if m.n_measurements < 0:
                raise InvalidEventError(f"{at}n_measurements: {m.n_measurements} is negative")
        for i, p in enumerate(self.tdoa_pairs):
            at = f"tdoa_pairs[{i}]."
            for name in ("receiver_a", "receiver_b"):
                if getattr(p, name) not in seen:
                    raise InvalidEventError(f"{at}{name}: {getattr(p, name)!r} is not a member")
            if p.receiver_a == p.receiver_b:
                raise InvalidEventError(f"{at}receiver_b: {p.receiver_b!r} paired with itself")
            if not abs(p.tdoa_s) <= 1.0:
                raise InvalidEventError(f"{at}tdoa_s: {p.tdoa_s!r} is not in [-1, 1] s")
            if not 0.0 < p.sigma_s < math.inf:
                raise InvalidEventError(f"{at}sigma_s: {p.sigma_s!r} is not positive and finite")
            if not 0.0 <= p.sigma_sys_s < math.inf:
                raise InvalidEventError(f"{at}sigma_sys_s: {p.sigma_sys_s!r} is not in [0, inf)")


# -------------------------------------------------------------- localizations


@dataclass(frozen=True, slots=True, kw_only=True)
class Localization(gen.LocalizationFields):
    """Where an emission came from, with its uncertainty (``rf.localizations.v1``).

    ``cov_ee_m2``, ``cov_en_m2``, ``cov_nn_m2`` are the position covariance in the local
    ENU frame at the estimate, m^2. ``processing_latency_s`` in s.
    """

    @property
    def cov_m2(self) -> npt.NDArray[np.float64]:
        """The 2x2 east/north covariance matrix, m^2."""
        return np.array([[self.cov_ee_m2, self.cov_en_m2], [self.cov_en_m2, self.cov_nn_m2]])


@dataclass(frozen=True, slots=True, kw_only=True)
class Truth(gen.TruthFields):
    """Ground truth of a known or simulated transmitter at one instant (``rf.truth.v1``).

    ``freq_hz`` in Hz, ``tx_power_dbm`` in dBm (None = unknown), ``velocity_enu_mps`` the
    east/north/up velocity in m/s (empty = unknown).
    """


# ------------------------------------------------------------------ receivers


@dataclass(frozen=True, slots=True, kw_only=True)
class Band(gen.BandFields):
    """A frequency range a receiver covers, Hz."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverStatus(gen.ReceiverStatusFields):
    """Description and health of one receiver (compacted ``rf.receivers.v1``).

    ``calibration_offset_db`` in dB, ``chunks_per_s`` in 1/s, ``last_data_ns`` and
    ``updated_ns`` in ns since the epoch; ``errors`` and ``dropped`` are running counts.
    """


# --------------------------------------------------------------------- models


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPointer(gen.ModelPointerFields):
    """The active model of a name (compacted ``rf.models.v1``).

    ``url`` is the object-store URL of the ONNX file, ``input_spec`` a JSON document of
    input names, shapes, dtypes and feature order, ``created_ns`` ns since the epoch.
    """


# ------------------------------------------------------------ web receivers


def _array_from_bytes(data: bytes, dtype: str, what: str, n: int | None = None) -> npt.NDArray[Any]:
    """Little-endian wire bytes -> array of ``dtype`` (``<f4`` or ``<i2``), length checked."""
    size = np.dtype(dtype).itemsize
    if len(data) % size:
        raise InvalidEventError(
            f"{what}: {len(data)} bytes is not a whole number of {size}-byte values"
        )
    out = np.frombuffer(data, dtype=dtype).astype(dtype[1:], copy=False)
    if n is not None and out.size != n:
        raise InvalidEventError(f"{what}: {out.size} values, expected {n}")
    return out


def _waterfall_to_wire(row: WaterfallRow) -> bytes:
    values = np.ascontiguousarray(row.values, dtype="<f4").reshape(-1)
    if values.size != row.n_bins:
        raise InvalidEventError(f"values: {values.size} values, n_bins is {row.n_bins}")
    return values.tobytes()


def _waterfall_from_wire(d: Mapping[str, Any]) -> npt.NDArray[Any]:
    return _array_from_bytes(d["values"], "<f4", "values", d["n_bins"])


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class WaterfallRow(gen.WaterfallRowFields):
    """One waterfall row of a web receiver's whole SDR band (``rf.waterfall.v1``).

    ``values`` are the server's numbers, decoded: ``v_k = 10 log10(mean_K |X_k|²) − 70``
    with ``X_k`` the unnormalised FFT of ``n_bins`` Hamming-windowed complex samples (full
    scale ``|x| = 1``), as csdr computes it for OpenWebRX. They are dB relative to the SDR's
    full scale with a fixed −70 dB offset, **not dBm**: :meth:`bin_powers` gives the bin
    powers in full-scale units, and adding ``full_scale_dbm`` to their dB gives dBm at the
    antenna only when that is calibrated. Bin k is centred at
    ``center_freq_hz + (k − n_bins // 2) · bin_hz``.

    Parameters
    ----------
    receiver_id : str
        Receiver (also the Kafka key).
    seq : int
        Per-receiver sequence number of the published rows, +1 per row.
    t_ns : int
        Start of the interval the row averages, ns since the epoch (arrival − one row period).
    clock : ClockSource
        What disciplines ``t_ns``.
    position : Position
        Antenna position.
    center_freq_hz, sample_rate_hz, bin_hz : float
        SDR band centre, complex sample rate (= span) and bin spacing, Hz.
    n_bins : int
        Bins in the row.
    values : numpy.ndarray
        float32 ``v_k`` (little-endian float32 bytes on the wire), low to high frequency.
    row_period_s : float
        Time between two server rows, s.
    averages : int
        Periodograms averaged per row (K).
    row_stride : int
        Server rows per published row (1 = every row; the others are skipped, not averaged).
    compression : str
        ``adpcm`` or ``none``: how the server sent the row before decoding.
    full_scale_dbm : float
        Antenna power of a full-scale signal, dBm, if calibrated (0 = uncalibrated).
    source : str
        Adapter kind (``openwebrx``).
    published_ns : int
        Wall clock at publication, ns since the epoch (0 = unknown).
    event_id : str
        UUIDv7; a new one by default.
    """

    WIRE_FIELDS: ClassVar[Mapping[str, FieldConverter]] = {
        "values": FieldConverter("values", _waterfall_to_wire, _waterfall_from_wire)
    }

    def freqs_hz(self) -> npt.NDArray[np.float64]:
        """Centre frequency of every bin, Hz."""
        k = np.arange(self.n_bins, dtype=np.float64) - self.n_bins // 2
        return np.asarray(self.center_freq_hz + k * self.bin_hz, dtype=np.float64)

    def bin_powers(self, window_power: float | None = None) -> npt.NDArray[np.float64]:
        """Per-bin power ``P_k = 10^((v_k + 70)/10) / (n_bins · Σ w_t²)`` in full-scale units.

        ``window_power`` is ``Σ w_t²`` (default: the symmetric Hamming window of csdr). The
        ``P_k`` of a row add up to the mean ``|x|²`` of the SDR's samples.
        """
        n = self.n_bins
        if window_power is None:
            t = np.arange(n, dtype=np.float64)
            w = 0.54 - 0.46 * np.cos(2.0 * np.pi * t / max(n - 1, 1))
            window_power = float(np.sum(w * w))
        v = np.asarray(self.values, dtype=np.float64)
        return np.power(10.0, (v + 70.0) / 10.0) / (n * window_power)

    def __eq__(self, other: object) -> bool:
        return _array_eq(self, other, "values")

    __hash__ = None  # type: ignore[assignment]


def _audio_to_wire(chunk: AudioChunk) -> bytes:
    return np.ascontiguousarray(chunk.samples, dtype="<i2").reshape(-1).tobytes()


def _audio_from_wire(d: Mapping[str, Any]) -> npt.NDArray[Any]:
    return _array_from_bytes(d["samples"], "<i2", "samples")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AudioChunk(gen.AudioChunkFields):
    """A contiguous block of a web receiver's demodulated mono audio (``rf.audio.v1``).

    ``samples`` are int16 as the server sends them (the demodulator's float output × 32767,
    clipped; full scale 32768 = 1.0). Their level is set by the demodulator chain (AGC,
    FM deviation) and says nothing about the signal's strength.

    Parameters
    ----------
    receiver_id : str
        Receiver (also the Kafka key).
    seq : int
        Per-receiver sequence number of the audio chunks, +1 per chunk (contiguous audio).
    t_ns : int
        Time of the first sample, ns since the epoch (host clock at arrival, see the schema).
    clock : ClockSource
        What disciplines ``t_ns``.
    position : Position
        Antenna position.
    sample_rate_hz : float
        Audio sample rate, Hz.
    mode : str
        Demodulator (``nfm``, ``am``, ``usb``, ...).
    freq_hz, center_freq_hz, offset_freq_hz : float
        Tuned frequency, SDR centre and their difference, Hz.
    low_cut_hz, high_cut_hz : float
        Demodulator pass band relative to ``freq_hz``, Hz.
    samples : numpy.ndarray
        int16 mono samples (little-endian int16 bytes on the wire).
    compression : str
        ``adpcm`` or ``none``: how the server sent them before decoding.
    source : str
        Adapter kind (``openwebrx``).
    published_ns : int
        Wall clock at publication, ns since the epoch (0 = unknown).
    event_id : str
        UUIDv7; a new one by default.
    """

    WIRE_FIELDS: ClassVar[Mapping[str, FieldConverter]] = {
        "samples": FieldConverter("samples", _audio_to_wire, _audio_from_wire)
    }

    @property
    def n_samples(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        """Length of the chunk, s."""
        return self.n_samples / self.sample_rate_hz

    def __eq__(self, other: object) -> bool:
        return _array_eq(self, other, "samples")

    __hash__ = None  # type: ignore[assignment]


# -------------------------------------------------------------------- helpers

#: Avro full name -> model class of every top-level event.
MODELS: Mapping[str, type[Any]] = {
    m.SCHEMA: m
    for m in (
        IqChunk,
        Measurement,
        Observation,
        Localization,
        Truth,
        ReceiverStatus,
        ModelPointer,
        WaterfallRow,
        AudioChunk,
    )
}

register(Position, ObservationMember, TdoaPair, Band, *MODELS.values())
