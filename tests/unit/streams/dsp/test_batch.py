"""The batched channel measurement agrees with the single-chunk one, chunk by chunk.

:func:`heimdall.streams.dsp.features.measure_channel` (scipy's Welch, the documented loop) is
the reference; :func:`heimdall.streams.dsp.batch.measure_channels` computes the same maths for
a ``(B, N)`` array. Cases: noise only, a tone, a wide NBFM-like signal occupying most of the
band, an all-zero chunk, a short chunk (one segment), and different full scales per row.

Both compute in double precision (complex64 samples are widened first).
"""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.core.errors import InvalidEventError
from heimdall.streams.dsp.batch import measure_channels
from heimdall.streams.dsp.features import measure_channel

FS = 12_000.0


def rows(n: int, seed: int = 11) -> np.ndarray:
    """Noise-only, tone, NBFM-like and all-zero chunks of ``n`` samples (fixed seed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) / FS
    noise = (rng.normal(size=(4, n)) + 1j * rng.normal(size=(4, n))) * np.sqrt(1e-3 / 2)
    tone = 0.3 * np.exp(2j * np.pi * 1_234.5 * t)
    fm = 0.5 * np.exp(1j * 2.0 * np.pi * 2_500.0 * np.cumsum(np.sin(2 * np.pi * 400 * t)) / FS)
    x = np.stack([noise[0], noise[1] + tone, noise[2] + fm, np.zeros(n)])
    return x.astype(np.complex64)


FIELDS = ("power_dbm", "noise_floor_dbm_hz", "snr_db", "freq_offset_hz", "occupied_bw_hz")


@pytest.mark.parametrize("n", [2400, 300, 256])
def test_batch_equals_single_chunk_measurement(n: int) -> None:
    x = rows(n)
    full_scale = np.array([-30.0, 0.0, 10.0, -20.0])
    batch = measure_channels(x, FS, full_scale)
    assert len(batch) == x.shape[0]
    for b in range(x.shape[0]):
        one = measure_channel(x[b], FS, full_scale_dbm=float(full_scale[b]))
        for name in FIELDS:
            got, want = float(getattr(batch, name)[b]), getattr(one, name)
            assert got == pytest.approx(want, rel=1e-9, abs=1e-9), (b, name)
        assert bool(batch.detected[b]) == one.detected
        np.testing.assert_allclose(batch.psd_dbm_hz[b], one.psd_dbm_hz, rtol=1e-6, atol=1e-5)
        assert batch.psd_bin_hz == one.psd_bin_hz
    assert batch.detected.tolist() == [False, True, True, False]


def test_channel_offset_and_width_as_single() -> None:
    x = rows(2400, seed=3)
    batch = measure_channels(x, FS, 0.0, channel_offset_hz=1_200.0, channel_bw_hz=2_000.0)
    for b in range(x.shape[0]):
        one = measure_channel(x[b], FS, 0.0, channel_offset_hz=1_200.0, channel_bw_hz=2_000.0)
        for name in FIELDS:
            assert float(getattr(batch, name)[b]) == pytest.approx(
                getattr(one, name), rel=1e-9, abs=1e-9
            ), (b, name)


def test_bad_batches_refused_with_the_reason() -> None:
    x = rows(2400)
    with pytest.raises(InvalidEventError, match="too few"):
        measure_channels(x[:, :8], FS, 0.0)
    with pytest.raises(InvalidEventError, match="sample_rate_hz"):
        measure_channels(x, -1.0, 0.0)
    y = x.copy()
    y[1, 5] = np.nan
    with pytest.raises(InvalidEventError, match="NaN"):
        measure_channels(y, FS, 0.0)
    with pytest.raises(InvalidEventError, match="outside"):
        measure_channels(x, FS, 0.0, channel_offset_hz=9_000.0, channel_bw_hz=100.0)


def test_measure_chunks_equals_measure_chunk_and_refuses_only_bad_chunks() -> None:
    from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat
    from heimdall.streams.features import measure_chunk, measure_chunks

    def chunk(iq: np.ndarray, rate_hz: float = FS) -> IqChunk:
        return IqChunk(
            receiver_id="rx",
            seq=0,
            t_ns=1_800_000_000_000_000_000,
            clock=ClockSource.GPS,
            center_freq_hz=145.5e6,
            sample_rate_hz=rate_hz,
            sample_format=SampleFormat.CF32,
            iq=iq.astype(np.complex64),
            full_scale_dbm=-10.0,
            position=Position(lat_deg=45.0, lon_deg=7.5, alt_m=100.0),
        )

    x = rows(2400)
    nan = x[1].copy()
    nan[3] = np.nan
    chunks = [chunk(x[0]), chunk(x[1]), chunk(nan), chunk(x[2][:300]), chunk(x[3][:8]), chunk(x[2])]
    got = measure_chunks(chunks)
    assert len(got) == len(chunks)
    assert isinstance(got[2], InvalidEventError) and "NaN" in str(got[2])
    assert isinstance(got[4], InvalidEventError) and "too few" in str(got[4])
    for i in (0, 1, 3, 5):
        m, ref = got[i], measure_chunk(chunks[i])
        assert not isinstance(m, InvalidEventError)
        assert m.chunk_id == chunks[i].event_id and m.channel_id == ref.channel_id
        for name in FIELDS:
            assert getattr(m, name) == pytest.approx(getattr(ref, name), rel=1e-9, abs=1e-9)
        assert m.detected == ref.detected and m.duration_s == ref.duration_s
        np.testing.assert_allclose(m.psd_dbm_hz, ref.psd_dbm_hz, rtol=1e-6)
