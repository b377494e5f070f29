r"""TDOA position fix from pair lags (:func:`fix_from_lags`), on the ellipsoid.

Projection
----------
The receivers are projected with an azimuthal-equidistant (AEQD, WGS84) projection, first
centred at their centroid, then re-centred twice on the current fix: in that projection the
distances from the centre — the transmitter — to every receiver are exact geodesics, so the
planar range model of :func:`~heimdall.ml.estimators.tdoa.estimate_tdoa` reproduces the
geodesic range differences at the solution (ground-wave paths follow the Earth's surface).
A single centroid-centred projection distorts 400–800 km ranges by ~0.1 % (a ~200 m bias);
a tangent plane would shorten 500 km by ~1.5 km.

Frame of the covariance
-----------------------
``cov_en_m2`` is expressed in the AEQD frame centred on the last-but-one iterate of the fix,
which after three centrings is within millimetres of the fix: at its centre the AEQD has unit
scale and its axes point east and north, so this is the local east/north (tangent-plane)
frame *at the fix*, in m². (``heimdall eval tdoa`` re-expresses it in the receivers'
centroid frame of its map.)

Lag covariance
--------------
Without ``toa_sigma`` the pairs are independent: ``diag(σ_ab² + σ_floor²)``, ``σ_ab`` each
pair's total sigma (statistical and systematic). With it (lags that are differences of
per-receiver arrival times), the statistical part is ``A diag(σ_i²) Aᵀ`` (``A`` the
pair/receiver incidence: pairs sharing a receiver are correlated) and each pair's systematic
part ``σ_sys² + σ_floor²`` is added on the diagonal. The estimator's covariance is that lag
covariance mapped through the inverse Jacobian, so the ellipse is as good as the lag sigmas.

Pairs that share receivers
--------------------------
A cross-correlation lag's noise is the sum of its two receivers' contributions (at high
SNR, ``δτ_ab ≈ ε_b − ε_a`` with ``ε_i`` set by receiver i's noise), so the N(N − 1)/2 pairs of
N receivers carry only N − 1 independent differences: treating them as independent overstates
the information by about N/2 (6 receivers: ×3, the ellipse ~1.7× too small). With
``shared_receivers=True`` (and no ``toa_sigma``) :func:`arrival_sigmas` decomposes the pairs'
statistical variances ``σ_ab² ≈ s_a² + s_b²`` into per-receiver variances by non-negative least
squares; the model covariance ``A diag(s²) Aᵀ`` is used, and the part of a pair's variance
the decomposition does not explain (``σ_ab² − s_a² − s_b²`` when positive) is kept on its
diagonal with its systematic term, so no pair is given a smaller variance than it reported.

Delay sensitivity
-----------------
``delay_sensitivity_km_per_us`` is how far 1 µs of unmodelled delay at each receiver moves the
fix (:func:`~heimdall.ml.estimators.tdoa.tdoa_delay_sensitivity`, at the fix): with three
receivers nothing in the data reveals such a delay, so this is the price of every µs not
calibrated.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heimdall.core.errors import EstimationError
from heimdall.core.geodesy import AzimuthalFrame
from heimdall.ml.estimators.tdoa import (
    SPEED_OF_LIGHT_M_S,
    TdoaEstimate,
    estimate_tdoa,
    tdoa_delay_sensitivity,
)
from heimdall.ml.tdoa.lags import PairLag

__all__ = ["TdoaFix", "arrival_sigmas", "fix_from_lags", "pair_covariance"]

_RECENTRE = 3


def pair_covariance(
    pairs: Sequence[PairLag], toa_sigma: Mapping[str, float] | None, floor_s: float
) -> npt.NDArray[np.float64]:
    """Covariance of the pair lags, s² (module docstring, *Lag covariance*)."""
    k = len(pairs)
    cov = np.zeros((k, k))
    for i, p in enumerate(pairs):
        if toa_sigma is None:
            cov[i, i] = p.sigma_s**2 + floor_s**2
            continue
        sys = p.sigma_sys_s or 0.0
        cov[i, i] += sys**2 + floor_s**2
        for q_j, q in enumerate(pairs):
            for name, sign_p in ((p.a, -1.0), (p.b, 1.0)):
                for other, sign_q in ((q.a, -1.0), (q.b, 1.0)):
                    if name == other:
                        cov[i, q_j] += sign_p * sign_q * toa_sigma[name] ** 2
    return cov


#: Smallest per-receiver arrival variance of :func:`arrival_sigmas`, × the median pair variance.
ARRIVAL_VAR_FLOOR = 0.05


def _stat_var(p: PairLag) -> float:
    """A pair's statistical variance: ``σ_stat²``, else ``σ² − σ_sys²`` (≥ 0), s²."""
    if p.sigma_stat_s is not None:
        return float(p.sigma_stat_s) ** 2
    return max(p.sigma_s**2 - (p.sigma_sys_s or 0.0) ** 2, 0.0)


