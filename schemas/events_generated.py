"""GENERATED from ``schemas/avsc/*.avsc`` by ``heimdall.schemas.codegen`` -- do not edit.

Run ``make schemas`` after changing a ``.avsc`` file. The event models are the classes of
:mod:`heimdall.schemas.models`, which subclass these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from heimdall.core.ids import new_event_id
from heimdall.schemas.wire import WireModel

if TYPE_CHECKING:
    from heimdall.schemas.models import (
        Band,
        ObservationMember,
        Position,
        TdoaPair,
    )

__all__ = [
    "ENUMS",
    "AudioChunkFields",
    "BandFields",
    "ClockSource",
    "IqChunkFields",
    "LocalizationFields",
    "MeasurementFields",
    "ModelPointerFields",
    "ObservationFields",
    "ObservationMemberFields",
    "PositionFields",
    "ReceiverState",
    "ReceiverStatusFields",
    "SampleFormat",
    "TdoaPairFields",
    "TruthFields",
    "WaterfallRowFields",
]


class ClockSource(StrEnum):
    """Avro enum ``heimdall.v1.ClockSource``: gps, ntp, free."""

    GPS = "gps"
    NTP = "ntp"
    FREE = "free"


class SampleFormat(StrEnum):
    """Avro enum ``heimdall.v1.SampleFormat``: ci16, cf32."""

    CI16 = "ci16"
    CF32 = "cf32"


class ReceiverState(StrEnum):
    """Avro enum ``heimdall.v1.ReceiverState``: connecting, online, stalled, offline, error."""

    CONNECTING = "connecting"
    ONLINE = "online"
    STALLED = "stalled"
    OFFLINE = "offline"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class IqChunkFields(WireModel):
    """Fields of ``heimdall.v1.IqChunk``: A contiguous block of complex baseband samples from
    one receiver (topic rf.iq.v1, key = receiver_id).

    Parameters
    ----------
    event_id : str
        UUIDv7; sinks are idempotent on it
    receiver_id : str
    seq : int
        per-receiver sequence number, +1 per chunk; a gap means lost chunks
    t_ns : int
        time of the first sample, ns since the Unix epoch (UTC)
    clock : ClockSource
        what disciplines t_ns: gps (tens of ns), ntp (ms), free (drifting)
    center_freq_hz : float
    sample_rate_hz : float
    sample_format : SampleFormat
        ci16: interleaved little-endian int16 I,Q; cf32: interleaved little-endian float32 I,Q
    iq : npt.NDArray[np.complex64]
    full_scale_dbm : float
        power at the antenna port, dBm, that corresponds to a mean |x|^2 of 1 (cf32) or of 1
        after dividing ci16 by 32768
    gain_db : float
        receiver gain setting (informational; already folded into full_scale_dbm)
    position : Position
        receiver antenna position when the chunk was taken (receivers may move)
    source : str
        adapter kind: sim, openwebrx, kiwisdr, rtltcp, sigmf, kiwi-wav
    published_ns : int
        wall-clock time the adapter published the chunk, ns (for latency)
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.IqChunk"

    event_id: str = field(default_factory=new_event_id)
    receiver_id: str
    seq: int
    t_ns: int
    clock: ClockSource
    center_freq_hz: float
    sample_rate_hz: float
    sample_format: SampleFormat
    iq: npt.NDArray[np.complex64]
    full_scale_dbm: float
    gain_db: float = 0.0
    position: Position
    source: str = "unknown"
    published_ns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionFields(WireModel):
    """Fields of ``heimdall.v1.Position``: WGS84 position

    Parameters
    ----------
    lat_deg : float
    lon_deg : float
    alt_m : float
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.Position"

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalizationFields(WireModel):
    """Fields of ``heimdall.v1.Localization``: Where an emission came from, with its
    uncertainty (topic rf.localizations.v1, key = channel_id).

    Parameters
    ----------
    event_id : str
    observation_id : str
    channel_id : str
    t_ns : int
        middle of the observation window
    position : Position
    cov_ee_m2 : float
        east variance of the position, m^2 (local ENU at the estimate)
    cov_en_m2 : float
    cov_nn_m2 : float
    method : str
        estimator that produced this estimate, e.g. rss-ml, tdoa-lm, onnx
    model_version : str | None
    n_receivers : int
    converged : bool
    params : Mapping[str, float]
        nuisance parameters the estimator also fitted, e.g. tx_power_dbm_1m, path_loss_exponent,
        residual_rms_db
    processing_latency_s : float
        chunk to localization, excluding the time spent waiting in the association window
    published_ns : int
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.Localization"

    event_id: str = field(default_factory=new_event_id)
    observation_id: str
    channel_id: str
    t_ns: int
    position: Position
    cov_ee_m2: float
    cov_en_m2: float
    cov_nn_m2: float
    method: str
    model_version: str | None = None
    n_receivers: int
    converged: bool = True
    params: Mapping[str, float] = field(default_factory=dict)
    processing_latency_s: float = 0.0
    published_ns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class MeasurementFields(WireModel):
    """Fields of ``heimdall.v1.Measurement``: What the features stage measured of one channel
    in one IQ chunk (topic rf.features.v1, key = receiver_id).

    Parameters
    ----------
    event_id : str
    chunk_id : str
        event_id of the IQ chunk measured
    receiver_id : str
    t_ns : int
        time of the chunk's first sample, ns since the epoch
    duration_s : float
    clock : ClockSource
    position : Position
    channel_id : str
        stable name of the channel, e.g. '145.500MHz'
    channel_freq_hz : float
        nominal centre of the channel
    channel_bw_hz : float
        bandwidth the channel power is integrated over
    power_dbm : float
        signal power in the channel (noise subtracted when detected), dBm at the antenna port
    noise_floor_dbm_hz : float
        noise power spectral density, dBm/Hz
    snr_db : float
        signal power over the noise power in channel_bw_hz
    freq_offset_hz : float
        power-weighted centroid of the signal relative to channel_freq_hz
    occupied_bw_hz : float
        99 % power bandwidth of the signal
    detected : bool
    psd_dbm_hz : tuple[float, ...]
        Welch PSD summary over the whole chunk bandwidth, fftshifted, low to high frequency
    psd_bin_hz : float
    chunk_published_ns : int
        wall clock at which the IQ chunk was published
    published_ns : int
        wall clock at which this measurement was published
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.Measurement"

    event_id: str = field(default_factory=new_event_id)
    chunk_id: str
    receiver_id: str
    t_ns: int
    duration_s: float
    clock: ClockSource
    position: Position
    channel_id: str
    channel_freq_hz: float
    channel_bw_hz: float
    power_dbm: float
    noise_floor_dbm_hz: float
    snr_db: float
    freq_offset_hz: float
    occupied_bw_hz: float
    detected: bool
    psd_dbm_hz: tuple[float, ...] = ()
    psd_bin_hz: float = 0.0
    chunk_published_ns: int = 0
    published_ns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelPointerFields(WireModel):
    """Fields of ``heimdall.v1.ModelPointer``: The active model of a name (compacted topic
    rf.models.v1, key = model_name); streams hot-reload on change.

    Parameters
    ----------
    event_id : str
    model_name : str
    version : str
    url : str
        object-store URL of the ONNX file
    sha256 : str
    input_spec : str
        JSON: input names, shapes, dtypes and feature order
    schema_version : str
    metrics : Mapping[str, float]
    created_ns : int
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.ModelPointer"

    event_id: str = field(default_factory=new_event_id)
    model_name: str
    version: str
    url: str
    sha256: str
    input_spec: str
    schema_version: str = "v1"
    metrics: Mapping[str, float] = field(default_factory=dict)
    created_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservationFields(WireModel):
    """Fields of ``heimdall.v1.Observation``: One emission heard by N receivers in one
    association window (topic rf.observations.v1, key = channel_id).

    Parameters
    ----------
    event_id : str
    channel_id : str
    channel_freq_hz : float
    window_start_ns : int
    window_end_ns : int
    members : tuple[ObservationMember, ...]
    tdoa_pairs : tuple[TdoaPair, ...]
    latest_chunk_published_ns : int
    upstream_latency_s : float
        largest chunk-publish to measurement-publish delay among the members (features stage
        latency)
    published_ns : int
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.Observation"

    event_id: str = field(default_factory=new_event_id)
    channel_id: str
    channel_freq_hz: float
    window_start_ns: int
    window_end_ns: int
    members: tuple[ObservationMember, ...]
    tdoa_pairs: tuple[TdoaPair, ...] = ()
    latest_chunk_published_ns: int = 0
    upstream_latency_s: float = 0.0
    published_ns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ObservationMemberFields(WireModel):
    """Fields of ``heimdall.v1.ObservationMember``: one receiver's contribution: its
    measurements in the window, averaged

    Parameters
    ----------
    receiver_id : str
    position : Position
    clock : ClockSource
    t_ns : int
        time of the earliest measurement
    power_dbm : float
        mean of the linear powers, in dBm
    power_std_db : float
        standard deviation of the per-chunk powers, dB
    snr_db : float
    noise_floor_dbm_hz : float
    freq_offset_hz : float
    n_measurements : int
    measurement_ids : tuple[str, ...]
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.ObservationMember"

    receiver_id: str
    position: Position
    clock: ClockSource
    t_ns: int
    power_dbm: float
    power_std_db: float
    snr_db: float
    noise_floor_dbm_hz: float
    freq_offset_hz: float
    n_measurements: int
    measurement_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class TdoaPairFields(WireModel):
    """Fields of ``heimdall.v1.TdoaPair``: t(receiver_a) - t(receiver_b) of the emission

    Parameters
    ----------
    receiver_a : str
    receiver_b : str
    tdoa_s : float
    sigma_s : float
        1-sigma of tdoa_s, s: statistical and systematic in quadrature
    sigma_sys_s : float
        the systematic part of sigma_s estimated from the data (receiver delays, multipath), s
    quality : float
        normalised correlation peak height, 0..1
    method : str
        how the lag was measured: xcorr (cross-correlation) or dcf77-pn (matched filter)
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.TdoaPair"

    receiver_a: str
    receiver_b: str
    tdoa_s: float
    sigma_s: float
    sigma_sys_s: float = 0.0
    quality: float = 0.0
    method: str = "xcorr"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverStatusFields(WireModel):
    """Fields of ``heimdall.v1.ReceiverStatus``: Description and health of one receiver
    (compacted topic rf.receivers.v1, key = receiver_id).

    Parameters
    ----------
    event_id : str
    receiver_id : str
    kind : str
        sim, openwebrx, kiwisdr, rtltcp, sigmf, kiwi-wav
    position : Position
    url : str | None
    antenna : str | None
    calibration_offset_db : float
    bands : tuple[Band, ...]
    state : ReceiverState
    last_data_ns : int | None
    chunks_per_s : float
    errors : int
    dropped : int
    message : str | None
    updated_ns : int
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.ReceiverStatus"

    event_id: str = field(default_factory=new_event_id)
    receiver_id: str
    kind: str
    position: Position
    url: str | None = None
    antenna: str | None = None
    calibration_offset_db: float = 0.0
    bands: tuple[Band, ...] = ()
    state: ReceiverState
    last_data_ns: int | None = None
    chunks_per_s: float = 0.0
    errors: int = 0
    dropped: int = 0
    message: str | None = None
    updated_ns: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BandFields(WireModel):
    """Fields of ``heimdall.v1.Band``: Avro record ``heimdall.v1.Band``.

    Parameters
    ----------
    low_hz : float
    high_hz : float
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.Band"

    low_hz: float
    high_hz: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TruthFields(WireModel):
    """Fields of ``heimdall.v1.Truth``: Ground truth of a known or simulated transmitter at one
    instant (topic rf.truth.v1, key = source_id).

    Parameters
    ----------
    event_id : str
    source_id : str
    t_ns : int
    position : Position
    channel_id : str | None
    freq_hz : float
    tx_power_dbm : float | None
    waveform : str
    transmitting : bool
    velocity_enu_mps : tuple[float, ...]
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.Truth"

    event_id: str = field(default_factory=new_event_id)
    source_id: str
    t_ns: int
    position: Position
    channel_id: str | None = None
    freq_hz: float
    tx_power_dbm: float | None = None
    waveform: str = "unknown"
    transmitting: bool = True
    velocity_enu_mps: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class WaterfallRowFields(WireModel):
    """Fields of ``heimdall.v1.WaterfallRow``: One row of a web receiver's waterfall: the power
    spectrum of its whole SDR band as the server computed it, decoded from the wire (topic
    rf.waterfall.v1, key = receiver_id). Bin k (k = 0 .. n_bins-1) is centred at
    center_freq_hz + (k - n_bins/2) * bin_hz (integer division), low to high frequency.

    Parameters
    ----------
    event_id : str
        UUIDv7; sinks are idempotent on it
    receiver_id : str
    seq : int
        per-receiver sequence number of the published rows, +1 per row; a gap means rows lost
        between the adapter and Kafka
    t_ns : int
        start of the interval the row averages, ns since the Unix epoch (UTC): host clock at the
        row's arrival minus row_period_s; the server's pipeline latency (0.1-1 s) is not removed
    clock : ClockSource
        what disciplines t_ns (ntp for a host clock)
    position : Position
        receiver antenna position
    center_freq_hz : float
        centre of the SDR band, Hz (the server's center_freq)
    sample_rate_hz : float
        complex sample rate of the SDR, Hz: the row spans center_freq_hz -/+ sample_rate_hz/2
    bin_hz : float
        bin spacing sample_rate_hz / n_bins, Hz
    n_bins : int
        number of bins of the row (the server's fft_size)
    values : npt.NDArray[np.float32]
        n_bins little-endian float32 v_k, in the server's dB-like unit: v_k = 10*log10(mean over
        `averages` periodograms of |X_k|^2) - 70, X_k the unnormalised FFT of n_bins complex
        samples (full scale |x| = 1) times a symmetric Hamming window w, as csdr computes it. It
        is dB relative to the SDR's digital full scale with an arbitrary -70 dB offset, NOT dBm:
        the bin power in full-scale units is P_k = 10^((v_k + 70)/10) / (n_bins * sum_t w_t^2)
        (the P_k of a row add up to the mean |x|^2), and 10*log10(P_k) + full_scale_dbm is dBm
        at the antenna only if full_scale_dbm is calibrated
    averages : int
        periodograms averaged per row, K = round(sample_rate_hz / n_bins / fft_fps / (1 -
        fft_voverlap_factor)) from the receiver's configured fft_fps and overlap; each bin is
        ~chi^2 with 2K degrees of freedom
    row_period_s : float
        time between two rows of the server, s (1 / fft_fps as configured for the receiver; the
        server does not send it)
    row_stride : int
        server rows per published row: 1 = every row; n = one row in n is published unchanged
        and the n-1 between are skipped (not averaged)
    compression : str
        how the server sent the row before it was decoded: adpcm = IMA ADPCM of trunc(100 v_k)
        (0.01 dB steps; a peak rising tens of dB within a few bins is decoded several dB low),
        none = float32 exactly as computed
    full_scale_dbm : float
        antenna power, dBm, of a full-scale signal (mean |x|^2 = 1) as configured for the
        receiver, calibration offset included; 0 with no calibration, then the values are
        relative to full scale only
    source : str
        adapter kind: openwebrx
    published_ns : int
        wall-clock time the adapter published the row, ns (for latency)
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.WaterfallRow"

    event_id: str = field(default_factory=new_event_id)
    receiver_id: str
    seq: int
    t_ns: int
    clock: ClockSource
    position: Position
    center_freq_hz: float
    sample_rate_hz: float
    bin_hz: float
    n_bins: int
    values: npt.NDArray[np.float32]
    averages: int = 1
    row_period_s: float
    row_stride: int = 1
    compression: str = "none"
    full_scale_dbm: float = 0.0
    source: str = "unknown"
    published_ns: int = 0


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class AudioChunkFields(WireModel):
    """Fields of ``heimdall.v1.AudioChunk``: A contiguous block of a web receiver's demodulated
    audio, decoded from the wire (topic rf.audio.v1, key = receiver_id). Real (mono) samples
    of the demodulator's output, not IQ.

    Parameters
    ----------
    event_id : str
        UUIDv7; sinks are idempotent on it
    receiver_id : str
    seq : int
        per-receiver sequence number of the audio chunks, +1 per chunk; consecutive numbers are
        contiguous audio, a gap means chunks lost
    t_ns : int
        time of the first sample, ns since the Unix epoch (UTC): host clock at the arrival of
        the websocket message holding the first sample minus the duration of that message's
        samples from the first sample on; the server's latency (0.1-1 s) is not removed and
        consecutive chunks jitter with the network
    clock : ClockSource
        what disciplines t_ns (ntp for a host clock)
    position : Position
        receiver antenna position
    sample_rate_hz : float
        audio sample rate, Hz (the output_rate asked of the server; hd_output_rate for wideband
        FM)
    mode : str
        demodulator that produced the audio: nfm, am, usb, lsb, cw, wfm, ...
    freq_hz : float
        tuned frequency (the demodulator's centre), Hz = center_freq_hz + offset_freq_hz
    center_freq_hz : float
        centre of the SDR band the demodulator runs in, Hz
    offset_freq_hz : float
        freq_hz relative to the SDR's centre, Hz (OpenWebRX's offset_freq)
    low_cut_hz : float
        low edge of the demodulator's pass band relative to freq_hz, Hz
    high_cut_hz : float
        high edge of the demodulator's pass band relative to freq_hz, Hz
    samples : npt.NDArray[np.int16]
        mono little-endian int16, as the server sends them: the demodulator's float output times
        32767, clipped (full scale 32768 = 1.0). The level is set by the demodulator chain (AGC
        in OpenWebRX's analog chains, deviation for FM) and is not a measure of signal strength:
        channel power is on rf.features
    compression : str
        how the server sent the audio before it was decoded: adpcm = IMA ADPCM (4 bits a sample,
        lossy), none = int16 exactly
    source : str
        adapter kind: openwebrx
    published_ns : int
        wall-clock time the adapter published the chunk, ns (for latency)
    """

    SCHEMA: ClassVar[str] = "heimdall.v1.AudioChunk"

    event_id: str = field(default_factory=new_event_id)
    receiver_id: str
    seq: int
    t_ns: int
    clock: ClockSource
    position: Position
    sample_rate_hz: float
    mode: str
    freq_hz: float
    center_freq_hz: float
    offset_freq_hz: float
    low_cut_hz: float
    high_cut_hz: float
    samples: npt.NDArray[np.int16]
    compression: str = "none"
    source: str = "unknown"
    published_ns: int = 0


#: Avro full name -> StrEnum of every Avro enum.
ENUMS: dict[str, type[StrEnum]] = {
    "heimdall.v1.ClockSource": ClockSource,
    "heimdall.v1.SampleFormat": SampleFormat,
    "heimdall.v1.ReceiverState": ReceiverState,
}
