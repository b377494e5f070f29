r"""TDOA localisation (heimdall.ml.estimators.tdoa): Chan–Ho, ML refinement, CRLB.

Model: ``d_i0 = c (t_i − t_0) = g_i(x) − g_0(x) + w``, ``g_i = ||x − r_i||``; each receiver's
clock has independent error ``ε_i ~ N(0, σ²)`` so ``w_i = c(ε_i − ε_0)`` and
``Cov(w) = c²σ² (I + 11ᵀ)``. CRLB ``= (Hᵀ Q⁻¹ H)⁻¹`` with ``H_i = u_i − u_0``,
``u_i = (x − r_i)/g_i``. Theory checked, fixed seeds:

- noiseless differences give the position exactly (< 1 mm) from Chan–Ho alone and after LM;
- Chan–Ho is asymptotically efficient: at σ = 50 ns it agrees with the ML fix to a small
  fraction of the CRLB;
- Monte Carlo (300 trials, σ = 50 ns per receiver, i.e. 15 m of range per clock):
  RMSE ≤ 1.25·sqrt(tr CRLB) (and ≥ 0.8·, or the bound would be wrong) and k-sigma coverage
  ``1 − e^{−k²/2}`` (39.3 %, 86.5 %) within 3 binomial std (2.8 % / 2.0 %), in two
  geometries:

  * "hf-tdoa": 6 receivers on a plane at 450–550 km from the centre, azimuths 10°, 75°,
    140°, 190°, 250°, 310° (~1000 km across), transmitter inside at (120, −80) km;
  * "vhf": the 7 receivers of the seed network (aquila-di-giaveno 45.02 N 7.29 E, montanaro
    45.234 N 7.857 E, torino 45.044 N 7.672 E, coazze 45.03 N 7.27 E, passo-del-giovi
    44.561 N 8.956 E, genova 44.395 N 8.956 E, milano-baggio 45.478 N 9.123 E; ~150 km
    across) in the ENU frame at their centroid, with their (negative, Earth-curvature) up
    coordinates, transmitter at 45.0 N 8.2 E at 0 m height;
  * 3 receivers (exactly determined, dof = 0): the covariance ``J⁻¹PJ⁻ᵀ`` still has the
    χ²₂ coverage;
- the CRLB equals the inverse of a finite-difference Fisher matrix built with the explicit
  ``Q = c²σ²(I + 11ᵀ)``; all-pairs input from the same time stamps (singular Q, pseudo-
  inverse) and another reference receiver give the same fix and covariance;
- a delay δ at one receiver moves the fix by ``(HᵀQ⁺H)⁻¹HᵀQ⁺A e_i cδ`` to first order
  (:func:`tdoa_delay_sensitivity`): checked against the estimator itself on delayed,
  noiseless differences (δ = 30 ns: the second-order term is ~(cδ)²/range, < 1 cm).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.core.errors import EstimationError
from heimdall.core.geodesy import LocalFrame
from heimdall.ml.estimators.ellipse import coverage_probability, mahalanobis2
from heimdall.ml.estimators.tdoa import (
    SPEED_OF_LIGHT_M_S as C,
)
from heimdall.ml.estimators.tdoa import (
    chan_ho,
    estimate_tdoa,
    range_differences,
    reduce_tdoa,
    tdoa_crlb,
    tdoa_delay_sensitivity,
)

SIGMA_S = 50e-9
SEED_NETWORK = [
    (45.02, 7.29),
    (45.234, 7.857),
    (45.044, 7.672),
    (45.03, 7.27),
    (44.561, 8.956),
    (44.395, 8.956),
    (45.478, 9.123),
]


def _hf() -> tuple[np.ndarray, np.ndarray, float]:
    ang = np.deg2rad([10, 75, 140, 190, 250, 310])
    rad = np.array([480, 520, 450, 550, 500, 470]) * 1e3
    return np.c_[rad * np.cos(ang), rad * np.sin(ang)], np.array([120e3, -80e3]), 0.0


def _vhf() -> tuple[np.ndarray, np.ndarray, float]:
    lat = np.array([s[0] for s in SEED_NETWORK])
    lon = np.array([s[1] for s in SEED_NETWORK])
    frame = LocalFrame(float(lat.mean()), float(lon.mean()))
    e, n, u = frame.to_enu(lat, lon, np.zeros(lat.size))
    te, tn, tu = frame.to_enu(45.0, 8.2, 0.0)
    return np.c_[e, n, u], np.array([te, tn]), float(tu)


GEOMETRIES = {"hf": _hf, "vhf": _vhf}


def _noisy(rx: np.ndarray, tx: np.ndarray, th: float, rng: np.random.Generator) -> np.ndarray:
    eps = SIGMA_S * rng.standard_normal(rx.shape[0])
    return range_differences(rx, tx, tx_height_m=th) / C + (eps[1:] - eps[0])


def _binom_tol(p: float, n: int) -> float:
    return 3 * math.sqrt(p * (1 - p) / n)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_noiseless_exact_chan_and_lm(name: str) -> None:
    rx, tx, th = GEOMETRIES[name]()
    span = float(np.ptp(rx[:, 0]))
    for p in (tx, tx + np.array([0.3 * span, 0.2 * span]), np.array([-0.9 * span, 0.7 * span])):
        d = range_differences(rx, p, tx_height_m=th) / C
        (chan,) = chan_ho(rx, d, sigma_s=SIGMA_S, tx_height_m=th)
        assert np.linalg.norm(chan - p) < 1e-3
        e = estimate_tdoa(rx, d, sigma_s=SIGMA_S, tx_height_m=th)
        assert math.hypot(e.east_m - p[0], e.north_m - p[1]) < 1e-3
        assert e.converged and e.residual_rms_m < 1e-3 and not e.ambiguous
        assert e.n_receivers == rx.shape[0] and e.dof == rx.shape[0] - 3
        assert e.up_m == (th if rx.shape[1] == 3 else None)
        c = estimate_tdoa(rx, d, sigma_s=SIGMA_S, tx_height_m=th, refine=False)
        assert c.method == "chan" and math.hypot(c.east_m - p[0], c.north_m - p[1]) < 1e-3


def test_three_receivers_quadratic_roots() -> None:
    """m = 3: the true position is one of the admissible roots of the quadratic in R_0."""
    rng = np.random.default_rng(3)
    for _ in range(20):
        rx = rng.uniform(-300e3, 300e3, (3, 2))
        tx = rng.uniform(-200e3, 200e3, 2)
        d = range_differences(rx, tx) / C
        roots = chan_ho(rx, d, sigma_s=SIGMA_S)
        assert 1 <= len(roots) <= 2
        assert min(np.linalg.norm(r - tx) for r in roots) < 1e-3
        e = estimate_tdoa(rx, d, sigma_s=SIGMA_S)
        found = [(e.east_m, e.north_m), *e.alternatives]
        assert min(math.hypot(a - tx[0], b - tx[1]) for a, b in found) < 1e-3
        assert e.ambiguous == (len(found) > 1) and e.dof == 0


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_monte_carlo_gps_clocks_attain_crlb(name: str) -> None:
    """σ = 50 ns per receiver: RMSE/coverage as in the module docstring; Chan ≈ ML."""
    rx, tx, th = GEOMETRIES[name]()
    crlb = tdoa_crlb(rx, tx, sigma_s=SIGMA_S, tx_height_m=th)
    bound = math.sqrt(np.trace(crlb))
    rng = np.random.default_rng(42)
    err, q, gap = [], [], []
    for _ in range(300):
        d = _noisy(rx, tx, th, rng)
        e = estimate_tdoa(rx, d, sigma_s=SIGMA_S, tx_height_m=th)
        c = estimate_tdoa(rx, d, sigma_s=SIGMA_S, tx_height_m=th, refine=False)
        de = np.array([e.east_m, e.north_m]) - tx
        err.append(de)
        q.append(mahalanobis2(de, e.cov_en))
        gap.append(math.hypot(e.east_m - c.east_m, e.north_m - c.north_m))
    rmse = math.sqrt(np.mean(np.sum(np.array(err) ** 2, axis=1)))
    qa = np.array(q)
    print(
        f"\n{name}: sqrt(tr CRLB) {bound:.2f} m, RMSE {rmse:.2f} m ({rmse / bound:.3f}×), "
        f"1σ {np.mean(qa <= 1):.3f}, 2σ {np.mean(qa <= 4):.3f}, max |Chan − ML| {max(gap):.3f} m"
    )
    assert 0.8 * bound <= rmse <= 1.25 * bound
    for k in (1.0, 2.0):
        p = coverage_probability(k)
        assert abs(np.mean(qa <= k * k) - p) < _binom_tol(p, qa.size)
    assert max(gap) < 0.02 * bound


def test_three_receiver_coverage() -> None:
    """dof = 0: the fix is exact, its covariance J⁻¹PJ⁻ᵀ still covers at the χ²₂ rate."""
    rx = np.array([[-200e3, -100e3], [180e3, -150e3], [20e3, 250e3]])
    tx = np.array([30e3, 20e3])
    crlb = tdoa_crlb(rx, tx, sigma_s=SIGMA_S)
    rng = np.random.default_rng(11)
    q, err = [], []
    for _ in range(300):
        e = estimate_tdoa(rx, _noisy(rx, tx, 0.0, rng), sigma_s=SIGMA_S)
        assert e.residual_rms_m < 1e-3  # exactly determined
        de = np.array([e.east_m, e.north_m]) - tx
        err.append(de)
        q.append(mahalanobis2(de, e.cov_en))
    qa = np.array(q)
    rmse = math.sqrt(np.mean(np.sum(np.array(err) ** 2, axis=1)))
    assert rmse <= 1.25 * math.sqrt(np.trace(crlb))
    for k in (1.0, 2.0):
        p = coverage_probability(k)
        assert abs(np.mean(qa <= k * k) - p) < _binom_tol(p, qa.size)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_crlb_matches_finite_difference_fisher(name: str) -> None:
    rx, tx, th = GEOMETRIES[name]()
    m = rx.shape[0]
    h = 1e-2
    jac = np.empty((m - 1, 2))
    for j in range(2):
        dp = np.zeros(2)
        dp[j] = h
        jac[:, j] = (
            range_differences(rx, tx + dp, tx_height_m=th)
            - range_differences(rx, tx - dp, tx_height_m=th)
        ) / (2 * h)
    q = (C * SIGMA_S) ** 2 * (np.eye(m - 1) + np.ones((m - 1, m - 1)))
    ref = np.linalg.inv(jac.T @ np.linalg.solve(q, jac))
    assert np.allclose(tdoa_crlb(rx, tx, sigma_s=SIGMA_S, tx_height_m=th), ref, rtol=1e-6)
    assert np.allclose(tdoa_crlb(rx, tx, cov_s2=q / C**2, tx_height_m=th), ref, rtol=1e-6)
    # ignoring the shared-reference correlation overstates the information
    naive = np.linalg.inv(jac.T @ jac / (2 * (C * SIGMA_S) ** 2))
    assert not np.allclose(naive, ref, rtol=0.05)


def test_reference_covariance_and_pair_forms_agree() -> None:
    """Cov = c²σ²(I + 11ᵀ); all pairs (singular Q) and ref = 3 give the same fix."""
    rx, tx, _ = _hf()
    m = rx.shape[0]
    red = reduce_tdoa(rx, np.zeros(m - 1), sigma_s=SIGMA_S)
    assert np.allclose(red.cov_m2, (C * SIGMA_S) ** 2 * (np.eye(m - 1) + 1.0))
    rng = np.random.default_rng(8)
    clocks = range_differences(rx, tx, pairs=[(i, 0) for i in range(1, m)]) / C
    t = np.r_[0.0, clocks] + SIGMA_S * rng.standard_normal(m)  # arrival times up to a constant
    base = estimate_tdoa(rx, t[1:] - t[0], sigma_s=SIGMA_S)
    pairs = [(a, b) for a in range(m) for b in range(a + 1, m)]
    allp = estimate_tdoa(rx, [t[a] - t[b] for a, b in pairs], pairs=pairs, sigma_s=SIGMA_S)
    ref3 = estimate_tdoa(rx, np.delete(t - t[3], 3), sigma_s=SIGMA_S, ref=3)
    for other in (allp, ref3):
        assert math.hypot(other.east_m - base.east_m, other.north_m - base.north_m) < 1e-6
        assert np.allclose(other.cov_en, base.cov_en, rtol=1e-6)
    # independent per-pair sigmas: diagonal Q, still a valid fix
    e = estimate_tdoa(
        rx,
        [t[a] - t[b] for a, b in pairs],
        pairs=pairs,
        pair_sigma_s=np.full(len(pairs), 2 * SIGMA_S),
    )
    assert math.hypot(e.east_m - tx[0], e.north_m - tx[1]) < 200.0


def test_covariance_matches_crlb_and_chi2_scaling() -> None:
    rx, tx, th = _vhf()
    e = estimate_tdoa(
        rx, _noisy(rx, tx, th, np.random.default_rng(2)), sigma_s=SIGMA_S, tx_height_m=th
    )
    crlb = tdoa_crlb(rx, tx, sigma_s=SIGMA_S, tx_height_m=th)
    assert np.allclose(e.cov_en, crlb, rtol=1e-3)
    s = estimate_tdoa(
        rx,
        _noisy(rx, tx, th, np.random.default_rng(2)),
        sigma_s=SIGMA_S,
        tx_height_m=th,
        scale_by_chi2=True,
    )
    assert np.allclose(s.cov_en, e.cov_en * 2 * e.cost / e.dof, rtol=1e-9)


def test_errors() -> None:
    rx, tx, _ = _hf()
    d = range_differences(rx, tx) / C
    with pytest.raises(EstimationError, match="at least 3"):
        estimate_tdoa(rx[:2], d[:1], sigma_s=SIGMA_S)
    with pytest.raises(EstimationError, match="exactly one"):
        estimate_tdoa(rx, d)
    with pytest.raises(EstimationError, match="connect"):
        estimate_tdoa(rx, [1e-6, 2e-6, 1e-6], pairs=[(1, 0), (2, 0), (4, 3)], sigma_s=SIGMA_S)
    bad = d.copy()
    bad[1] = np.nan
    with pytest.raises(EstimationError, match="NaN"):
        estimate_tdoa(rx, bad, sigma_s=SIGMA_S)
    with pytest.raises(EstimationError, match="pairs but"):
        estimate_tdoa(rx, d[:3], sigma_s=SIGMA_S)
    line = np.c_[np.linspace(-1e5, 1e5, 4), np.zeros(4)]
    with pytest.raises(EstimationError, match="collinear"):
        estimate_tdoa(line, range_differences(line, [3e4, 0.0]) / C, sigma_s=SIGMA_S)


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
def test_delay_sensitivity_matches_the_estimator(name: str) -> None:
    """Δx of the ML fix under a 30 ns delay at each receiver = sensitivity row × 30 ns."""
    rx, tx, th = GEOMETRIES[name]()
    sens = tdoa_delay_sensitivity(rx, tx, sigma_s=SIGMA_S, tx_height_m=th)
    assert sens.shape == (rx.shape[0], 2)
    delay_s = 30e-9
    for i in range(rx.shape[0]):
        delays = np.zeros(rx.shape[0])
        delays[i] = delay_s
        # reference pairs (j, 0): t_j − t_0
        t = range_differences(rx, tx, tx_height_m=th) / C + (delays[1:] - delays[0])
        e = estimate_tdoa(rx, t, sigma_s=SIGMA_S, tx_height_m=th)
        moved = np.array([e.east_m, e.north_m]) - tx
        assert np.linalg.norm(moved) > 1.0  # the delay does move the fix (≥ 1 m)
        assert np.allclose(moved, sens[i] * delay_s, atol=0.01)
    # a delay common to every receiver cancels in the differences
    assert np.allclose(sens.sum(axis=0) * delay_s, 0.0, atol=1e-6)


def test_three_receivers_delay_leaves_no_residual() -> None:
    """dof = 0: a receiver delay moves the fix by the sensitivity and leaves no residual."""
    rx = np.array([[-200e3, -100e3], [180e3, -150e3], [20e3, 250e3]])
    tx = np.array([30e3, 20e3])
    sens = tdoa_delay_sensitivity(rx, tx, sigma_s=SIGMA_S)
    t = range_differences(rx, tx) / C + np.array([0.0, 1e-6])  # receiver 2 is 1 µs late
    e = estimate_tdoa(rx, t, sigma_s=SIGMA_S)
    assert e.residual_rms_m < 1e-3
    moved = np.array([e.east_m, e.north_m]) - tx
    # first order: 1 µs is 300 m of range, the fix moves ~hundreds of m
    assert np.linalg.norm(moved - sens[2] * 1e-6) < 0.02 * np.linalg.norm(moved)
