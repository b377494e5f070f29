"""RSS maximum likelihood with unknown P0 and n (heimdall.ml.estimators.rss).

Model: ``P_i = P0 − 10 n log10 d_i + w_i``, ``w_i ~ N(0, σ²)``. Theory checked:

- noiseless data are fitted exactly (the model is identifiable for a non-degenerate
  geometry), so x, y, P0, n are recovered to < 1 m / 1e-6;
- CRLB (Patwari et al. 2003): ``[σ² (JᵀJ)⁻¹]_{xy}`` with J the Jacobian of the mean over
  (x, y, P0, n). The ML estimate attains it asymptotically: in the small-error regime
  (σ = 0.5 dB here: CRLB ≈ 4 % of the ring radius) RMSE ≤ 1.25·sqrt(tr CRLB) and the
  k-sigma ellipses contain the truth with probability ``1 − e^{−k²/2}`` (39.3 %, 86.5 %);
  with 300 trials the binomial std is sqrt(p(1−p)/300) = 2.8 % / 2.0 %, tolerance 3 std;
- with σ estimated from m − 4 = 4 degrees of freedom the linear-Gaussian theory gives
  ``P(Q ≤ k² max(s², σ_floor²/σ²))``, Q ~ χ²₂, s² ~ χ²₄/4 independent;
- at σ = 4 dB (CRLB ≈ 33 % of the ring radius) the problem is past the threshold where the
  linearisation holds: the ML error has heavy tails (RMSE several times the CRLB) while
  its bulk still follows the CRLB — the median radial error is within 25 % of the median
  of N(0, CRLB), and the 2-sigma coverage is near 86.5 %.
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators.ellipse import coverage_probability, mahalanobis2
from heimdall.ml.estimators.rss import estimate_rss, rss_crlb, rss_mean_model

P0, N_EXP = 30.0, 3.2
TX = np.array([2500.0, -1500.0])


def _ring(m: int = 8, radius: float = 10e3, seed: int = 1) -> np.ndarray:
    """m receivers on a ~20 km diameter ring, jittered in angle and radius."""
    rng = np.random.default_rng(seed)
    ang = np.linspace(0, 2 * np.pi, m, endpoint=False) + rng.uniform(-0.2, 0.2, m)
    rad = radius * rng.uniform(0.8, 1.2, m)
    return np.c_[rad * np.cos(ang), rad * np.sin(ang)]


def _monte_carlo(
    sigma: float, trials: int = 300, seed: int = 42, **kw: object
) -> tuple[np.ndarray, np.ndarray]:
    rx = _ring()
    mu = rss_mean_model([*TX, P0, N_EXP], rx)
    rng = np.random.default_rng(seed)
    err, q = [], []
    for _ in range(trials):
        e = estimate_rss(rx, mu + sigma * rng.standard_normal(len(mu)), **kw)  # type: ignore[arg-type]
        d = np.array([e.east_m, e.north_m]) - TX
        err.append(d)
        q.append(mahalanobis2(d, e.cov_en))
    return np.array(err), np.array(q)


def _binom_tol(p: float, n: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


def test_noiseless_exact_recovery() -> None:
    rx = _ring()
    for tx in ([2500.0, -1500.0], [14e3, 9e3], [-300.0, 7000.0]):
        mu = rss_mean_model([*tx, P0, N_EXP], rx)
        e = estimate_rss(rx, mu)
        assert math.hypot(e.east_m - tx[0], e.north_m - tx[1]) < 1.0
        assert e.p0_dbm == pytest.approx(P0, abs=1e-4)
        assert e.path_loss_exponent == pytest.approx(N_EXP, abs=1e-6)
        assert e.converged and e.n_receivers == 8 and e.residual_rms_db < 1e-6
        assert e.cov_en.shape == (2, 2) and np.all(np.linalg.eigvalsh(e.cov_en) > 0)


def test_calibration_and_heights() -> None:
    """Offsets c_i are added to P_i; receiver heights enter d_i with the given tx height."""
    rx = np.c_[_ring(), np.linspace(0.0, 700.0, 8)]
    mu = rss_mean_model([*TX, P0, N_EXP], rx, tx_height_m=50.0)
    cal = np.linspace(-3.0, 3.0, 8)
    e = estimate_rss(rx, mu - cal, calibration_db=cal, tx_height_m=50.0)
    assert math.hypot(e.east_m - TX[0], e.north_m - TX[1]) < 1.0


def test_crlb_matches_numeric_fisher() -> None:
    """CRLB from a finite-difference Jacobian agrees; it scales as σ²."""
    rx = _ring()
    h = 1e-3
    jac = np.empty((8, 4))
    th = np.array([*TX, P0, N_EXP])
    for j in range(4):
        dp = np.zeros(4)
        dp[j] = h
        jac[:, j] = (rss_mean_model(th + dp, rx) - rss_mean_model(th - dp, rx)) / (2 * h)
    ref = np.linalg.inv(jac.T @ jac / 16.0)[:2, :2]
    assert np.allclose(rss_crlb(rx, TX, N_EXP, 4.0), ref, rtol=1e-5)
    assert np.allclose(rss_crlb(rx, TX, N_EXP, 2.0), ref / 4, rtol=1e-5)
    # nuisance parameters cost information: the bound exceeds the one with P0, n known
    known = np.linalg.inv(jac[:, :2].T @ jac[:, :2] / 16.0)
    assert np.trace(ref) > np.trace(known)


def test_crlb_singular_when_equidistant() -> None:
    """All d_i equal: the P0 and n columns of J are collinear, the Fisher matrix is singular."""
    ang = np.linspace(0, 2 * np.pi, 6, endpoint=False)
    rx = 5e3 * np.c_[np.cos(ang), np.sin(ang)]
    assert np.all(np.isinf(rss_crlb(rx, [0.0, 0.0], 3.0, 4.0)))


def test_monte_carlo_attains_crlb_small_error_regime() -> None:
    """σ = 0.5 dB, σ known: RMSE ≤ 1.25 sqrt(tr CRLB); 1σ/2σ coverage 39.3 %/86.5 % ± 3 std."""
    sigma = 0.5
    crlb = rss_crlb(_ring(), TX, N_EXP, sigma)
    err, q = _monte_carlo(sigma, sigma_db=sigma, estimate_sigma=False)
    rmse = math.sqrt(np.mean(np.sum(err**2, axis=1)))
    bound = math.sqrt(np.trace(crlb))
    assert rmse <= 1.25 * bound
    assert rmse >= 0.8 * bound  # an estimator far below the bound would mean a wrong CRLB
    for k in (1.0, 2.0):
        p = coverage_probability(k)
        assert abs(np.mean(q <= k * k) - p) < _binom_tol(p, len(q))


def test_monte_carlo_estimated_sigma_coverage() -> None:
    """σ̂ from m − 4 = 4 dof floored at sigma_db: coverage P(Q ≤ k² max(s², f²)) ± 3 std."""
    sigma, floor = 0.5, 0.4
    _, q = _monte_carlo(sigma, sigma_db=floor, estimate_sigma=True, seed=7)
    rng = np.random.default_rng(0)
    qq = rng.chisquare(2, 200_000)
    s2 = np.maximum(rng.chisquare(4, 200_000) / 4, (floor / sigma) ** 2)
    for k in (1.0, 2.0):
        p = float(np.mean(qq <= k * k * s2))
        assert abs(np.mean(q <= k * k) - p) < _binom_tol(p, len(q))


def test_monte_carlo_sigma_4db_threshold_regime() -> None:
    """σ = 4 dB, 8 receivers on a 20 km ring: the bulk follows the CRLB (see module doc)."""
    sigma = 4.0
    crlb = rss_crlb(_ring(), TX, N_EXP, sigma)
    err, q = _monte_carlo(sigma, sigma_db=sigma, estimate_sigma=False)
    radial = np.hypot(err[:, 0], err[:, 1])
    ref = np.random.default_rng(0).multivariate_normal([0, 0], crlb, 200_000)
    median_theory = float(np.median(np.hypot(ref[:, 0], ref[:, 1])))
    assert np.median(radial) == pytest.approx(median_theory, rel=0.25)
    p2 = coverage_probability(2.0)
    assert abs(np.mean(q <= 4.0) - p2) < _binom_tol(p2, len(q))
    rmse = math.sqrt(np.mean(radial**2))
    print(
        f"\nσ=4 dB: sqrt(tr CRLB) {math.sqrt(np.trace(crlb)):.0f} m, RMSE {rmse:.0f} m, "
        f"median {np.median(radial):.0f} m (theory {median_theory:.0f} m), "
        f"1σ cover {np.mean(q <= 1):.3f}, 2σ cover {np.mean(q <= 4):.3f}"
    )


def test_outlier_soft_l1_beats_linear() -> None:
    """One receiver +20 dB: soft_l1 error stays near the clean error, linear does not."""
    rx = _ring()
    mu = rss_mean_model([*TX, P0, N_EXP], rx)
    rng = np.random.default_rng(5)
    e_lin: list[float] = []
    e_rob: list[float] = []
    e_clean: list[float] = []
    for _ in range(40):
        p = mu + 1.0 * rng.standard_normal(8)
        bad = p.copy()
        bad[3] += 20.0
        for out, pw, loss in (
            (e_clean, p, "linear"),
            (e_lin, bad, "linear"),
            (e_rob, bad, "soft_l1"),
        ):
            e = estimate_rss(rx, pw, sigma_db=1.0, loss=loss)  # type: ignore[arg-type]
            out.append(math.hypot(e.east_m - TX[0], e.north_m - TX[1]))
    assert np.median(e_rob) < 0.5 * np.median(e_lin)
    assert np.median(e_rob) < 2.0 * np.median(e_clean)


def test_too_few_receivers() -> None:
    with pytest.raises(EstimationError, match="at least 4 receivers"):
        estimate_rss(_ring(3), [-50.0, -60.0, -70.0])


def test_collinear_receivers_raise_clearly() -> None:
    rx = np.c_[np.linspace(-10e3, 10e3, 6), np.zeros(6)]
    mu = rss_mean_model([1000.0, 3000.0, P0, N_EXP], rx)
    with pytest.raises(EstimationError, match="collinear"):
        estimate_rss(rx, mu)
    # nearly collinear (1 % width): no crash, a finite and positive-definite covariance
    rx2 = rx.copy()
    rx2[:, 1] = [0.0, 100.0, -50.0, 80.0, 0.0, -100.0]
    e = estimate_rss(rx2, rss_mean_model([1000.0, 3000.0, P0, N_EXP], rx2))
    assert np.all(np.isfinite(e.cov_en)) and np.all(np.linalg.eigvalsh(e.cov_en) > 0)


def test_non_finite_input() -> None:
    p = rss_mean_model([*TX, P0, N_EXP], _ring())
    p[2] = np.nan
    with pytest.raises(EstimationError, match="NaN"):
        estimate_rss(_ring(), p)


def test_speed_seven_receivers() -> None:
    """Reports µs per estimate for 7 receivers (run with -s)."""
    rx = _ring(7)
    mu = rss_mean_model([*TX, P0, N_EXP], rx)
    rng = np.random.default_rng(0)
    data = [mu + 4.0 * rng.standard_normal(7) for _ in range(50)]
    t0 = time.perf_counter()
    for p in data:
        estimate_rss(rx, p)
    us = (time.perf_counter() - t0) / len(data) * 1e6
    print(f"\nestimate_rss: {us:.0f} µs per estimate (7 receivers)")
    assert us < 1e6


@pytest.mark.parametrize("loss", ["linear", "soft_l1", "huber"])
def test_same_optimum_as_scipy_least_squares(loss: str) -> None:
    """The Levenberg–Marquardt solver finds what ``scipy.optimize.least_squares`` (trf, the
    same loss and bounds, run here from the estimator's answer and from the true θ) finds:
    no lower cost exists near the answer, on seeded random geometries."""
    from scipy.optimize import least_squares

    rng = np.random.default_rng(2026)
    for trial in range(12):
        m = int(rng.integers(5, 30))
        rx = rng.uniform(-5_000.0, 5_000.0, size=(m, 2))
        tx = rng.uniform(-3_000.0, 3_000.0, size=2)
        p = rss_mean_model([*tx, -10.0, 3.0], rx) + 3.0 * rng.standard_normal(m)
        e = estimate_rss(rx, p, sigma_db=3.0, loss=loss)  # type: ignore[arg-type]

        def fun(theta: np.ndarray, p: np.ndarray = p, rx: np.ndarray = rx) -> np.ndarray:
            return p - rss_mean_model(theta, rx)

        for x0 in ([e.east_m, e.north_m, e.p0_dbm, e.path_loss_exponent], [*tx, -10.0, 3.0]):
            x0[3] = float(np.clip(x0[3], 1.5 + 1e-9, 6.0 - 1e-9))
            ref = least_squares(
                fun, x0, bounds=([-np.inf] * 3 + [1.5], [np.inf] * 3 + [6.0]),
                loss=loss, f_scale=3.0, x_scale="jac", method="trf",
            )  # fmt: skip
            assert e.cost <= ref.cost * (1 + 1e-6) + 1e-9, (trial, loss)
        assert e.converged, trial
