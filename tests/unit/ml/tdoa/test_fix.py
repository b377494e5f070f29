r"""TDOA fix from pair lags (heimdall.ml.tdoa.fix.fix_from_lags).

Three receivers (the DCF77 example's positions) around a transmitter at 50 N 9 E; the lags
are the exact geodesic range differences / c. Checked:

- exact lags give the transmitter within 1 m (the AEQD re-centred on the fix makes the planar
  range model exact at the solution);
- the covariance is in the local east/north frame at the fix: perturbing pair i's lag by
  ``ε`` moves the fix by ``v_i`` (measured east/north from the geodesic azimuth and distance
  between the two fixes), and for the GLS fix ``cov = Σ_i σ_i² (v_i/ε)(v_i/ε)ᵀ`` (the
  linear map of the lags, ``(JᵀΣ⁻¹J)⁻¹JᵀΣ⁻¹``, times ``Σ``, times its transpose): within 1 %
  — a frame rotated by the meridian convergence between the receivers' centroid and the fix
  (~3° here) would miss that by more;
- shared arrival-time errors (``toa_sigma``) give a non-diagonal lag covariance;
- fewer than three receivers, or a pair naming an unknown receiver: EstimationError.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S as C
from heimdall.ml.tdoa.fix import arrival_sigmas, fix_from_lags, pair_covariance
from heimdall.ml.tdoa.lags import PairLag

TX = (50.0, 9.0)
RX = {"DF0KL": (53.665, 7.283), "F1JEK": (45.779, 0.615), "HB9RYZ": (47.172, 8.427)}
SIG = {("DF0KL", "F1JEK"): 3e-6, ("DF0KL", "HB9RYZ"): 2e-6, ("F1JEK", "HB9RYZ"): 1e-6}
_G = Geod(ellps="WGS84")


def _pairs(shift: dict[tuple[str, str], float] | None = None) -> list[PairLag]:
    out = []
    for (a, b), s in SIG.items():
        _, _, da = _G.inv(TX[1], TX[0], RX[a][1], RX[a][0])
        _, _, db = _G.inv(TX[1], TX[0], RX[b][1], RX[b][0])
        lag = (db - da) / C + (shift or {}).get((a, b), 0.0)
        out.append(PairLag(a, b, lag, s, 0.9, sigma_stat_s=s, sigma_sys_s=0.0))
    return out


def test_exact_lags_and_covariance_frame() -> None:
    fix = fix_from_lags(RX, _pairs())
    _, _, err = _G.inv(fix.lon_deg, fix.lat_deg, TX[1], TX[0])
    assert err < 1.0
    assert set(fix.receivers) == set(RX) and len(fix.pairs) == 3 and not fix.ambiguous
    assert fix.cov_en_m2.shape == (2, 2)
    eps = 1e-7
    cov = np.zeros((2, 2))
    for key, s in SIG.items():
        moved = fix_from_lags(RX, _pairs({key: eps}))
        az, _, d = _G.inv(fix.lon_deg, fix.lat_deg, moved.lon_deg, moved.lat_deg)
        v = np.array([d * math.sin(math.radians(az)), d * math.cos(math.radians(az))]) / eps
        cov += s**2 * np.outer(v, v)
    print(f"\ncov from fix {fix.cov_en_m2.ravel()}, from lag perturbations {cov.ravel()}")
    scale = float(np.max(np.abs(cov)))
    assert np.max(np.abs(fix.cov_en_m2 - cov)) < 0.01 * scale


def test_shared_arrival_errors() -> None:
    pairs = _pairs()
    toa = {"DF0KL": 1e-6, "F1JEK": 2e-6, "HB9RYZ": 3e-6}
    cov = pair_covariance(pairs, toa, 0.0)
    # (F1JEK − DF0KL) and (HB9RYZ − DF0KL) share DF0KL: covariance +σ_DF0KL²
    assert cov[0, 1] == pytest.approx(1e-12)
    assert cov[0, 0] == pytest.approx(1e-12 + 4e-12)
    fix = fix_from_lags(RX, pairs, toa_sigma=toa)
    assert fix.cov_en_m2[0, 0] > 0 and fix.cov_en_m2[1, 1] > 0


def test_errors() -> None:
    pairs = _pairs()
    with pytest.raises(EstimationError, match="needs 3"):
        fix_from_lags(RX, pairs[:1])
    with pytest.raises(EstimationError, match="no position"):
        fix_from_lags({k: v for k, v in RX.items() if k != "F1JEK"}, pairs)
    with pytest.raises(EstimationError, match="arrival sigma"):
        fix_from_lags(RX, pairs, toa_sigma={"DF0KL": 1e-6})


RX6 = {
    "R0": (52.5, 13.4),
    "R1": (44.5, 11.3),
    "R2": (51.5, -0.1),
    "R3": (40.4, -3.7),
    "R4": (52.2, 6.9),
    "R5": (48.2, 16.4),
}
TX6 = (45.7, 4.9)
S6 = {"R0": 0.8e-6, "R1": 0.4e-6, "R2": 0.6e-6, "R3": 1.0e-6, "R4": 0.5e-6, "R5": 0.7e-6}


def _pairs6(eps: dict[str, float]) -> list[PairLag]:
    """All 15 pairs of RX6, each lag t_b − t_a with the receivers' arrival errors."""
    names = list(RX6)
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            _, _, da = _G.inv(TX6[1], TX6[0], RX6[a][1], RX6[a][0])
            _, _, db = _G.inv(TX6[1], TX6[0], RX6[b][1], RX6[b][0])
            s = math.hypot(S6[a], S6[b])
            lag = (db - da) / C + eps[b] - eps[a]
            out.append(PairLag(a, b, lag, s, 0.9, sigma_stat_s=s, sigma_sys_s=0.0))
    return out


