"""Physics of the simulator's building blocks: geodesy, FSPL, thermal noise, waveforms."""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.producers.sim import (
    NbfmMultisine,
    NbfmSpec,
    cycles_at,
    fspl_db,
    geodetic_to_ecef,
    slant_range_m,
    thermal_noise_power_dbm,
)

T_EPOCH_NS = 1_700_000_000_123_456_789


def test_slant_range_vertical() -> None:
    """Two points on the same vertical differ by exactly their heights: d = |h1 - h2|."""
    a = geodetic_to_ecef(45.0, 8.0, 100.0)
    b = geodetic_to_ecef(45.0, 8.0, 1100.0)
    assert slant_range_m(a, b) == pytest.approx(1000.0, abs=1e-6)


def test_fspl_reference_value() -> None:
    """FSPL = 20 log10(4 pi d f / c): 1 km at 145 MHz is 75.675 dB, and +6.02 dB per
    doubling of distance or frequency."""
    assert fspl_db(1_000.0, 145e6) == pytest.approx(75.675, abs=1e-3)
    assert fspl_db(2_000.0, 145e6) - fspl_db(1_000.0, 145e6) == pytest.approx(6.0206, abs=1e-4)
    assert fspl_db(1_000.0, 290e6) - fspl_db(1_000.0, 145e6) == pytest.approx(6.0206, abs=1e-4)


def test_thermal_noise_formula() -> None:
    """P = k T0 B F: -174 dBm/Hz + 10 log10(B) + NF, i.e. -127.2 dBm for 12 kHz, NF 6 dB."""
    assert thermal_noise_power_dbm(1.0, 0.0) == pytest.approx(-173.975, abs=1e-3)
    assert thermal_noise_power_dbm(12_000.0, 6.0) == pytest.approx(
        -174.0 + 10 * np.log10(12_000.0) + 6.0, abs=0.03
    )


def test_cycles_at_is_exact_at_epoch_times() -> None:
    """frac(f t) at t ~ 1.7e9 s equals the exact rational value (Fractions) to 1e-6 cycle."""
    from fractions import Fraction

    for f in (250.0, -120.0, 1234.5678, 2999.999):
        exact = (Fraction(f) * Fraction(T_EPOCH_NS, 10**9)) % 1
        got = float(cycles_at(f, T_EPOCH_NS))
        err = abs(got - float(exact))
        assert min(err, 1 - err) < 1e-6


def _nbfm(seed: int = 3) -> NbfmMultisine:
    return NbfmSpec(deviation_hz=2_500.0).build(np.random.SeedSequence(seed))


def test_nbfm_grid_matches_direct_evaluation() -> None:
    """evaluate_grid(t0, fs, N, tau)[r, n] == u(t0 + n/fs - tau_r) (the fast matrix path
    equals the direct sum of sinusoids) to float32 precision."""
    wf = _nbfm()
    fs, n = 12_000.0, 2_400
    tau = np.array([0.0, 1.234567e-4, 4.0001e-4])
    grid = wf.evaluate_grid(T_EPOCH_NS, fs, n, tau)
    direct = wf.evaluate(T_EPOCH_NS, np.arange(n) / fs - tau[:, None])
    np.testing.assert_allclose(grid, direct, atol=2e-5, rtol=0)


def test_nbfm_unit_power_and_deviation() -> None:
    """|u| = 1 (unit power) and the instantaneous frequency (1/2pi) d(arg u)/dt equals
    D m(t), with mean m^2 = 1/2 (so the RMS deviation is D / sqrt 2)."""
    wf = _nbfm()
    fs_fine = 2e6  # fine grid: the phase increment per sample is tiny
    t = np.arange(200_000) / fs_fine
    u = wf.evaluate(T_EPOCH_NS, t)
    np.testing.assert_allclose(np.abs(u), 1.0, atol=1e-12)
    inst_hz = np.angle(u[1:] * np.conj(u[:-1])) * fs_fine / (2 * np.pi)
    m_mid = wf.audio(T_EPOCH_NS, (t[1:] + t[:-1]) / 2)
    np.testing.assert_allclose(inst_hz, 2_500.0 * m_mid, atol=0.5)
    m = wf.audio(T_EPOCH_NS, np.arange(120_000) / 12_000.0)
    assert np.mean(m**2) == pytest.approx(0.5, rel=0.05)
    assert np.all(wf.audio_freqs_hz >= 300.0)
    assert np.all(wf.audio_freqs_hz <= 3_000.0)
