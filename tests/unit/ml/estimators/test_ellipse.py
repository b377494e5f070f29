"""Error ellipses: P(inside k-sigma ellipse) = 1 − exp(−k²/2) for a 2-D Gaussian."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.ml.estimators.ellipse import (
    coverage_probability,
    error_ellipse,
    k_for_probability,
    mahalanobis2,
)


def test_axes_and_angle() -> None:
    """Σ = R diag(a², b²) Rᵀ with R a rotation by θ: semi-axes k·a, k·b, angle θ."""
    a, b, th = 300.0, 100.0, 30.0
    c, s = math.cos(math.radians(th)), math.sin(math.radians(th))
    rot = np.array([[c, -s], [s, c]])
    cov = rot @ np.diag([a**2, b**2]) @ rot.T
    maj, mnr, ang = error_ellipse(cov, k_sigma=2.0)
    assert maj == pytest.approx(2 * a) and mnr == pytest.approx(2 * b)
    assert ang == pytest.approx(th)
    assert error_ellipse(np.diag([1.0, 4.0]))[2] == pytest.approx(90.0)
    assert error_ellipse(np.diag([4.0, 1.0]))[2] == pytest.approx(0.0)


def test_coverage_values() -> None:
    assert coverage_probability(1.0) == pytest.approx(0.3935, abs=1e-4)
    assert coverage_probability(2.0) == pytest.approx(0.8647, abs=1e-4)
    assert k_for_probability(0.95) == pytest.approx(2.4477, abs=1e-4)
    assert coverage_probability(k_for_probability(0.5)) == pytest.approx(0.5)


def test_mahalanobis_is_chi2_2() -> None:
    """Gaussian draws: fraction with q ≤ k² matches 1 − e^{−k²/2} (20000 draws, 3σ binomial)."""
    rng = np.random.default_rng(3)
    cov = np.array([[400.0, 150.0], [150.0, 100.0]])
    x = rng.multivariate_normal([0, 0], cov, 20000)
    q = np.array([mahalanobis2(v, cov) for v in x])
    for k in (1.0, 2.0):
        p = coverage_probability(k)
        assert abs(np.mean(q <= k * k) - p) < 3 * math.sqrt(p * (1 - p) / q.size)
