"""The Gabor bandwidth of a pair's common signal, against its closed forms (seeded).

- A flat cross-spectrum over ``a ≤ |f| ≤ b`` (both sides of the tuned frequency, centroid 0):
  :math:`β^2 = \\frac{\\int_a^b f^2 df}{\\int_a^b df} = \\frac{b^3 - a^3}{3 (b - a)}`.
- A pure tone: the cross-spectrum is one line, β is the window's spread around it (a few Hz
  for 1024-point segments at 12 kHz), so the resolution is tens of milliseconds.
- Independent noises at the two receivers do not add bandwidth: their cross terms average out.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.ml.tdoa.resolution import gabor_bandwidth_hz, lag_resolution_s

FS = 12_000.0
N = int(20 * FS)


def _band_noise(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    f = np.fft.fftfreq(N, 1.0 / FS)
    spec = rng.normal(size=N) + 1j * rng.normal(size=N)
    spec[(np.abs(f) < lo) | (np.abs(f) > hi)] = 0.0
    return np.fft.ifft(spec)


def test_flat_band_matches_the_closed_form() -> None:
    rng = np.random.default_rng(5)
    s = _band_noise(rng, 30.0, 1500.0)
    beta = gabor_bandwidth_hz(s, s, FS)
    expected = math.sqrt((1500.0**3 - 30.0**3) / (3.0 * (1500.0 - 30.0)))
    assert beta == pytest.approx(expected, rel=0.02)


def test_independent_noise_adds_no_common_bandwidth() -> None:
    rng = np.random.default_rng(6)
    n = np.arange(N)
    tone = np.exp(2j * np.pi * 700.0 * n / FS)
    noise = [(rng.normal(size=N) + 1j * rng.normal(size=N)) * 0.1 for _ in range(2)]
    beta = gabor_bandwidth_hz(tone + noise[0], tone + noise[1], FS)
    assert beta < 25.0  # a line: the resolution is tens of ms
    assert lag_resolution_s(beta) > 5e-3
    wide = _band_noise(rng, 30.0, 1500.0)
    assert gabor_bandwidth_hz(wide + noise[0], wide + noise[1], FS) > 500.0


def test_no_cross_power_is_zero_bandwidth() -> None:
    assert gabor_bandwidth_hz(np.zeros(4096), np.zeros(4096), FS) == 0.0
    assert lag_resolution_s(0.0) == math.inf
    assert lag_resolution_s(100.0) == pytest.approx(1.0 / (200.0 * math.pi))
