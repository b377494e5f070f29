r"""Localisation metrics: error statistics, ellipse coverage, covariance calibration, CDF plot.

Errors
------
For estimates :math:`\hat x_i` and truths :math:`x_i` (East/North, metres) the error is the
Euclidean distance :math:`e_i = \lVert \hat x_i - x_i \rVert_2`. Reported: mean, median, and the
68th/95th percentiles (``numpy.percentile`` with linear interpolation between order
statistics, i.e. the "type 7" quantile of Hyndman & Fan).

Coverage
--------
With a predicted covariance :math:`\Sigma_i` the squared Mahalanobis distance is
:math:`q_i = (\hat x_i - x_i)^T \Sigma_i^{-1} (\hat x_i - x_i)`. If the error is
:math:`\mathcal N(0, \Sigma_i)`, :math:`q_i \sim \chi^2_2`, whose CDF is
:math:`1 - e^{-q/2}`; so the k-sigma ellipse :math:`\{q \le k^2\}` should contain the truth
with probability :math:`P(k) = 1 - e^{-k^2/2}` — 39.35 % for k = 1 and 86.47 % for k = 2
(:func:`heimdall.ml.estimators.ellipse.coverage_probability`). The empirical coverage is the
fraction of samples with :math:`q_i \le k^2`.

Calibration
-----------
:func:`fit_covariance_scale` chooses one scalar :math:`s > 0` (covariance inflation
:math:`\Sigma \to s\,\Sigma`, so :math:`q \to q/s`) on held-out data so that the empirical
1σ and 2σ coverages are as close as possible, in the least-squares sense, to their χ²₂ values:

.. math:: \hat s = \arg\min_s \sum_{k \in \{1, 2\}}
          \Big(\tfrac1m \textstyle\sum_i 1[q_i \le s k^2] - P(k)\Big)^2,

solved exactly by scanning the candidate values :math:`s \in \{q_i / k^2\}` (the objective is
piecewise constant and changes only there). This is the variance-scaling recalibration of
Kuleshov et al. (2018) / Levi et al. (2022) restricted to two quantiles.
:func:`fit_covariance_calibration` adds an isotropic floor, :math:`\Sigma \to s(\Sigma + f^2 I)`,
with f chosen from a grid (heavy-tailed errors: a scale alone cannot fit both quantiles).

References
----------
- R. J. Hyndman, Y. Fan, "Sample quantiles in statistical packages", The American
  Statistician 50(4), 361–365, 1996.
- Y. Bar-Shalom, X. R. Li, T. Kirubarajan, *Estimation with Applications to Tracking and
  Navigation*, Wiley, 2001, §1.4.14 (χ² probability ellipses).
- V. Kuleshov, N. Fenner, S. Ermon, "Accurate Uncertainties for Deep Learning Using
  Calibrated Regression", ICML 2018.
- D. Levi, L. Gispan, N. Giladi, E. Fetaya, "Evaluating and Calibrating Uncertainty
  Prediction in Regression Tasks", Sensors 22(15), 5540, 2022.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import numpy.typing as npt

from heimdall.ml.estimators.ellipse import coverage_probability

__all__ = [
    "FLOOR_CANDIDATES_M",
    "METRIC_KEYS",
    "PERSISTENT_SHARES",
    "TARGET_COVERAGE",
    "coverage",
    "error_stats",
    "fit_covariance_calibration",
    "fit_covariance_scale",
    "fit_track_calibration",
    "localization_metrics",
    "mahalanobis2_batch",
    "plot_error_cdf",
]

FloatArray = npt.NDArray[np.float64]

#: Keys of a metrics dict, in report order.
METRIC_KEYS = ("median_m", "mean_m", "p68_m", "p95_m", "coverage_1sigma", "coverage_2sigma")
#: χ²₂ coverage of the 1σ and 2σ ellipses: 1 − e^{−1/2}, 1 − e^{−2}.
TARGET_COVERAGE = (coverage_probability(1.0), coverage_probability(2.0))


def error_stats(errors_m: npt.ArrayLike) -> dict[str, float]:
    """Mean, median, P68 and P95 of radial errors (m).

    Parameters
    ----------
    errors_m : array_like, shape (n,)
        Non-negative errors; NaNs are not allowed.

    Returns
    -------
    dict
        ``median_m``, ``mean_m``, ``p68_m``, ``p95_m`` (linear-interpolation percentiles).
    """
    e = np.asarray(errors_m, dtype=float).reshape(-1)
    if e.size == 0:
        raise ValueError("no errors to summarise")
    if not np.all(np.isfinite(e)):
        raise ValueError("errors contain NaN or infinity")
    p50, p68, p95 = np.percentile(e, [50.0, 68.0, 95.0])
    return {
        "median_m": float(p50),
        "mean_m": float(e.mean()),
        "p68_m": float(p68),
        "p95_m": float(p95),
    }


def mahalanobis2_batch(err: npt.ArrayLike, cov: npt.ArrayLike) -> FloatArray:
    r"""Squared Mahalanobis distances :math:`e_i^T \Sigma_i^{-1} e_i` for 2-D errors.

    Parameters
    ----------
    err : array_like, shape (n, 2)
    cov : array_like, shape (n, 2, 2)
        Symmetric positive definite covariances (symmetrised before use).

    Returns
    -------
    numpy.ndarray, shape (n,)
        Closed form for 2×2: with :math:`\Sigma = [[a, b], [b, d]]`,
        :math:`q = (d e_1^2 - 2 b e_1 e_2 + a e_2^2) / (a d - b^2)`; ``inf`` where the
        determinant is not positive.
    """
    e = np.asarray(err, dtype=float).reshape(-1, 2)
    c = np.asarray(cov, dtype=float).reshape(-1, 2, 2)
    a, d = c[:, 0, 0], c[:, 1, 1]
    b = 0.5 * (c[:, 0, 1] + c[:, 1, 0])
    det = a * d - b * b
    num = d * e[:, 0] ** 2 - 2.0 * b * e[:, 0] * e[:, 1] + a * e[:, 1] ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(det > 0.0, num / np.where(det > 0.0, det, 1.0), np.inf)
    return np.asarray(q, dtype=float)


def coverage(err: npt.ArrayLike, cov: npt.ArrayLike, k: float) -> float:
    """Fraction of errors inside their k-sigma ellipse (``q ≤ k²``; χ²₂ value 1 − e^{−k²/2})."""
    q = mahalanobis2_batch(err, cov)
    return float(np.mean(q <= k * k))


def localization_metrics(
    est_enu: npt.ArrayLike, truth_enu: npt.ArrayLike, cov: npt.ArrayLike | None = None
) -> dict[str, float]:
    """Error statistics and, with covariances, 1σ/2σ ellipse coverage.

    Parameters
    ----------
    est_enu, truth_enu : array_like, shape (n, 2)
        Estimates and truths (East, North), m.
    cov : array_like, shape (n, 2, 2), optional
        Predicted covariances, m².

    Returns
    -------
    dict
        :data:`METRIC_KEYS` (coverages are NaN without ``cov``) and ``n``.
    """
    est = np.asarray(est_enu, dtype=float).reshape(-1, 2)
    tru = np.asarray(truth_enu, dtype=float).reshape(-1, 2)
    err = est - tru
    out = error_stats(np.hypot(err[:, 0], err[:, 1]))
    if cov is None:
        out["coverage_1sigma"] = float("nan")
        out["coverage_2sigma"] = float("nan")
    else:
        q = mahalanobis2_batch(err, cov)
        out["coverage_1sigma"] = float(np.mean(q <= 1.0))
        out["coverage_2sigma"] = float(np.mean(q <= 4.0))
    out["n"] = float(est.shape[0])
    return out


def fit_covariance_scale(
    err: npt.ArrayLike, cov: npt.ArrayLike, targets: tuple[float, float] = TARGET_COVERAGE
) -> float:
    """Scalar covariance inflation ``s`` matching the 1σ/2σ coverage targets (module notes).

    Parameters
    ----------
    err : array_like, shape (n, 2)
        Held-out errors (estimate − truth), m.
    cov : array_like, shape (n, 2, 2)
        Their predicted covariances, m².
    targets : (float, float)
        Wanted coverage of the 1σ and 2σ ellipses (default χ²₂: 0.3935, 0.8647).

    Returns
    -------
    float
        ``s`` such that ``s·Σ`` is calibrated on this data; ties are broken towards the
        geometric mean of the candidate interval (the objective is piecewise constant).
    """
    q = mahalanobis2_batch(err, cov)
    q = q[np.isfinite(q)]
    if q.size == 0:
        return 1.0
    qs = np.sort(q)
    cand = np.unique(np.concatenate([qs / 1.0, qs / 4.0]))
    cand = cand[cand > 0.0]
    if cand.size == 0:
        return 1.0
    # evaluate the objective just above each breakpoint (coverage is right-continuous in s)
    mids = np.sqrt(cand[:-1] * cand[1:]) if cand.size > 1 else cand
    trial = np.sort(np.concatenate([mids, [cand[0] * 0.5, cand[-1] * 2.0]]))
    c1 = np.searchsorted(qs, trial * 1.0, side="right") / qs.size
    c2 = np.searchsorted(qs, trial * 4.0, side="right") / qs.size
    obj = (c1 - targets[0]) ** 2 + (c2 - targets[1]) ** 2
    best = np.flatnonzero(obj <= obj.min() + 1e-15)
    # among equally good candidates take the median one (robust to the flat region)
    return float(trial[best[len(best) // 2]])


#: Candidate isotropic floors (standard deviation, m) of :func:`fit_covariance_calibration`.
FLOOR_CANDIDATES_M = (0.0, 5.0, 10.0, 20.0, 40.0, 60.0, 80.0, 120.0, 160.0, 240.0)


def _best_scaled(
    err: FloatArray,
    candidates: Iterable[tuple[float, FloatArray]],
    targets: tuple[float, float],
) -> tuple[float, float]:
    """``(s, param)`` of the candidate covariance whose fitted scale s brings the 1σ/2σ
    coverage closest to ``targets`` (squared deviations; ties: the earlier candidate)."""
    best: tuple[float, float, float] | None = None
    for param, c in candidates:
        s = fit_covariance_scale(err, c, targets)
        q = mahalanobis2_batch(err, c * s)
        obj = (np.mean(q <= 1.0) - targets[0]) ** 2 + (np.mean(q <= 4.0) - targets[1]) ** 2
        if best is None or obj < best[0] - 1e-12:
            best = (float(obj), s, param)
    assert best is not None
    return best[1], best[2]


def fit_covariance_calibration(
    err: npt.ArrayLike,
    cov: npt.ArrayLike,
    floors_m: tuple[float, ...] = FLOOR_CANDIDATES_M,
    targets: tuple[float, float] = TARGET_COVERAGE,
) -> tuple[float, float]:
    r"""Two-parameter recalibration :math:`\Sigma \to s(\Sigma + f^2 I)` on held-out data.

    For each candidate floor f, s is fitted by :func:`fit_covariance_scale`; the pair with
    the smallest squared deviation of the 1σ/2σ coverages from ``targets`` wins (ties: the
    smallest floor). The floor widens the ellipses of samples whose stated covariance is
    implausibly small, which a single scale cannot do without over-widening the others —
    the errors here are heavier-tailed than a Gaussian.

    Returns
    -------
    (s, f²) : (float, float)
        Scale and floor variance in m².
    """
    e = np.asarray(err, dtype=float).reshape(-1, 2)
    c = np.asarray(cov, dtype=float).reshape(-1, 2, 2)
    eye = np.eye(2)[None]
    return _best_scaled(e, ((f * f, c + (f * f) * eye) for f in floors_m), targets)


#: Candidate persistent shares β of :func:`fit_track_calibration`.
PERSISTENT_SHARES = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def fit_track_calibration(
    err: npt.ArrayLike,
    track_cov: npt.ArrayLike,
    fix_cov: npt.ArrayLike,
    shares: tuple[float, ...] = PERSISTENT_SHARES,
    targets: tuple[float, float] = TARGET_COVERAGE,
) -> tuple[float, float]:
    r"""Recalibration of tracked covariances :math:`\Sigma = s\,(P + β R)` on held-out tracks.

    A tracker assumes independent fix errors, so its covariance P shrinks as fixes
    accumulate; a share β of each fix's error covariance R that persists from fix to fix
    (shadowing along a path, a biased fingerprint) does not average out and is added back.
    For each candidate β, s is fitted by :func:`fit_covariance_scale`; the pair whose 1σ/2σ
    coverage is closest to ``targets`` wins (ties: the smaller β).

    Returns
    -------
    (s, β) : (float, float)
    """
    e = np.asarray(err, dtype=float).reshape(-1, 2)
    p = np.asarray(track_cov, dtype=float).reshape(-1, 2, 2)
    r = np.asarray(fix_cov, dtype=float).reshape(-1, 2, 2)
    return _best_scaled(e, ((float(b), p + b * r) for b in shares), targets)


def plot_error_cdf(
    errors_by_method: Mapping[str, npt.ArrayLike],
    path: str | Path,
    *,
    title: str = "Localisation error CDF",
    max_error_m: float | None = None,
) -> Path:
    """Save an empirical CDF of radial errors per method as a PNG (matplotlib, Agg backend).

    Parameters
    ----------
    errors_by_method : mapping
        Label → errors (m).
    path : str or Path
        Output PNG.
    title : str
        Figure title.
    max_error_m : float, optional
        Right limit of the x-axis; default 1.2 × the median over methods of their 95th
        percentiles (a method far worse than the others runs off the right edge).

    Returns
    -------
    Path
        The written file.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    p95s: list[float] = []
    for label, errs in errors_by_method.items():
        e = np.sort(np.asarray(errs, dtype=float).reshape(-1))
        if e.size == 0:
            continue
        p = np.arange(1, e.size + 1) / e.size
        ax.step(e, p, where="post", label=f"{label} (median {np.median(e):.0f} m)")
        p95s.append(float(np.percentile(e, 95.0)))
    xmax = 1.2 * float(np.median(p95s)) if p95s else 1.0
    ax.set_xlim(0.0, max_error_m if max_error_m is not None else max(xmax, 1.0))
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("error (m)")
    ax.set_ylabel("fraction of samples ≤ error")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
