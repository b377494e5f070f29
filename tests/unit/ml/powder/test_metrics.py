"""Metrics against hand-computed values; χ²₂ ellipse coverage; calibration; the CDF plot."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from heimdall.ml.estimators.ellipse import coverage_probability
from heimdall.ml.evaluation.metrics import (
    TARGET_COVERAGE,
    coverage,
    error_stats,
    fit_covariance_calibration,
    fit_covariance_scale,
    fit_track_calibration,
    localization_metrics,
    mahalanobis2_batch,
    plot_error_cdf,
)


def test_error_stats_by_hand() -> None:
    # errors 0, 10, 20, 30, 40: mean 20, median 20; P68 at rank 0.68*4 = 2.72 -> 27.2;
    # P95 at rank 3.8 -> 38
    s = error_stats([30.0, 0.0, 40.0, 10.0, 20.0])
    assert s == pytest.approx({"median_m": 20.0, "mean_m": 20.0, "p68_m": 27.2, "p95_m": 38.0})


def test_localization_metrics_and_coverage_by_hand() -> None:
    est = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 2.0]])
    truth = np.zeros((3, 2))
    cov = np.stack([np.eye(2) * 25.0, np.eye(2), np.diag([1.0, 16.0])])
    # q = 25/25 = 1 (on the 1σ boundary: inside), 0, 4/16 = 0.25
    q = mahalanobis2_batch(est - truth, cov)
    np.testing.assert_allclose(q, [1.0, 0.0, 0.25])
    m = localization_metrics(est, truth, cov)
    assert m["median_m"] == pytest.approx(2.0) and m["mean_m"] == pytest.approx(7.0 / 3.0)
    assert m["coverage_1sigma"] == pytest.approx(1.0) and m["coverage_2sigma"] == 1.0
    # correlated covariance, closed form q = eᵀ Σ⁻¹ e
    c = np.array([[4.0, 1.0], [1.0, 2.0]])
    e = np.array([1.0, -2.0])
    assert mahalanobis2_batch(e[None], c[None])[0] == pytest.approx(e @ np.linalg.solve(c, e))


def test_coverage_probability_formula_and_gaussian_check() -> None:
    assert coverage_probability(1.0) == pytest.approx(1.0 - math.exp(-0.5))
    assert coverage_probability(2.0) == pytest.approx(1.0 - math.exp(-2.0))
    assert pytest.approx((0.3935, 0.8647), abs=1e-4) == TARGET_COVERAGE
    rng = np.random.default_rng(1)
    a = np.array([[30.0, 0.0], [12.0, 8.0]])
    cov = a @ a.T
    err = rng.standard_normal((20000, 2)) @ a.T
    covs = np.broadcast_to(cov, (20000, 2, 2))
    assert coverage(err, covs, 1.0) == pytest.approx(0.3935, abs=0.01)
    assert coverage(err, covs, 2.0) == pytest.approx(0.8647, abs=0.01)


def test_fit_covariance_scale_recovers_inflation() -> None:
    rng = np.random.default_rng(2)
    err = rng.standard_normal((5000, 2)) * 3.0  # true Σ = 9 I
    covs = np.broadcast_to(np.eye(2), (5000, 2, 2))  # stated Σ = I: 9x overconfident
    s = fit_covariance_scale(err, covs)
    assert s == pytest.approx(9.0, rel=0.1)
    assert coverage(err, covs * s, 1.0) == pytest.approx(0.3935, abs=0.02)


def test_fit_covariance_calibration_floor() -> None:
    # half the samples state a covariance 100x too small: a floor is needed
    rng = np.random.default_rng(3)
    n = 6000
    err = rng.standard_normal((n, 2)) * 20.0  # true Σ = 400 I everywhere
    stated = np.where(np.arange(n)[:, None, None] % 2 == 0, 400.0, 4.0) * np.eye(2)[None]
    s, f2 = fit_covariance_calibration(err, stated, floors_m=(0.0, 20.0))
    assert f2 == 400.0
    cal = s * (stated + f2 * np.eye(2)[None])
    assert coverage(err, cal, 1.0) == pytest.approx(0.3935, abs=0.03)
    assert coverage(err, cal, 2.0) == pytest.approx(0.8647, abs=0.03)


def test_cdf_plot(tmp_path: Path) -> None:
    p = plot_error_cdf({"a": [1.0, 2.0, 3.0], "b": [2.0, 5.0]}, tmp_path / "cdf.png")
    assert p.exists() and p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_track_calibration_recovers_the_persistent_share() -> None:
    r"""Errors drawn from N(0, P + β₀R) with β₀ = 0.3: the fit returns β = 0.3 and s ≈ 1.

    The candidates are a grid, so β₀ is one of them; with 20 000 samples the coverages of
    the true covariance are within ~0.4 points of χ²₂'s (binomial sd √(p(1−p)/n)), while a
    neighbouring β (0.2 or 0.5) with its best s misses one of them by more.
    """
    rng = np.random.default_rng(4)
    n = 20_000
    p = np.repeat(np.diag([100.0, 400.0])[None], n, axis=0) * rng.uniform(0.5, 2.0, (n, 1, 1))
    r = np.repeat(np.array([[2500.0, 800.0], [800.0, 900.0]])[None], n, axis=0)
    r *= rng.uniform(0.2, 5.0, (n, 1, 1))
    true_cov = p + 0.3 * r
    err = np.einsum("nij,nj->ni", np.linalg.cholesky(true_cov), rng.standard_normal((n, 2)))
    s, beta = fit_track_calibration(err, p, r)
    assert beta == pytest.approx(0.3)
    assert s == pytest.approx(1.0, abs=0.05)