def arrival_sigmas(pairs: Sequence[PairLag]) -> tuple[dict[str, float], list[PairLag]]:
    r"""Per-receiver arrival sigmas from the pairs' statistical variances (module docstring).

    Solves :math:`\min_{s^2 \ge 0} \lVert |A| s^2 - v \rVert_2` (``scipy.optimize.nnls``;
    ``|A|`` the pair/receiver incidence, ``v_ab = σ_{stat,ab}²``) in units of the median
    variance (each ``s²`` at least :data:`ARRIVAL_VAR_FLOOR` of it), then returns each pair
    with the unexplained part ``max(0, v_ab − s_a² − s_b²)`` moved into its systematic
    sigma, so that :func:`pair_covariance` with the returned sigmas
    is ``A diag(s²) Aᵀ + diag(residual + σ_sys² + σ_floor²)``.

    Returns
    -------
    toa_sigma : dict
        Receiver → arrival sigma, s.
    pairs : list of PairLag
        The pairs, ``sigma_sys_s`` widened by the unexplained statistical variance.
    """
    from scipy.optimize import nnls

    names = sorted({n for p in pairs for n in (p.a, p.b)})
    idx = {n: i for i, n in enumerate(names)}
    v = np.array([_stat_var(p) for p in pairs])
    scale = float(np.median(v[v > 0])) if np.any(v > 0) else 1.0
    a = np.zeros((len(pairs), len(names)))
    for k, p in enumerate(pairs):
        a[k, idx[p.a]] = a[k, idx[p.b]] = 1.0
    s2, _ = nnls(a, v / scale)
    # a receiver with no arrival variance at all would make the lag covariance singular
    s2 = np.maximum(s2, ARRIVAL_VAR_FLOOR) * scale
    resid = np.maximum(v - a @ s2, 0.0)
    out = [
        dataclasses.replace(p, sigma_sys_s=math.sqrt((p.sigma_sys_s or 0.0) ** 2 + r))
        for p, r in zip(pairs, resid, strict=True)
    ]
    return {n: math.sqrt(float(s2[idx[n]])) for n in names}, out


@dataclass(frozen=True)
class TdoaFix:
    """Result of :func:`fix_from_lags`.

    Attributes
    ----------
    lat_deg, lon_deg : float
        The fix (WGS84).
    cov_en_m2 : numpy.ndarray, (2, 2)
        Covariance of the fix in the local east/north frame at the fix, m² (module
        docstring, *Frame of the covariance*).
    ambiguous : bool
        Two admissible solutions (3-receiver hyperbola intersections); the one nearer the
        receivers was taken.
    alternatives_latlon : tuple of (float, float)
        The other admissible solution(s), (lat_deg, lon_deg).
    pairs : list of PairLag
        The pairs used.
    receivers : dict
        The receivers used, name → (lat_deg, lon_deg).
    residual_rms_m : float
        RMS range-difference residual of the fit, m.
    converged : bool
        The estimator converged.
    delay_sensitivity_km_per_us : dict
        Receiver → shift of the fix per µs of unmodelled delay there, km.
    estimate : TdoaEstimate
        The estimator's result in the frame of ``projection``.
    projection : str
        PROJ string of that frame (AEQD centred within millimetres of the fix).
    frame : AzimuthalFrame
        That frame.
    variance_factor : float
        The factor the lags' covariance was multiplied by before the fit
        (:class:`~.calibration.PooledVariance`); 1 when none.
    """

    lat_deg: float
    lon_deg: float
    cov_en_m2: npt.NDArray[np.float64]
    ambiguous: bool
    alternatives_latlon: tuple[tuple[float, float], ...]
    pairs: list[PairLag]
    receivers: dict[str, tuple[float, float]]
    residual_rms_m: float
    converged: bool
    delay_sensitivity_km_per_us: dict[str, float]
    estimate: TdoaEstimate
    projection: str
    frame: AzimuthalFrame
    variance_factor: float = 1.0

    @property
    def chi2(self) -> float:
        """The fit's ``χ²`` against the lags' sigmas as measured (before ``variance_factor``)."""
        return 2.0 * self.estimate.cost * self.variance_factor

    @property
    def dof(self) -> int:
        """Degrees of freedom of the fit beyond the position."""
        return self.estimate.dof


#: Level of the χ² test under which a fix's covariance is scaled by its reduced χ² (the stream
#: and ``heimdall eval tdoa``): only when the residuals reject the lags' sigmas.
CHI2_ALPHA = 0.05


