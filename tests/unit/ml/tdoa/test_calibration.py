r"""The pooled a-posteriori variance factor of TDOA fixes (heimdall.ml.tdoa.calibration).

Theory (module docstring of :mod:`heimdall.ml.tdoa.calibration`): a fix with ``ν`` degrees of
freedom whose true lag covariance is ``s Σ`` has a ``χ²`` against ``Σ`` distributed as
``s χ²_ν``, so the pooled ``Σχ² / Σν`` estimates ``s`` with relative standard error
``sqrt(2 / Σν)``. Checked with seeded draws: the estimator alone (``χ²`` drawn from
``s χ²_ν``), its prior and its forgetting; then whole fixes of six receivers whose pairs
report sigmas 1.25× the truth — the calibrated ellipses cover the truth as χ²₂ says
(39.3 % / 86.5 %), the uncalibrated ones over-cover.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from heimdall.core.errors import EstimationError
from heimdall.ml.tdoa.calibration import PooledVariance
from heimdall.ml.tdoa.fix import fix_from_lags
from tests.unit.ml.tdoa.test_fix import RX6, S6, TX6, _pairs6

_G = Geod(ellps="WGS84")


@pytest.mark.parametrize("s", [0.5, 1.0, 3.0])
def test_estimates_the_factor_of_chi2_draws(s: float) -> None:
    """χ² ~ s·χ²₃ for 400 fixes (1,200 dof, forgetting off): ŝ within 4 standard errors."""
    rng = np.random.default_rng(5)
    pv = PooledVariance(prior_dof=12, memory_dof=math.inf)
    for _ in range(400):
        pv.update(float(s * rng.chisquare(3)), 3)
    se = s * math.sqrt(2.0 / (12 + 1200))
    assert abs(pv.factor - s) < 4 * se + 12 / 1212 * abs(1 - s)  # + the prior's pull


def test_prior_redundancy_and_bad_input() -> None:
    pv = PooledVariance(prior_dof=6)
    assert pv.factor == 1.0
    pv.update(5.0, 0)  # three receivers: nothing to learn
    pv.update(float("nan"), 3)
    pv.update(-1.0, 3)
    assert pv.factor == 1.0 and pv.dof == 0.0
    pv.update(1.5, 3)
    assert pv.factor == pytest.approx((6 + 1.5) / (6 + 3))
    pv.reset()
    assert pv.factor == 1.0
    with pytest.raises(ValueError, match="prior_dof"):
        PooledVariance(prior_dof=0)
    with pytest.raises(ValueError, match="min_factor"):
        PooledVariance(min_factor=2.0)


def test_forgetting_follows_a_change() -> None:
    """Weighted dof settle at ``memory_dof``; after s changes 1 → 4 the factor follows within
    a few memories (4 memories: the old data weigh e⁻⁴ ≈ 2 %)."""
    rng = np.random.default_rng(9)
    pv = PooledVariance(prior_dof=12, memory_dof=150)
    for _ in range(300):
        pv.update(float(rng.chisquare(3)), 3)
    assert pv.dof == pytest.approx(150, rel=0.05)
    assert abs(pv.factor - 1.0) < 4 * math.sqrt(2 / 162)
    for _ in range(200):  # 600 dof = 4 memories
        pv.update(float(4 * rng.chisquare(3)), 3)
    assert abs(pv.factor - 4.0) < 4 * 4 * math.sqrt(2 / 162) + 4 * 0.02 * 3


def test_fix_scales_its_covariance_not_its_position() -> None:
    pairs = _pairs6(dict.fromkeys(RX6, 0.0))
    a = fix_from_lags(RX6, pairs, shared_receivers=True)
    b = fix_from_lags(RX6, pairs, shared_receivers=True, variance_factor=0.64)
    assert (b.lat_deg, b.lon_deg) == pytest.approx((a.lat_deg, a.lon_deg), abs=1e-9)
    np.testing.assert_allclose(b.cov_en_m2, 0.64 * a.cov_en_m2, rtol=1e-6)
    assert b.chi2 == pytest.approx(a.chi2, rel=1e-6, abs=1e-12)
    with pytest.raises(EstimationError, match="variance_factor"):
        fix_from_lags(RX6, pairs, variance_factor=0.0)


def test_calibrated_fixes_cover_as_chi2() -> None:
    """Pairs report ``S6`` but the arrival errors are 0.8·S6 (variance 0.64×): 300 fixes of 6
    receivers (3 dof each) in sequence through one PooledVariance. After 40 fixes of warm-up
    the factor is within 4 SE of 0.64 and the next 260 fixes' d² (error in the fix's own
    covariance) is χ²₂: 1σ/2σ coverage within 3 sd of 39.3 %/86.5 % (sd 3.0/2.1 points);
    the same fixes without the factor over-cover (mean d² ≈ 2 × 0.64)."""
    rng = np.random.default_rng(17)
    pv = PooledVariance()
    d2 = {True: [], False: []}
    for k in range(300):
        pairs = _pairs6({n: float(rng.normal(0.0, 0.8 * s)) for n, s in S6.items()})
        raw = fix_from_lags(RX6, pairs, shared_receivers=True)
        cal = fix_from_lags(RX6, pairs, shared_receivers=True, variance_factor=pv.factor)
        pv.update(cal.chi2, cal.dof)
        if k < 40:
            continue
        for calibrated, fix in ((True, cal), (False, raw)):
            az, _, d = _G.inv(TX6[1], TX6[0], fix.lon_deg, fix.lat_deg)
            e = np.array([d * math.sin(math.radians(az)), d * math.cos(math.radians(az))])
            d2[calibrated].append(float(e @ np.linalg.solve(fix.cov_en_m2, e)))
    cal_d2, raw_d2 = np.array(d2[True]), np.array(d2[False])
    print(f"\nfactor {pv.factor:.3f}; mean d² {cal_d2.mean():.2f}, raw {raw_d2.mean():.2f}")
    assert abs(pv.factor - 0.64) < 4 * 0.64 * math.sqrt(2 / min(pv.dof, 900))
    n = cal_d2.size
    for p, q in ((0.393, 1.0), (0.865, 4.0)):
        assert abs(np.mean(cal_d2 <= q) - p) < 3 * math.sqrt(p * (1 - p) / n)
    assert raw_d2.mean() < 0.64 * 2 + 4 * 2 / math.sqrt(n) * 0.64
    assert np.mean(raw_d2 <= 1.0) > 0.393 + 3 * math.sqrt(0.393 * 0.607 / n)