def test_arrival_sigmas_recover_the_receivers() -> None:
    """σ_ab² = s_a² + s_b² exactly: NNLS gives back every s_i and leaves no residual."""
    toa, pairs = arrival_sigmas(_pairs6(dict.fromkeys(RX6, 0.0)))
    for n, s in S6.items():
        assert toa[n] == pytest.approx(s, rel=1e-6)
    assert all((p.sigma_sys_s or 0.0) < 1e-3 * p.sigma_s for p in pairs)


def test_shared_receivers_make_the_ellipse_honest() -> None:
    """Lags whose errors are per-receiver arrival errors (as cross-correlation lags at high
    SNR): with ``shared_receivers`` the fix error's Mahalanobis distance is χ²₂ (mean 2,
    39.3 % within 1σ, 86.5 % within 2σ); taking the 15 pairs as independent overstates the
    information ~N/2 = 3× (mean ≈ 6). Seeded Monte Carlo, 300 fixes."""
    rng = np.random.default_rng(11)
    d2 = {True: [], False: []}
    for _ in range(300):
        pairs = _pairs6({n: float(rng.normal(0.0, s)) for n, s in S6.items()})
        for shared in (True, False):
            fix = fix_from_lags(RX6, pairs, shared_receivers=shared)
            az, _, d = _G.inv(TX6[1], TX6[0], fix.lon_deg, fix.lat_deg)
            e = np.array([d * math.sin(math.radians(az)), d * math.cos(math.radians(az))])
            d2[shared].append(float(e @ np.linalg.solve(fix.cov_en_m2, e)))
    honest, indep = np.array(d2[True]), np.array(d2[False])
    print(f"\nmean d² shared {honest.mean():.2f}, independent {indep.mean():.2f}")
    # 300 draws: the mean of χ²₂ has sd 2/√300 = 0.115; the coverages sd ≤ 2.9 points
    assert abs(honest.mean() - 2.0) < 4 * 0.115
    assert abs(np.mean(honest <= 1.0) - 0.393) < 0.09
    assert abs(np.mean(honest <= 4.0) - 0.865) < 0.06
    assert indep.mean() > 4.0
