"""One example of every event model, built from a fixed seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from heimdall.schemas.models import (
    AudioChunk,
    Band,
    ClockSource,
    IqChunk,
    Localization,
    Measurement,
    ModelPointer,
    Observation,
    ObservationMember,
    Position,
    ReceiverState,
    ReceiverStatus,
    SampleFormat,
    TdoaPair,
    Truth,
    WaterfallRow,
)

T0 = 1_780_000_000_123_456_789
POS = Position(lat_deg=52.0117, lon_deg=4.3571, alt_m=12.5)


def iq_samples(
    n: int = 2400, seed: int = 7, scale: float = 0.25, quantised: bool = False
) -> np.ndarray:
    """Gaussian noise; ``quantised``: on the ci16 grid (k / 32768), so ci16 is lossless."""
    rng = np.random.default_rng(seed)
    i, q = rng.standard_normal((2, n)) * scale
    if quantised:
        i, q = (np.clip(np.round(v * 32768), -32768, 32767) / 32768 for v in (i, q))
    return (i + 1j * q).astype(np.complex64)


def iq_chunk(fmt: SampleFormat = SampleFormat.CF32, n: int = 2400, seed: int = 7) -> IqChunk:
    return IqChunk(
        receiver_id="rx-delft",
        seq=42,
        t_ns=T0,
        clock=ClockSource.GPS,
        center_freq_hz=145.5e6,
        sample_rate_hz=12e3,
        sample_format=fmt,
        iq=iq_samples(n, seed, quantised=fmt is SampleFormat.CI16),
        full_scale_dbm=-17.5,
        gain_db=30.0,
        position=POS,
        source="sim",
        published_ns=T0 + 5_000_000,
    )


def member(i: int) -> ObservationMember:
    return ObservationMember(
        receiver_id=f"rx-{i}",
        position=Position(lat_deg=52.0 + i / 100, lon_deg=4.3 - i / 100),
        clock=ClockSource.NTP,
        t_ns=T0 + i,
        power_dbm=-90.0 - i,
        power_std_db=0.5,
        snr_db=20.0 - i,
        noise_floor_dbm_hz=-170.0,
        freq_offset_hz=12.5,
        n_measurements=3,
        measurement_ids=(f"m-{i}-a", f"m-{i}-b"),
    )


def examples() -> list[Any]:
    """One instance of each top-level model, with optional fields set away from defaults."""
    rng = np.random.default_rng(11)
    return [
        iq_chunk(SampleFormat.CF32),
        iq_chunk(SampleFormat.CI16),
        Measurement(
            chunk_id="0190c5b8-0000-7000-8000-000000000001",
            receiver_id="rx-delft",
            t_ns=T0,
            duration_s=0.2,
            clock=ClockSource.FREE,
            position=POS,
            channel_id="145.500MHz",
            channel_freq_hz=145.5e6,
            channel_bw_hz=12.5e3,
            power_dbm=-88.25,
            noise_floor_dbm_hz=-171.5,
            snr_db=23.0,
            freq_offset_hz=-35.0,
            occupied_bw_hz=9e3,
            detected=True,
            # float32 values: the wire type is Avro float
            psd_dbm_hz=tuple(float(v) for v in rng.normal(-160, 5, 64).astype(np.float32)),
            psd_bin_hz=187.5,
            chunk_published_ns=T0 + 1,
            published_ns=T0 + 2,
        ),
        Observation(
            channel_id="145.500MHz",
            channel_freq_hz=145.5e6,
            window_start_ns=T0,
            window_end_ns=T0 + 1_000_000_000,
            members=tuple(member(i) for i in range(4)),
            tdoa_pairs=(
                TdoaPair(receiver_a="rx-0", receiver_b="rx-1", tdoa_s=1.5e-6, sigma_s=5e-8),
            ),
            latest_chunk_published_ns=T0 + 3,
            upstream_latency_s=0.05,
            published_ns=T0 + 4,
        ),
        Localization(
            observation_id="0190c5b8-0000-7000-8000-000000000002",
            channel_id="145.500MHz",
            t_ns=T0,
            position=POS,
            cov_ee_m2=400.0,
            cov_en_m2=-20.0,
            cov_nn_m2=900.0,
            method="rss-ml",
            n_receivers=4,
            model_version="rss-1.2",
            converged=False,
            params={"tx_power_dbm_1m": -30.0, "path_loss_exponent": 2.7},
            processing_latency_s=0.012,
            published_ns=T0 + 5,
        ),
        Truth(
            source_id="beacon-1",
            t_ns=T0,
            position=POS,
            freq_hz=145.5e6,
            channel_id="145.500MHz",
            tx_power_dbm=37.0,
            waveform="fm",
            transmitting=False,
            velocity_enu_mps=(1.0, -2.0, 0.0),
        ),
        ReceiverStatus(
            receiver_id="rx-delft",
            kind="kiwisdr",
            position=POS,
            state=ReceiverState.STALLED,
            updated_ns=T0,
            url="http://kiwi.example:8073",
            antenna="discone",
            calibration_offset_db=-1.5,
            bands=(Band(low_hz=0.0, high_hz=30e6),),
            last_data_ns=T0 - 1,
            chunks_per_s=5.0,
            errors=2,
            dropped=1,
            message="no data for 10 s",
        ),
        ModelPointer(
            model_name="localizer",
            version="2026.11.1",
            url="file:///tmp/models/localizer.onnx",
            sha256="ab" * 32,
            input_spec='{"inputs": []}',
            created_ns=T0,
            schema_version="v1",
            metrics={"rmse_m": 350.0},
        ),
        waterfall_row(),
        audio_chunk(),
    ]


def waterfall_row(n_bins: int = 1024, seed: int = 13) -> WaterfallRow:
    """A row of noise around -100 (the server's dB-like unit) with a peak at 60 % of the band."""
    values = np.random.default_rng(seed).normal(-100.0, 3.0, n_bins).astype(np.float32)
    values[(6 * n_bins) // 10] = -40.0
    return WaterfallRow(
        receiver_id="owrx-turin",
        seq=7,
        t_ns=T0,
        clock=ClockSource.NTP,
        position=POS,
        center_freq_hz=145e6,
        sample_rate_hz=2.4e6,
        bin_hz=2.4e6 / n_bins,
        n_bins=n_bins,
        values=values,
        row_period_s=1 / 9,
        averages=370,
        row_stride=2,
        compression="adpcm",
        full_scale_dbm=-20.0,
        source="openwebrx",
        published_ns=T0 + 6,
    )


def audio_chunk(n: int = 3000, seed: int = 17) -> AudioChunk:
    """0.25 s of a 1 kHz tone plus noise at 12 kHz."""
    t = np.arange(n) / 12_000
    noise = np.random.default_rng(seed).normal(0.0, 300.0, n)
    pcm = np.clip(np.round(8000 * np.sin(2 * np.pi * 1000 * t) + noise), -32768, 32767)
    return AudioChunk(
        receiver_id="owrx-turin",
        seq=3,
        t_ns=T0,
        clock=ClockSource.NTP,
        position=POS,
        sample_rate_hz=12_000.0,
        mode="usb",
        freq_hz=145.51e6,
        center_freq_hz=145e6,
        offset_freq_hz=510e3,
        low_cut_hz=300.0,
        high_cut_hz=2700.0,
        samples=pcm.astype(np.int16),
        compression="adpcm",
        source="openwebrx",
        published_ns=T0 + 7,
    )
