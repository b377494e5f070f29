r"""Pieces of the fast ``xcorr`` path against their references (issue 11).

- The band-pass of a long run (interior by one FFT convolution with the taps'
  autocorrelation, ends by both passes) equals ``scipy.signal.filtfilt`` to 1e-12.
- :func:`~heimdall.ml.tdoa.xcorr.resample_band_limited` (B-spline, order 5) equals the
  Kaiser-sinc resampler on a signal band-limited to 1/8 of its rate within 1e-4 (the
  spline's theoretical error there is ~(ν/(1−ν))⁶ ≈ 1e-5; the sinc's own error is of the same
  order), with the same validity across a gap.
- The sub-sample refinement (``_peaks_near``: Taylor series + Newton) finds the maximum of
  the band-limited ``|R(τ)|`` that a brute-force evaluation on a 10⁻⁴-sample grid finds, row by
  row, within 10⁻⁴ sample.
- Many pairs at once (:func:`~heimdall.ml.tdoa.xcorr.measure_lags_on_grid`, spectra shared)
  give exactly what each pair alone gives (:func:`~heimdall.ml.tdoa.xcorr.measure_lag_on_grid`).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from heimdall.ml.tdoa.lags import bandpass
from heimdall.ml.tdoa.xcorr import (
    _peaks_near,
    measure_lag_on_grid,
    measure_lags_on_grid,
    resample_band_limited,
    resample_with_mask,
)

FS = 12_000.0


def test_bandpass_of_a_long_run_equals_filtfilt() -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal(40_000) + 1j * rng.standard_normal(40_000)
    taps = signal.firwin(401, [30.0, 1500.0], pass_zero=False, fs=FS)
    ref = signal.filtfilt(taps, [1.0], x)
    y = bandpass(x, FS, (30.0, 1500.0))
    assert np.max(np.abs(y - ref)) < 1e-12 * np.max(np.abs(ref))


def test_spline_resampler_matches_the_sinc_on_band_limited_input() -> None:
    rng = np.random.default_rng(6)
    n = 24_000
    x = bandpass(rng.standard_normal(n) + 1j * rng.standard_normal(n), FS, (30.0, 1500.0))
    t = 1e5 + np.arange(n) / (FS * (1 + 1.3e-5))
    keep = np.r_[0:9000, 9500:n]  # a gap of 500 samples
    x, t = x[keep], t[keep]
    times = t[0] + 0.37e-3 + np.arange(7000) * 3 / FS
    ref, v_ref = resample_with_mask(x, t, times)
    got, v_got = resample_band_limited(x, t, times)
    assert np.array_equal(v_ref, v_got) and not v_got.all()
    # away from the run ends, where the sinc is truncated and the spline mirrored
    ends = np.searchsorted(times, [t[0], t[8999], t[9000], t[-1]])
    inner = np.ones(times.size, dtype=bool)
    for e in ends:
        inner[max(e - 20, 0) : e + 20] = False
    inner &= v_ref
    err = np.sqrt(np.mean(np.abs(got[inner] - ref[inner]) ** 2) / np.mean(np.abs(ref[inner]) ** 2))
    assert err < 1e-4


def test_refinement_finds_the_brute_force_maximum() -> None:
    rng = np.random.default_rng(7)
    nfft = 4096
    f = np.fft.fftfreq(nfft)
    keep = (np.abs(f) >= 0.01) & (np.abs(f) <= 0.375)
    f = f[keep]
    true = np.array([2.3, 2.71, 3.05, 1.9])
    spec = np.exp(-2j * np.pi * np.outer(true, f)) * np.exp(-((f / 0.2) ** 2))
    spec = spec + 0.3 * (rng.standard_normal(spec.shape) + 1j * rng.standard_normal(spec.shape))
    tau, peak = _peaks_near(spec, f, 1.0, 4.0, nfft)
    fine = np.arange(1.0, 4.0 + 1e-9, 1e-4)
    for k in range(true.size):
        vals = np.abs(np.exp(2j * np.pi * np.outer(fine, f)) @ spec[k]) / nfft
        # the maximum within ±1/4 sample of the best quarter-sample grid point
        grid = np.arange(1.0, 4.0 + 1e-9, 0.25)
        g = grid[np.argmax(np.abs(np.exp(2j * np.pi * np.outer(grid, f)) @ spec[k]))]
        near = np.abs(fine - g) <= 0.25 + 1e-12
        best = fine[near][np.argmax(vals[near])]
        assert abs(tau[k] - best) < 1e-4
        assert peak[k] >= vals[near].max() * (1 - 1e-9)


def test_many_pairs_at_once_equal_each_pair_alone() -> None:
    rng = np.random.default_rng(8)
    n = 8192
    s = bandpass(rng.standard_normal(n + 64) + 1j * rng.standard_normal(n + 64), FS, (30, 1500))
    sig = []
    for i in range(3):
        x = s[3 * i : 3 * i + n] + 0.2 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
        v = np.ones(n, dtype=bool)
        if i == 2:
            v[:40] = False  # another span: this receiver's pairs do not share its spectra
        sig.append((x, v))
    times = np.arange(n) / FS
    kw = {
        "band_hz": (30.0, 1500.0),
        "subband_edges_hz": [(-1500.0, -765.0), (-765.0, -30.0), (30.0, 765.0), (765.0, 1500.0)],
    }
    pairs = [(0, 1, 2e-3), (0, 2, 2e-3), (1, 2, 2e-3)]
    many = measure_lags_on_grid(sig, times, FS, pairs, **kw)  # type: ignore[arg-type]
    for (a, b, lim), m in zip(pairs, many, strict=True):
        one = measure_lag_on_grid(*sig[a], *sig[b], times, FS, max_lag_s=lim, **kw)  # type: ignore[arg-type]
        assert not isinstance(m, ValueError)
        assert (m.lag_s, m.sigma_s, m.sigma_sys_s, m.quality) == (
            one.lag_s,
            one.sigma_s,
            one.sigma_sys_s,
            one.quality,
        )
        assert abs(m.lag_s * FS + 3 * (b - a)) < 0.05  # b leads a by 3 samples per index
