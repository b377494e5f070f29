r"""Monte-Carlo efficiency check of the RSS and TDOA estimators against the Cramér–Rao bound.

The simulator's labelled path produces, for K fixed transmitter positions and T independent
trials, the measurements each receiver reports; this module (which sees only arrays: it does
not import the simulator) runs the estimator on every trial and compares its error with the
Cramér–Rao lower bound (CRLB) at each position.

Statistic
---------
For position k with truth :math:`x_k` (east, north), estimates :math:`\hat x_{k,t}` and bound
:math:`C_k = \mathrm{CRLB}(x_k)` (2 × 2, m²):

.. math:: \mathrm{RMSE}_k = \Big(\frac1T\sum_t \lVert\hat x_{k,t} - x_k\rVert^2\Big)^{1/2},
          \qquad \rho_k = \mathrm{RMSE}_k / \sqrt{\operatorname{tr} C_k}.

An unbiased estimator has :math:`E\lVert\hat x - x\rVert^2 \ge \operatorname{tr} C`, and the
maximum-likelihood estimator attains it asymptotically (high SNR / small noise), so
:math:`\rho_k \to 1`; the issue's target is :math:`\rho \le 1.25`. The pooled ratio weights
every position equally,

.. math:: \bar\rho = \Big(\frac1K\sum_k \rho_k^2\Big)^{1/2}.

Monte-Carlo error: for Gaussian errors :math:`\lVert e\rVert^2` has mean
:math:`\operatorname{tr}C` and variance :math:`2\operatorname{tr}(C^2)`, so the relative
standard error of :math:`\mathrm{RMSE}^2` is
:math:`\sqrt{2\operatorname{tr}(C^2)}/(\operatorname{tr}C\,\sqrt T)`,
between :math:`1/\sqrt T` (isotropic) and :math:`\sqrt{2/T}` (one dominant axis); by the delta
method the relative standard error of RMSE is half of it, at most :math:`1/\sqrt{2T}` — the
conservative value reported as ``ratio_se`` (and :math:`1/\sqrt{2TK}` for :math:`\bar\rho`).

Coverage
--------
With the estimator's covariance :math:`\hat\Sigma` the squared Mahalanobis distance
:math:`q = e^T\hat\Sigma^{-1}e` is :math:`\chi^2_2` for a Gaussian, efficient estimator, so the
k-sigma ellipse covers the truth with probability :math:`1 - e^{-k^2/2}` (39.35 % for k = 1,
86.47 % for k = 2). Reported for the estimator's own ellipse and for the CRLB ellipse
(:math:`\hat\Sigma = C_k`) centred on the estimate.

What the bound assumes
----------------------
- RSS (:func:`~heimdall.ml.estimators.rss.rss_crlb`): log-distance mean
  :math:`P_0 - 10 n \log_{10} d_i` with :math:`P_0, n` unknown, and i.i.d.
  :math:`\mathcal N(0,\sigma^2)` dB errors across receivers. A static link's shadowing is one
  fixed value of a spatial field: across trials it is a random draw only if every trial has a
  fresh field (a different simulator seed); at a fixed position and seed it is a bias.
- TDOA (:func:`~heimdall.ml.estimators.tdoa.tdoa_crlb`): arrival times with independent
  :math:`\mathcal N(0, \sigma_i^2)` timing errors per receiver, differenced against a
  reference receiver (pair covariance
  :math:`c^2(\mathrm{diag}\,\sigma_{i}^2 + \sigma_{ref}^2 11^T)`).

Both bounds are local: below the threshold SNR (noise comparable to the geometry's scale) the
ML estimator's error leaves the quadratic regime and :math:`\rho` grows above 1 (Van Trees).

References
----------
- S. M. Kay, *Fundamentals of Statistical Signal Processing: Estimation Theory*, Prentice
  Hall, 1993, §3.7–3.9 (vector CRLB, nuisance parameters), §7.5 (asymptotic efficiency of
  the MLE).
- N. Patwari, A. O. Hero III, M. Perkins, N. S. Correal, R. J. O'Dea, "Relative location
  estimation in wireless sensor networks", IEEE Trans. Signal Process. 51(8), 2137–2148, 2003.
- Y. T. Chan, K. C. Ho, "A simple and efficient estimator for hyperbolic location", IEEE
  Trans. Signal Process. 42(8), 1905–1915, 1994 (TDOA CRLB).
- H. L. Van Trees, *Detection, Estimation, and Modulation Theory, Part I*, Wiley, 1968,
  §2.4 (threshold behaviour of the ML estimator).
- M. Gudmundson, "Correlation model for shadow fading in mobile radio systems", Electronics
  Letters 27(23), 2145–2146, 1991.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from scipy.spatial import Delaunay

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators.ellipse import coverage_probability
from heimdall.ml.estimators.rss import estimate_rss, rss_crlb
from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S, estimate_tdoa, tdoa_crlb
from heimdall.ml.evaluation.metrics import mahalanobis2_batch

__all__ = [
    "OUTLIER_Q",
    "TARGET_RATIO",
    "CrlbReport",
    "PositionResult",
    "check_rss",
    "check_tdoa",
    "describe_geometry",
]

FloatArray = npt.NDArray[np.float64]
Method = Literal["rss", "tdoa"]

#: The issue's efficiency target: RMSE within 1.25 × sqrt(trace CRLB).
TARGET_RATIO = 1.25
#: χ²₂ 99.9 % quantile, −2 ln 0.001: beyond it an error counts as a threshold outlier.
OUTLIER_Q = -2.0 * math.log(1e-3)


@dataclass(frozen=True, slots=True)
class PositionResult:
    """Monte-Carlo statistics at one transmitter position.

    Attributes
    ----------
    east_m, north_m, up_m : float
        True position in the scenario's ENU frame, m.
    nearest_receiver_m : float
        Horizontal distance to the nearest receiver, m.
    inside_hull : bool
        Inside the convex hull of the receivers (horizontal).
    n_trials : int
        Trials with an estimate.
    n_failed : int
        Trials where the estimator raised :class:`EstimationError` (not in the statistics).
    rmse_m : float
        Root-mean-square position error, m.
    crlb_m : float
        ``sqrt(trace CRLB)``, m.
    ratio : float
        ``rmse_m / crlb_m``.
    ratio_se : float
        Conservative Monte-Carlo standard error of ``ratio``: ``ratio / sqrt(2 n_trials)``.
    bias_east_m, bias_north_m : float
        Mean error, m.
    max_error_m : float
        Largest error, m (a threshold outlier shows here first).
    coverage_1sigma, coverage_2sigma : float
        Fraction of trials whose truth lies in the estimator's own 1σ / 2σ ellipse.
    crlb_coverage_1sigma, crlb_coverage_2sigma : float
        The same with the CRLB as the covariance.
    outlier_fraction : float
        Fraction of trials outside the CRLB's 99.9 % ellipse (:data:`OUTLIER_Q`): 0.001
        for an efficient Gaussian estimator; threshold outliers show here.
    """

    east_m: float
    north_m: float
    up_m: float
    nearest_receiver_m: float
    inside_hull: bool
    n_trials: int
    n_failed: int
    rmse_m: float
    crlb_m: float
    ratio: float
    ratio_se: float
    bias_east_m: float
    bias_north_m: float
    max_error_m: float
    coverage_1sigma: float
    coverage_2sigma: float
    crlb_coverage_1sigma: float
    crlb_coverage_2sigma: float
    outlier_fraction: float


@dataclass(frozen=True, slots=True)
class CrlbReport:
    """Result of :func:`check_rss` / :func:`check_tdoa`.

    Attributes
    ----------
    method : {"rss", "tdoa"}
    scenario : str
        Label of the scenario.
    geometry : str
        Human-readable description of the geometry and the noise model.
    details : dict
        Machine-readable geometry and model parameters (:func:`describe_geometry` plus the
        caller's entries).
    positions : tuple of PositionResult
    ratio : float
        Pooled ratio ``sqrt(mean_k ratio_k²)``.
    ratio_se : float
        Its conservative Monte-Carlo standard error ``ratio / sqrt(2 Σ_k n_k)``.
    worst_ratio : float
        Largest per-position ratio.
    rmse_m, crlb_m : float
        ``sqrt(mean_k RMSE_k²)`` and ``sqrt(mean_k tr C_k)``, m.
    coverage_1sigma, coverage_2sigma : float
        Estimator-ellipse coverage pooled over all trials.
    crlb_coverage_1sigma, crlb_coverage_2sigma : float
        CRLB-ellipse coverage pooled over all trials.
    outlier_fraction : float
        Pooled fraction of trials outside the CRLB's 99.9 % ellipse.
    expected_coverage_1sigma, expected_coverage_2sigma : float
        The χ²₂ values ``1 − e^{−k²/2}``.
    target : float
        :data:`TARGET_RATIO`.
    passed : bool
        ``ratio <= target``.
    """

    method: Method
    scenario: str
    geometry: str
    details: dict[str, Any]
    positions: tuple[PositionResult, ...]
    ratio: float
    ratio_se: float
    worst_ratio: float
    rmse_m: float
    crlb_m: float
    coverage_1sigma: float
    coverage_2sigma: float
    crlb_coverage_1sigma: float
    crlb_coverage_2sigma: float
    outlier_fraction: float
    expected_coverage_1sigma: float = field(default_factory=lambda: coverage_probability(1.0))
    expected_coverage_2sigma: float = field(default_factory=lambda: coverage_probability(2.0))
    target: float = TARGET_RATIO
    passed: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (positions as a list of dicts)."""
        d = asdict(self)
        d["positions"] = [asdict(p) for p in self.positions]
        return d

    def summary(self) -> str:
        """A few lines for a terminal: geometry, per-position table, pooled result."""
        lines = [f"{self.method.upper()} on {self.scenario}", self.geometry, ""]
        lines.append(
            f"{'east m':>9} {'north m':>9} {'near m':>8} {'n':>5} {'RMSE m':>10} "
            f"{'√trCRLB m':>10} {'ratio':>14} {'cov1σ':>6} {'cov2σ':>6} {'outl':>6}"
        )
        for p in self.positions:
            lines.append(
                f"{p.east_m:9.1f} {p.north_m:9.1f} {p.nearest_receiver_m:8.0f} {p.n_trials:5d} "
                f"{p.rmse_m:10.3f} {p.crlb_m:10.3f} {p.ratio:6.3f} ± {p.ratio_se:.3f} "
                f"{p.coverage_1sigma:6.3f} {p.coverage_2sigma:6.3f} {p.outlier_fraction:6.3f}"
            )
        lines.append("")
        lines.append(
            f"pooled RMSE/√trCRLB = {self.ratio:.3f} ± {self.ratio_se:.3f} "
            f"(worst position {self.worst_ratio:.3f}; target ≤ {self.target}: "
            f"{'PASS' if self.passed else 'FAIL'})"
        )
        lines.append(
            f"coverage 1σ/2σ: estimator {self.coverage_1sigma:.3f}/{self.coverage_2sigma:.3f}, "
            f"CRLB {self.crlb_coverage_1sigma:.3f}/{self.crlb_coverage_2sigma:.3f} "
            f"(χ²₂: {self.expected_coverage_1sigma:.3f}/{self.expected_coverage_2sigma:.3f}); "
            f"outside the CRLB 99.9 % ellipse {self.outlier_fraction:.3f} (Gaussian: 0.001)"
        )
        return "\n".join(lines)


def describe_geometry(rx_enu: npt.ArrayLike, tx_enu: npt.ArrayLike) -> dict[str, Any]:
    """Geometry statistics of receivers and transmitter positions (horizontal, m).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 2) or (m, 3)
        Receiver positions in a local ENU frame, m.
    tx_enu : array_like, shape (K, 2) or (K, 3)
        Transmitter positions, m.

    Returns
    -------
    dict
        ``n_receivers``, ``extent_east_m``/``extent_north_m`` (bounding box), the minimum and
        median nearest-neighbour receiver spacing, and per transmitter the distance to the
        nearest receiver and whether it lies inside the receivers' convex hull.
    """
    rx = np.asarray(rx_enu, dtype=float)[:, :2]
    tx = np.asarray(tx_enu, dtype=float).reshape(-1, np.asarray(tx_enu).shape[-1])[:, :2]
    dd = np.linalg.norm(rx[:, None, :] - rx[None, :, :], axis=-1)
    np.fill_diagonal(dd, np.inf)
    nn = dd.min(axis=1)
    try:
        hull: Delaunay | None = Delaunay(rx)
    except Exception:  # collinear or too few receivers: no hull
        hull = None
    inside = (
        [bool(v >= 0) for v in hull.find_simplex(tx)] if hull is not None else [False] * len(tx)
    )
    near = np.linalg.norm(tx[:, None, :] - rx[None, :, :], axis=-1).min(axis=1)
    return {
        "n_receivers": int(rx.shape[0]),
        "extent_east_m": float(np.ptp(rx[:, 0])),
        "extent_north_m": float(np.ptp(rx[:, 1])),
        "min_receiver_spacing_m": float(nn.min()),
        "median_receiver_spacing_m": float(np.median(nn)),
        "tx_nearest_receiver_m": [float(v) for v in near],
        "tx_inside_hull": inside,
    }


def _chi2_coverage(q: FloatArray, k: float) -> float:
    return float(np.mean(q <= k * k)) if q.size else math.nan


def _position_stats(
    tx: FloatArray,
    estimates: list[tuple[FloatArray, FloatArray]],
    n_failed: int,
    crlb: FloatArray,
    near_m: float,
    inside: bool,
) -> tuple[PositionResult, FloatArray, FloatArray]:
    """Statistics at one position; also the Mahalanobis q of the estimator and of the CRLB."""
    if not estimates:
        raise EstimationError(f"every trial failed at ({tx[0]:.0f}, {tx[1]:.0f}) m")
    xy = np.array([e[0] for e in estimates])
    covs = np.array([e[1] for e in estimates])
    err = xy - tx[:2]
    n = err.shape[0]
    mse = float(np.mean(np.sum(err * err, axis=1)))
    crlb_m = math.sqrt(float(np.trace(crlb)))
    ratio = math.sqrt(mse) / crlb_m
    q_est = mahalanobis2_batch(err, covs)
    q_crlb = mahalanobis2_batch(err, crlb)
    res = PositionResult(
        east_m=float(tx[0]),
        north_m=float(tx[1]),
        up_m=float(tx[2]),
        nearest_receiver_m=near_m,
        inside_hull=inside,
        n_trials=n,
        n_failed=n_failed,
        rmse_m=math.sqrt(mse),
        crlb_m=crlb_m,
        ratio=ratio,
        ratio_se=ratio / math.sqrt(2.0 * n),
        bias_east_m=float(err[:, 0].mean()),
        bias_north_m=float(err[:, 1].mean()),
        max_error_m=float(np.sqrt(np.max(np.sum(err * err, axis=1)))),
        coverage_1sigma=_chi2_coverage(q_est, 1.0),
        coverage_2sigma=_chi2_coverage(q_est, 2.0),
        crlb_coverage_1sigma=_chi2_coverage(q_crlb, 1.0),
        crlb_coverage_2sigma=_chi2_coverage(q_crlb, 2.0),
        outlier_fraction=float(np.mean(q_crlb > OUTLIER_Q)),
    )
    return res, q_est, q_crlb


def _geometry_text(geo: Mapping[str, Any], tx: FloatArray, model: str) -> str:
    near = geo["tx_nearest_receiver_m"]
    inside = sum(geo["tx_inside_hull"])
    return (
        f"{geo['n_receivers']} receivers over {geo['extent_east_m'] / 1e3:.2f} × "
        f"{geo['extent_north_m'] / 1e3:.2f} km (E × N), nearest-neighbour spacing "
        f"{geo['min_receiver_spacing_m']:.0f} m min / {geo['median_receiver_spacing_m']:.0f} m "
        f"median; {len(tx)} transmitter position(s), {inside} inside the receivers' hull, "
        f"{min(near):.0f}–{max(near):.0f} m from the nearest receiver. {model}"
    )


def _run(
    method: Method,
    rx: FloatArray,
    tx: FloatArray,
    n_trials: int,
    fit: Callable[[int, int], tuple[FloatArray, FloatArray]],
    bound: Callable[[int], FloatArray],
    scenario: str,
    model: str,
    details: Mapping[str, Any] | None,
) -> CrlbReport:
    geo = describe_geometry(rx, tx)
    results: list[PositionResult] = []
    q_est: list[FloatArray] = []
    q_crlb: list[FloatArray] = []
    for k in range(tx.shape[0]):
        ests: list[tuple[FloatArray, FloatArray]] = []
        failed = 0
        for t in range(n_trials):
            try:
                ests.append(fit(t, k))
            except EstimationError:
                failed += 1
        res, qe, qc = _position_stats(
            tx[k], ests, failed, bound(k), geo["tx_nearest_receiver_m"][k], geo["tx_inside_hull"][k]
        )
        results.append(res)
        q_est.append(qe)
        q_crlb.append(qc)
    ratios = np.array([r.ratio for r in results])
    pooled = float(np.sqrt(np.mean(ratios**2)))
    n_total = sum(r.n_trials for r in results)
    qe_all, qc_all = np.concatenate(q_est), np.concatenate(q_crlb)
    return CrlbReport(
        method=method,
        scenario=scenario,
        geometry=_geometry_text(geo, tx, model),
        details={**geo, **dict(details or {})},
        positions=tuple(results),
        ratio=pooled,
        ratio_se=pooled / math.sqrt(2.0 * n_total),
        worst_ratio=float(ratios.max()),
        rmse_m=float(np.sqrt(np.mean([r.rmse_m**2 for r in results]))),
        crlb_m=float(np.sqrt(np.mean([r.crlb_m**2 for r in results]))),
        coverage_1sigma=_chi2_coverage(qe_all, 1.0),
        coverage_2sigma=_chi2_coverage(qe_all, 2.0),
        crlb_coverage_1sigma=_chi2_coverage(qc_all, 1.0),
        crlb_coverage_2sigma=_chi2_coverage(qc_all, 2.0),
        outlier_fraction=float(np.mean(qc_all > OUTLIER_Q)),
        passed=pooled <= TARGET_RATIO,
    )


def _shapes(
    rx_enu: npt.ArrayLike, tx_enu: npt.ArrayLike, meas: npt.ArrayLike, what: str
) -> tuple[FloatArray, FloatArray, FloatArray]:
    rx = np.asarray(rx_enu, dtype=float)
    tx = np.asarray(tx_enu, dtype=float)
    y = np.asarray(meas, dtype=float)
    if rx.ndim != 2 or rx.shape[1] != 3:
        raise EstimationError(f"receiver positions must be (m, 3) ENU, got {rx.shape}")
    if tx.ndim != 2 or tx.shape[1] != 3:
        raise EstimationError(f"transmitter positions must be (K, 3) ENU, got {tx.shape}")
    if y.ndim != 3 or y.shape[1:] != (tx.shape[0], rx.shape[0]):
        raise EstimationError(
            f"{what} must be (trials, {tx.shape[0]}, {rx.shape[0]}), got {y.shape}"
        )
    return rx, tx, y


def check_rss(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    power_dbm: npt.ArrayLike,
    *,
    exponent: float,
    sigma_db: float,
    scenario: str = "",
    model: str = "",
    details: Mapping[str, Any] | None = None,
) -> CrlbReport:
    """RSS estimator vs :func:`~heimdall.ml.estimators.rss.rss_crlb` (module docstring).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 3)
        Receiver antenna positions in a local ENU frame, m (the up column is used in the
        slant distance).
    tx_enu : array_like, shape (K, 3)
        True transmitter antenna positions, m; the up coordinate is given to the estimator
        as the (known) transmitter height.
    power_dbm : array_like, shape (T, K, m)
        Received powers of T independent trials (independent shadowing fields) at each of
        the K positions, dBm.
    exponent : float
        True path-loss exponent n (enters the bound only).
    sigma_db : float
        Shadowing standard deviation σ, dB: the bound's noise, and the estimator's σ
        (taken as known, ``estimate_sigma=False``, so its ellipse is the Fisher one at the
        estimate and the χ²₂ coverage applies).
    scenario, model : str
        Labels for the report (scenario name; noise / propagation model sentence).
    details : mapping, optional
        Extra entries for :attr:`CrlbReport.details`.

    Returns
    -------
    CrlbReport
    """
    rx, tx, p = _shapes(rx_enu, tx_enu, power_dbm, "power_dbm")

    def fit(t: int, k: int) -> tuple[FloatArray, FloatArray]:
        est = estimate_rss(
            rx, p[t, k], sigma_db=sigma_db, estimate_sigma=False, tx_height_m=float(tx[k, 2])
        )
        return np.array([est.east_m, est.north_m]), est.cov_en

    def bound(k: int) -> FloatArray:
        return rss_crlb(rx, tx[k, :2], exponent, sigma_db, tx_height_m=float(tx[k, 2]))

    return _run("rss", rx, tx, p.shape[0], fit, bound, scenario, model, details)


def check_tdoa(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    toa_s: npt.ArrayLike,
    *,
    sigma_s: npt.ArrayLike,
    ref: int = 0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
    scenario: str = "",
    model: str = "",
    details: Mapping[str, Any] | None = None,
) -> CrlbReport:
    """TDOA estimator vs :func:`~heimdall.ml.estimators.tdoa.tdoa_crlb` (module docstring).

    Arrival times are differenced against receiver ``ref``,
    :math:`\\tau_i = t_i - t_{ref}` (i ≠ ref), and fitted with per-receiver timing sigmas
    (the estimator's reference-pair covariance, exact for independent clock errors).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 3)
        Receiver antenna positions in a local ENU frame, m (exact slant ranges: the frame is
        Cartesian, so distances are Euclidean even over a continent).
    tx_enu : array_like, shape (K, 3)
        True transmitter positions, m; the up coordinate is given as the known height.
    toa_s : array_like, shape (T, K, m)
        Arrival times as each receiver's clock reports them (any common offset cancels), s.
    sigma_s : array_like, shape (m,)
        Timing standard deviation of each receiver's clock, s.
    ref : int
        Reference receiver.
    speed_m_s : float
        Propagation speed, m/s.
    scenario, model, details
        As :func:`check_rss`.

    Returns
    -------
    CrlbReport
    """
    rx, tx, toa = _shapes(rx_enu, tx_enu, toa_s, "toa_s")
    sig = np.asarray(sigma_s, dtype=float).reshape(-1)
    others = np.array([i for i in range(rx.shape[0]) if i != ref])
    tdoa = toa[:, :, others] - toa[:, :, ref : ref + 1]

    def fit(t: int, k: int) -> tuple[FloatArray, FloatArray]:
        est = estimate_tdoa(
            rx, tdoa[t, k], sigma_s=sig, ref=ref, tx_height_m=float(tx[k, 2]), speed_m_s=speed_m_s
        )
        return np.array([est.east_m, est.north_m]), est.cov_en

    def bound(k: int) -> FloatArray:
        return tdoa_crlb(
            rx, tx[k, :2], sigma_s=sig, ref=ref, tx_height_m=float(tx[k, 2]), speed_m_s=speed_m_s
        )

    return _run("tdoa", rx, tx, toa.shape[0], fit, bound, scenario, model, details)
