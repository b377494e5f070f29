"""The channeliser: exact streaming, the designed alias rejection, tone positions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal as sps

from heimdall.core.errors import ConfigError
from heimdall.producers.adapters.dsp import (
    ChannelDecimator,
    FirDecimator,
    Nco,
    design_stage,
    plan_stages,
    u8_iq_lut,
)

FS_IN = 1_152_000
FS_OUT = 12_000


def _tone(freq_hz: float, n: int, fs: float = FS_IN, amp: float = 1.0) -> np.ndarray:
    k = np.arange(n, dtype=np.float64)
    return (amp * np.exp(2j * np.pi * freq_hz / fs * k)).astype(np.complex64)


def _steady_rms_db(y: np.ndarray) -> float:
    """RMS level of the output after the filters' start-up transient, dB re full scale."""
    tail = y[200:].astype(np.complex128)
    return float(10 * np.log10(np.mean(np.abs(tail) ** 2) + 1e-30))


@pytest.mark.parametrize(
    ("factor", "stages"),
    [(96, [8, 6, 2]), (128, [8, 8, 2]), (200, [8, 5, 5]), (24, [6, 4]), (7, [7]), (22, [11, 2])],
)
def test_plan_stages_factors_multiply_back(factor: int, stages: list[int]) -> None:
    assert plan_stages(factor) == stages
    assert int(np.prod(stages)) == factor


def test_fir_decimator_equals_filter_then_keep_every_mth_across_any_split() -> None:
    rng = np.random.default_rng(3)
    for n_taps, m in [(38, 8), (5, 8), (8, 8), (47, 6), (1, 1)]:
        h = rng.standard_normal(n_taps)
        x = (rng.standard_normal(20_000) + 1j * rng.standard_normal(20_000)).astype(np.complex64)
        ref = sps.lfilter(h, 1.0, x)[m - 1 :: m]
        dec = FirDecimator(h, m)
        parts, i = [], 0
        while i < x.size:
            n = int(rng.integers(1, 900))
            parts.append(dec.process(x[i : i + n]))
            i += n
        y = np.concatenate(parts)
        assert y.size == ref.size
        np.testing.assert_allclose(y, ref, atol=2e-5 * np.max(np.abs(ref)))
        dec.reset()
        np.testing.assert_allclose(dec.process(x), ref, atol=2e-5 * np.max(np.abs(ref)))


def test_design_meets_its_stopband_and_ripple() -> None:
    st = design_stage(FS_IN, 8, 4800.0, 60.0)
    assert st.stopband_hz == pytest.approx(FS_IN / 8 - 4800.0)
    _, h = sps.freqz(st.taps, worN=np.linspace(st.stopband_hz, FS_IN / 2, 4000), fs=FS_IN)
    assert 20 * np.log10(np.max(np.abs(h))) <= -60.0
    _, hp = sps.freqz(st.taps, worN=np.linspace(0, 4800.0, 500), fs=FS_IN)
    assert np.max(np.abs(20 * np.log10(np.abs(hp)))) <= 0.01
    with pytest.raises(ConfigError, match="does not fit"):
        design_stage(FS_IN, 8, 80_000.0)


def test_passband_tone_keeps_its_level_and_lands_on_its_bin() -> None:
    dec = ChannelDecimator(FS_IN, FS_OUT)
    y = dec.process(_tone(1500.0, FS_IN))  # 1 s
    assert _steady_rms_db(y) == pytest.approx(0.0, abs=0.05)
    x = y[-8192:] * np.hanning(8192)
    f = np.fft.fftfreq(8192, 1 / FS_OUT)
    assert abs(f[np.argmax(np.abs(np.fft.fft(x)))] - 1500.0) <= FS_OUT / 8192


@pytest.mark.parametrize(
    "freq_hz",
    [
        # tones that fold onto the passband (|f − k·F| ≤ 4.8 kHz) at one of the stages
        12_000 + 1_000,  # last stage (24 → 12 kHz), lands at +1 kHz
        -12_000 - 4_000,
        24_000 + 2_000,  # second stage (144 → 24 kHz)
        48_000 - 3_000,
        144_000 + 1_000,  # first stage (1152 → 144 kHz)
        -288_000 + 4_500,
        7_200.0,  # the very edge of the final stopband
        500_000.0,
    ],
)
def test_out_of_channel_tones_are_rejected_by_the_designed_stopband(freq_hz: float) -> None:
    atten = 60.0
    dec = ChannelDecimator(FS_IN, FS_OUT, atten_db=atten)
    assert min(s.stopband_db for s in dec.stages) >= atten
    y = dec.process(_tone(freq_hz, FS_IN // 2))
    assert _steady_rms_db(y) <= -atten + 0.1


def test_mixing_brings_the_offset_channel_to_zero() -> None:
    """Tuned 288 kHz above the channel, a tone 1.5 kHz above it sits at −286.5 kHz."""
    offset = FS_IN / 4
    dec = ChannelDecimator(FS_IN, FS_OUT, shift_hz=offset)
    y = dec.process(_tone(1500.0 - offset, FS_IN // 2))
    x = y[-4096:] * np.hanning(4096)
    f = np.fft.fftfreq(4096, 1 / FS_OUT)
    assert abs(f[np.argmax(np.abs(np.fft.fft(x)))] - 1500.0) <= FS_OUT / 4096
    # the DC spike of the dongle (input 0 Hz) ends up at +offset: far outside the channel
    dec.reset()
    assert _steady_rms_db(dec.process(np.ones(FS_IN // 4, dtype=np.complex64))) <= -60.0


def test_nco_table_and_direct_paths_agree_and_continue_across_blocks() -> None:
    x = np.ones(100_000, dtype=np.complex64)
    for f in (288_000.0, 1234.5, -3000.0):
        nco = Nco(f, FS_IN)
        parts = [nco.mix(x[i : i + 7777]) for i in range(0, x.size, 7777)]
        np.testing.assert_allclose(np.concatenate(parts), _tone(f, x.size), atol=2e-3)


def test_u8_lut_and_odd_byte_carry() -> None:
    lut = u8_iq_lut()
    assert lut[0] == complex(-1, -1) and lut[0xFFFF] == complex(1, 1)
    assert lut[255] == complex(1, -1)  # first byte I = 255, second byte Q = 0
    dec = ChannelDecimator(FS_IN, FS_OUT)
    rng = np.random.default_rng(5)
    data = rng.integers(0, 256, 2 * 96 * 500, dtype=np.uint8).tobytes()
    whole, n_whole = dec.process_u8(data)
    dec.reset()
    outs, n_total = [], 0
    for i in range(0, len(data), 1001):  # odd pieces: pairs split between reads
        y, n = dec.process_u8(data[i : i + 1001])
        outs.append(y)
        n_total += n
    assert n_total == n_whole == len(data) // 2
    np.testing.assert_allclose(np.concatenate(outs), whole, atol=1e-6)


def test_rates_that_are_not_multiples_are_refused_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match=r"not an integer multiple.*use e\.g\. 960000"):
        ChannelDecimator(1_024_000, FS_OUT)