def fix_from_lags(
    receivers: Mapping[str, tuple[float, float]],
    pairs: Sequence[PairLag],
    *,
    toa_sigma: Mapping[str, float] | None = None,
    sigma_floor_s: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
    scale_by_chi2: bool = False,
    shared_receivers: bool = False,
    chi2_alpha: float = 1.0,
    variance_factor: float = 1.0,
) -> TdoaFix:
    """Position of the emitter from pair lags ``t_b − t_a`` (module docstring).

    Parameters
    ----------
    receivers : mapping
        Receiver name → (lat_deg, lon_deg); those named by ``pairs`` are used.
    pairs : sequence of PairLag
        Lags with their total sigmas (:func:`~.lags.pair_lags`).
    toa_sigma : mapping, optional
        Per-receiver arrival-time sigma, s, when the lags are differences of arrival times
        (``PairLags.toa_sigma_s``): the pairs' covariance then has the shared terms.
    sigma_floor_s : float
        Timing budget added in quadrature to every pair's systematic sigma, s.
    speed_m_s : float
        Propagation speed.
    scale_by_chi2 : bool
        With more pairs than unknowns (four receivers or more), multiply the covariance by
        the fit's reduced χ² (:func:`~heimdall.ml.estimators.tdoa.estimate_tdoa`): the
        residual then carries delays common to a receiver that no pair's spectrum shows. Off
        by default: with few degrees of freedom the reduced χ² is itself very noisy.
    shared_receivers : bool
        Without ``toa_sigma``: the pairs' statistical errors are sums of per-receiver errors
        (cross-correlation lags), decomposed by :func:`arrival_sigmas` (module docstring,
        *Pairs that share receivers*). False: the pairs are independent.
    chi2_alpha : float
        With ``scale_by_chi2``: scale only when the χ² test rejects the sigmas at this level
        (:func:`~heimdall.ml.estimators.tdoa.estimate_tdoa`); 1 scales always. The test is
        made on the covariance after ``variance_factor``.
    variance_factor : float
        Multiplies the lags' covariance before the fit: the pooled a-posteriori variance
        factor of earlier fixes (:class:`~.calibration.PooledVariance`).

    Returns
    -------
    TdoaFix

    Raises
    ------
    EstimationError
        A pair names a receiver not in ``receivers`` (or not in ``toa_sigma``), fewer than
        three receivers, or the estimator fails.
    """
    for p in pairs:
        for name in (p.a, p.b):
            if name not in receivers:
                raise EstimationError(f"pair {p.a}–{p.b}: no position for receiver {name!r}")
            if toa_sigma is not None and name not in toa_sigma:
                raise EstimationError(f"pair {p.a}–{p.b}: no arrival sigma for {name!r}")
    if shared_receivers and toa_sigma is None and pairs:
        toa_sigma, pairs = arrival_sigmas(pairs)
    named = {n for p in pairs for n in (p.a, p.b)}
    used = {k: (float(v[0]), float(v[1])) for k, v in receivers.items() if k in named}
    if len(used) < 3:
        raise EstimationError(f"only {len(used)} receivers in the pairs: 2-D TDOA needs 3")
    names = list(used)
    lats = [used[n][0] for n in names]
    lons = [used[n][1] for n in names]
    idx = {n: i for i, n in enumerate(names)}
    pair_idx = [(idx[p.b], idx[p.a]) for p in pairs]
    if not (math.isfinite(variance_factor) and variance_factor > 0):
        raise EstimationError(f"variance_factor must be positive and finite, got {variance_factor}")
    cov_s2 = pair_covariance(pairs, toa_sigma, sigma_floor_s) * variance_factor
    lags_s = [p.lag_s for p in pairs]
    proj = AzimuthalFrame(float(np.mean(lats)), float(np.mean(lons)))
    lon_e, lat_e = float(np.mean(lons)), float(np.mean(lats))
    est: TdoaEstimate | None = None
    frame = proj
    rx_xy = np.zeros((len(names), 2))
    for _ in range(_RECENTRE):
        ex, ny = proj.to_en(lats, lons)
        rx_xy = np.c_[ex, ny]
        est = estimate_tdoa(
            rx_xy,
            lags_s,
            pairs=pair_idx,
            cov_s2=cov_s2,
            speed_m_s=speed_m_s,
            scale_by_chi2=scale_by_chi2,
            chi2_alpha=chi2_alpha,
        )
        frame = proj
        lat_e, lon_e = proj.from_en(est.east_m, est.north_m)
        # re-centre the projection on the fix: distances from the centre are exact geodesics
        proj = AzimuthalFrame(float(lat_e), float(lon_e))
    assert est is not None
    sens = tdoa_delay_sensitivity(
        rx_xy, (est.east_m, est.north_m), pairs=pair_idx, cov_s2=cov_s2, speed_m_s=speed_m_s
    )
    alts = tuple(
        (float(la), float(lo))
        for la, lo in (frame.from_en(float(e), float(n)) for e, n in est.alternatives)
    )
    return TdoaFix(
        lat_deg=float(lat_e),
        lon_deg=float(lon_e),
        cov_en_m2=np.asarray(est.cov_en, dtype=np.float64),
        ambiguous=bool(est.ambiguous),
        alternatives_latlon=alts,
        pairs=list(pairs),
        receivers=used,
        residual_rms_m=float(est.residual_rms_m),
        converged=bool(est.converged),
        delay_sensitivity_km_per_us={
            n: float(np.hypot(*sens[i])) * 1e-9 for i, n in enumerate(names)
        },
        estimate=est,
        projection=frame.proj,
        frame=frame,
        variance_factor=float(variance_factor),
    )
