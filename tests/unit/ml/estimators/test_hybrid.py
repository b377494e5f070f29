r"""Joint RSS + TDOA (heimdall.ml.estimators.hybrid).

Models: ``P_i = P0 − 5 n log10(g_i² + 1) + v_i``, ``v_i ~ N(0, σ_dB²)`` and
``d_i0 = g_i − g_0 + c(ε_i − ε_0)``, ``ε_i ~ N(0, σ_t²)``, independent. Fisher information
adds: ``𝓘 = J_Pᵀ J_P / σ_dB² + blockdiag(J_τᵀ P⁻¹ J_τ, 0)`` over θ = (x, y, P0, n), and
``CRLB = [𝓘⁻¹]_{xy}``. Checked (fixed seeds):

- noiseless data → exact θ;
- the CRLB equals the inverse of a finite-difference Fisher matrix; it is below both the RSS
  and the TDOA bound (information only adds);
- Monte Carlo in a geometry where both kinds of measurement matter — 8 receivers on a ring
  of radius ~10 km (jittered), transmitter at (2.5, −1.5) km, σ_dB = 0.5 dB, σ_t = 2 µs per
  receiver (600 m of range: NTP-grade or free-running clocks, not GPS), P0 = 30 dBm,
  n = 3.2 — the hybrid RMSE is within 1.25× its CRLB and below both single-method RMSEs
  (each also near its own bound: this is the linear regime, errors ≈ 5–10 % of the radius);
- with GPS timing (σ_t = 50 ns) on the seed network the hybrid bound equals the TDOA bound to
  < 0.1 %: RSS adds nothing there.
"""

from __future__ import annotations

import math

import numpy as np

from heimdall.ml.estimators.hybrid import estimate_hybrid, hybrid_crlb
from heimdall.ml.estimators.rss import estimate_rss, rss_crlb, rss_jacobian, rss_mean_model
from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S as C
from heimdall.ml.estimators.tdoa import estimate_tdoa, range_differences, tdoa_crlb

P0, N_EXP = 30.0, 3.2
TX = np.array([2500.0, -1500.0])
SIGMA_DB, SIGMA_T = 0.5, 2e-6


