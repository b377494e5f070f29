"""Channel measurement from one IQ chunk (heimdall.streams.dsp.features).

Theory checked (fs = 12 kHz, 2400-sample chunks, L = 256, Δf = fs/L = 46.875 Hz, so
K = 17 Welch segments and the channel of 0.8·fs integrates |C| = 205 bins,
B_eff = 205 Δf = 9609.4 Hz):

- complex white noise with ``mean|x|² = P`` has density ``N0 = P/fs``; the censored-median
  estimate has a spread ≈ 1.25·sqrt(2/ν)/sqrt(L) (0.085 dB; ~0.11 dB with the Hann
  neighbour-bin correlation), so single chunks fall within 0.3 dB (≈ 2.8σ) and the mean
  over trials is unbiased to a few hundredths of a dB;
- the Welch bin of Gaussian noise has ``var(Ŝ)/E[Ŝ]² = 2/ν`` (ν from ``welch_dof``);
- a tone of power Ps: ``P̂s = Σ_C (Ŝ − N̂) Δf → Ps`` (Parseval for the density scaling)
  and ``SNR = Ps / (N0 B_eff)``; its frequency is the centroid of the symmetric Hann
  response, i.e. within a small fraction of a bin;
- FM with peak deviation Δf and tone fm has lines at k·fm with powers J_k(β)², β = Δf/fm;
  Carson's rule ``2(Δf + fm)`` approximates the 98–99 % bandwidth.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from scipy import signal as sps
from scipy import special

from heimdall.core.errors import InvalidEventError
from heimdall.streams.dsp.features import measure_channel, noise_floor_psd, welch_dof

FS = 12_000.0
N = 2400
DF = FS / 256
B_EFF = 205 * DF


def _noise(rng: np.random.Generator, p: float, n: int = N) -> np.ndarray:
    return np.sqrt(p / 2) * (rng.standard_normal(n) + 1j * rng.standard_normal(n))


def _tone(rng: np.random.Generator, p: float, f0: float, n: int = N) -> np.ndarray:
    t = np.arange(n) / FS
    return np.sqrt(p) * np.exp(1j * (2 * np.pi * f0 * t + rng.uniform(0, 2 * np.pi)))


def test_noise_floor_white_noise() -> None:
    """N̂ within 0.3 dB of P/fs per chunk (≥ 98 % of 400 chunks), |bias| < 0.03 dB, σ < 0.15 dB."""
    rng = np.random.default_rng(11)
    p = 3e-4
    err = []
    for _ in range(400):
        m = measure_channel(_noise(rng, p), FS, full_scale_dbm=0.0)
        err.append(m.noise_floor_dbm_hz - 10 * math.log10(p / FS))
    e = np.array(err)
    assert np.mean(np.abs(e) < 0.3) >= 0.98
    assert abs(e.mean()) < 0.03
    assert e.std() < 0.15
    m = measure_channel(_noise(np.random.default_rng(0), p), FS, full_scale_dbm=0.0)
    assert abs(m.noise_floor_dbm_hz - 10 * math.log10(p / FS)) < 0.3


def test_full_scale_shifts_everything() -> None:
    """Every dBm quantity moves by full_scale_dbm exactly; ratios do not move."""
    rng = np.random.default_rng(2)
    x = _noise(rng, 1e-3) + _tone(rng, 1e-2, 800.0)
    a = measure_channel(x, FS, full_scale_dbm=0.0)
    b = measure_channel(x, FS, full_scale_dbm=-37.5)
    assert b.power_dbm - a.power_dbm == pytest.approx(-37.5, abs=1e-9)
    assert b.noise_floor_dbm_hz - a.noise_floor_dbm_hz == pytest.approx(-37.5, abs=1e-9)
    assert b.snr_db == pytest.approx(a.snr_db, abs=1e-9)
    assert np.allclose(b.psd_dbm_hz - a.psd_dbm_hz, -37.5, atol=1e-3)


def test_welch_dof_matches_bin_variance() -> None:
    """var(Ŝ_k)/mean(Ŝ_k)² over many noise chunks = 2/ν within 5 % (MC std ~1.5 %)."""
    rng = np.random.default_rng(5)
    trials = 400
    x = _noise(rng, 1.0, N * trials).reshape(trials, N)
    _, pxx = sps.welch(
        x,
        fs=FS,
        window="hann",
        nperseg=256,
        noverlap=128,
        detrend=False,
        return_onesided=False,
        scaling="density",
        axis=-1,
    )
    ratio = pxx.var(axis=0).mean() / pxx.mean() ** 2
    nu = welch_dof(256, 17)
    assert nu == pytest.approx(2 * 17 / (1 + 2 * (16 / 17) * (1 / 6) ** 2), rel=2e-3)
    assert ratio == pytest.approx(2 / nu, rel=0.05)


def test_noise_floor_estimator_unbiased_for_single_segment() -> None:
    """ν = 2 (one segment, exponential bins): the censored median stays unbiased (< 0.05 dB)."""
    rng = np.random.default_rng(9)
    nu = welch_dof(256, 1)
    assert nu == pytest.approx(2.0)
    est = [noise_floor_psd(rng.exponential(1.0, 256), nu) for _ in range(2000)]
    assert abs(10 * math.log10(np.mean(est))) < 0.05


def test_noise_floor_ignores_a_strong_wideband_signal() -> None:
    """Half the bins 30 dB up: the estimate stays within 0.3 dB (a plain median would be +30 dB)."""
    rng = np.random.default_rng(4)
    nu = welch_dof(256, 17)
    psd = rng.chisquare(nu, 256) / nu
    psd[64:192] *= 1000.0
    assert abs(10 * math.log10(noise_floor_psd(psd, nu))) < 0.3


@pytest.mark.parametrize("f0", [1234.5, -2000.0 + 0.37 * DF, 0.0])
def test_tone_high_snr_power_and_frequency(f0: float) -> None:
    """40 dB SNR: power within 0.2 dB of Ps, offset within 0.1 bin, better than the peak bin."""
    rng = np.random.default_rng(21)
    p_noise = 1e-4
    ps = 10**4 * (p_noise / FS) * B_EFF
    m = measure_channel(_noise(rng, p_noise) + _tone(rng, ps, f0), FS, full_scale_dbm=0.0)
    assert m.power_dbm == pytest.approx(10 * math.log10(ps), abs=0.2)
    assert m.snr_db == pytest.approx(40.0, abs=0.5)
    assert m.detected
    assert abs(m.freq_offset_hz - f0) < 0.1 * DF
    f = np.fft.fftshift(np.fft.fftfreq(256, 1 / FS))
    peak_err = abs(f[int(np.argmax(m.psd_dbm_hz))] - f0)
    assert abs(m.freq_offset_hz - f0) <= max(peak_err, 0.01 * DF)  # on-bin: peak is exact
    assert m.psd_dbm_hz.dtype == np.float32 and m.psd_dbm_hz.shape == (256,)
    assert m.psd_bin_hz == pytest.approx(DF)
    assert m.occupied_bw_hz < 4 * DF  # a tone: the Hann main lobe


def test_tone_snr_10db_matches_theory() -> None:
    """SNR = Ps/(N0·B_eff) = 10 dB: mean of 200 estimates within 1 dB (each within 1 dB too)."""
    rng = np.random.default_rng(8)
    p_noise = 1e-4
    ps = 10.0 * (p_noise / FS) * B_EFF
    snr, off = [], []
    for _ in range(200):
        m = measure_channel(_noise(rng, p_noise) + _tone(rng, ps, 700.0), FS, full_scale_dbm=0.0)
        snr.append(m.snr_db)
        off.append(m.freq_offset_hz - 700.0)
    s = np.array(snr)
    assert abs(s.mean() - 10.0) < 1.0
    assert np.all(np.abs(s - 10.0) < 1.0)
    assert np.all(np.abs(off) < DF)


def test_noise_only_not_detected() -> None:
    """Noise only: SNR is the relative fluctuation of the channel power (≈ −17 dB), never ≥ 6 dB."""
    rng = np.random.default_rng(13)
    snr = [measure_channel(_noise(rng, 1e-3), FS, full_scale_dbm=0.0).snr_db for _ in range(300)]
    assert max(snr) < 0.0
    m = measure_channel(_noise(rng, 1e-3), FS, full_scale_dbm=0.0)
    assert not m.detected
    assert math.isfinite(m.power_dbm) and math.isfinite(m.freq_offset_hz)


@pytest.mark.parametrize(("dev", "fm"), [(2500.0, 1000.0), (2500.0, 500.0), (2500.0, 300.0)])
def test_fm_occupied_bandwidth_carson(dev: float, fm: float) -> None:
    """NBFM, 30 dB SNR: 99 % bandwidth within 25 % of Carson 2(Δf + fm).

    Also against the Bessel line spectrum: the 99 % band ends at the first line k with
    J_0² + 2 Σ_{1..k} J_j(β)² ≥ 0.99 — within one line spacing plus two bins.
    """
    rng = np.random.default_rng(17)
    p_noise = 1e-4
    ps = 1000.0 * (p_noise / FS) * B_EFF
    t = np.arange(N) / FS
    x = np.sqrt(ps) * np.exp(1j * (dev / fm) * np.sin(2 * np.pi * fm * t + 0.3))
    m = measure_channel(x + _noise(rng, p_noise), FS, full_scale_dbm=0.0)
    carson = 2 * (dev + fm)
    assert m.occupied_bw_hz == pytest.approx(carson, rel=0.25)
    beta = dev / fm
    k = np.arange(0, 40)
    cum = special.jv(0, beta) ** 2 + 2 * np.cumsum(special.jv(k[1:], beta) ** 2)
    k99 = int(k[1:][np.argmax(cum >= 0.99)])
    assert abs(m.occupied_bw_hz - 2 * k99 * fm) < fm + 2 * DF
    assert abs(m.freq_offset_hz) < DF
    assert m.detected


def test_channel_offset_and_bandwidth() -> None:
    """A tone in a 2 kHz channel at +3 kHz: offset is relative to the channel centre."""
    rng = np.random.default_rng(3)
    p_noise = 1e-4
    ps = 1e-2
    x = _noise(rng, p_noise) + _tone(rng, ps, 3300.0)
    m = measure_channel(x, FS, 0.0, channel_offset_hz=3000.0, channel_bw_hz=2000.0)
    assert abs(m.freq_offset_hz - 300.0) < 0.1 * DF
    assert m.power_dbm == pytest.approx(10 * math.log10(ps), abs=0.2)
    other = measure_channel(x, FS, 0.0, channel_offset_hz=-3000.0, channel_bw_hz=2000.0)
    assert not other.detected


def test_invalid_input() -> None:
    with pytest.raises(InvalidEventError, match="NaN"):
        measure_channel(np.array([np.nan] * 100, dtype=complex), FS, 0.0)
    with pytest.raises(InvalidEventError, match="too few"):
        measure_channel(np.zeros(4, complex), FS, 0.0)
    with pytest.raises(InvalidEventError, match="outside"):
        measure_channel(np.ones(512, complex), FS, 0.0, channel_offset_hz=1e6, channel_bw_hz=10.0)
    m = measure_channel(np.zeros(512, complex), FS, 0.0)  # silence: finite numbers, no detection
    assert not m.detected and math.isfinite(m.noise_floor_dbm_hz)


def test_short_chunk_uses_chunk_length() -> None:
    rng = np.random.default_rng(1)
    m = measure_channel(_noise(rng, 1e-3, 128), FS, 0.0)
    assert m.psd_dbm_hz.shape == (128,)
    assert m.psd_bin_hz == pytest.approx(FS / 128)


def test_speed_per_chunk() -> None:
    """Reports µs per 2400-sample chunk (run with -s to see it)."""
    x = _noise(np.random.default_rng(0), 1e-3).astype(np.complex64)
    measure_channel(x, FS, 0.0)
    reps = 300
    t0 = time.perf_counter()
    for _ in range(reps):
        measure_channel(x, FS, 0.0)
    us = (time.perf_counter() - t0) / reps * 1e6
    print(f"\nmeasure_channel: {us:.0f} µs per {N}-sample chunk")
    assert us < 200_000  # 200 ms of signal per chunk at 12 kHz: must stay far below real time