def _ring(m: int = 8, radius: float = 10e3, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ang = np.linspace(0, 2 * np.pi, m, endpoint=False) + rng.uniform(-0.2, 0.2, m)
    rad = radius * rng.uniform(0.8, 1.2, m)
    return np.c_[rad * np.cos(ang), rad * np.sin(ang)]


def test_noiseless_exact() -> None:
    rx = _ring()
    for tx in (TX, np.array([14e3, 9e3])):
        e = estimate_hybrid(
            rx,
            rss_mean_model([*tx, P0, N_EXP], rx),
            range_differences(rx, tx) / C,
            sigma_db=SIGMA_DB,
            sigma_s=SIGMA_T,
        )
        assert math.hypot(e.east_m - tx[0], e.north_m - tx[1]) < 1e-3
        assert abs(e.p0_dbm - P0) < 1e-6 and abs(e.path_loss_exponent - N_EXP) < 1e-8
        assert e.converged and e.n_rss == 8 and e.residual_rms_db < 1e-9


def test_crlb_matches_finite_difference_fisher_and_beats_each() -> None:
    rx = _ring()
    th = np.array([*TX, P0, N_EXP])
    h = 1e-3
    jp = np.empty((8, 4))
    jt = np.zeros((7, 4))
    for j in range(4):
        dp = np.zeros(4)
        dp[j] = h
        jp[:, j] = (rss_mean_model(th + dp, rx) - rss_mean_model(th - dp, rx)) / (2 * h)
        if j < 2:
            jt[:, j] = (
                range_differences(rx, (th + dp)[:2]) - range_differences(rx, (th - dp)[:2])
            ) / (2 * h)
    assert np.allclose(rss_jacobian(th, rx), jp, rtol=1e-6, atol=1e-9)
    q = (C * SIGMA_T) ** 2 * (np.eye(7) + 1.0)
    info = jp.T @ jp / SIGMA_DB**2 + jt.T @ np.linalg.solve(q, jt)
    ref = np.linalg.inv(info)[:2, :2]
    hyb = hybrid_crlb(rx, TX, n=N_EXP, sigma_db=SIGMA_DB, sigma_s=SIGMA_T)
    assert np.allclose(hyb, ref, rtol=1e-5)
    rss = rss_crlb(rx, TX, N_EXP, SIGMA_DB)
    tdoa = tdoa_crlb(rx, TX, sigma_s=SIGMA_T)
    # Loewner order: both differences are positive semi-definite
    assert np.all(np.linalg.eigvalsh(rss - hyb) > -1e-9)
    assert np.all(np.linalg.eigvalsh(tdoa - hyb) > -1e-9)
    assert np.trace(hyb) < 0.8 * min(np.trace(rss), np.trace(tdoa))


def test_monte_carlo_hybrid_beats_either() -> None:
    rx = _ring()
    mu = rss_mean_model([*TX, P0, N_EXP], rx)
    d0 = range_differences(rx, TX) / C
    rng = np.random.default_rng(42)
    err: dict[str, list[np.ndarray]] = {"rss": [], "tdoa": [], "hybrid": []}
    for _ in range(200):
        p = mu + SIGMA_DB * rng.standard_normal(8)
        eps = SIGMA_T * rng.standard_normal(8)
        d = d0 + eps[1:] - eps[0]
        r = estimate_rss(rx, p, sigma_db=SIGMA_DB, estimate_sigma=False)
        t = estimate_tdoa(rx, d, sigma_s=SIGMA_T)
        hy = estimate_hybrid(rx, p, d, sigma_db=SIGMA_DB, sigma_s=SIGMA_T)
        for k, e in (("rss", r), ("tdoa", t), ("hybrid", hy)):
            err[k].append(np.array([e.east_m, e.north_m]) - TX)
    rmse = {k: math.sqrt(np.mean(np.sum(np.array(v) ** 2, axis=1))) for k, v in err.items()}
    bound = {
        "rss": math.sqrt(np.trace(rss_crlb(rx, TX, N_EXP, SIGMA_DB))),
        "tdoa": math.sqrt(np.trace(tdoa_crlb(rx, TX, sigma_s=SIGMA_T))),
        "hybrid": math.sqrt(
            np.trace(hybrid_crlb(rx, TX, n=N_EXP, sigma_db=SIGMA_DB, sigma_s=SIGMA_T))
        ),
    }
    print("\n" + ", ".join(f"{k}: RMSE {rmse[k]:.0f} m / CRLB {bound[k]:.0f} m" for k in rmse))
    assert rmse["hybrid"] <= 1.25 * bound["hybrid"]
    assert rmse["hybrid"] < rmse["rss"] and rmse["hybrid"] < rmse["tdoa"]


def test_gps_timing_rss_adds_nothing() -> None:
    from tests.unit.ml.estimators.test_tdoa import _vhf

    rx, tx, th = _vhf()
    t = tdoa_crlb(rx, tx, sigma_s=50e-9, tx_height_m=th)
    hyb = hybrid_crlb(rx, tx, n=3.0, sigma_db=4.0, sigma_s=50e-9, tx_height_m=th)
    assert np.trace(hyb) <= np.trace(t) and np.trace(hyb) > 0.999 * np.trace(t)


def test_missing_powers_are_skipped() -> None:
    rx = _ring()
    p = rss_mean_model([*TX, P0, N_EXP], rx)
    p[[1, 5]] = np.nan
    e = estimate_hybrid(rx, p, range_differences(rx, TX) / C, sigma_db=SIGMA_DB, sigma_s=SIGMA_T)
    assert e.n_rss == 6 and math.hypot(e.east_m - TX[0], e.north_m - TX[1]) < 1e-3
