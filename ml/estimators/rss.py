r"""Received-signal-strength (RSS) maximum-likelihood localisation.

Model
-----
Receiver i at ``r_i = (x_i, y_i)`` (local ENU, metres; optional height ``h_i``) measures

.. math:: P_i + c_i = P_0 - 10\,n\,\log_{10}(d_i / 1\,\mathrm{m}) + w_i,\qquad
          w_i \sim \mathcal N(0, \sigma^2)\ \text{i.i.d. (log-normal shadowing)},

with ``c_i`` an optional per-receiver calibration offset (dB, added to the measured power),
``P_0`` the power at 1 m (dBm) and ``n`` the path-loss exponent. Distance choice: the
horizontal distance to the transmitter plus a fixed, known height difference,

.. math:: d_i = \sqrt{(x - x_i)^2 + (y - y_i)^2 + (h_{tx} - h_i)^2 + d_0^2},

where ``h_tx`` is given (default 0 m in the frame) and ``h_i`` is the receiver's up
coordinate (0 when only east/north are given); ``d_0 = 1 m`` keeps ``log d`` finite
at a receiver and changes ``log d`` by < 2·10⁻⁹ dB at 1 km. The transmitter height is
not estimated: RSS carries almost no information on it.

Unknowns ``θ = (x, y, P_0, n)``. Under the Gaussian model the ML estimate minimises
``Σ_i (P_i + c_i − μ_i(θ))²`` (``μ_i`` the mean model), ``n ∈ [1.5, 6]``, optionally with a
robust loss (``soft_l1``/``huber``, scale ``f_scale_db``, defined as in
``scipy.optimize.least_squares``) that down-weights outliers (a receiver with a wrong gain, a
multipath null). Solved by Levenberg–Marquardt with IRLS weights and an active set for the
bound on n, from all starts at once (:mod:`heimdall.ml.estimators._rss_lm`): the same optimum
as ``least_squares`` (tested) at a fraction of its cost (its per-call overhead dominated, 10–32
ms per fix).

Starts: the model is linear in ``(P_0, n)`` for a fixed position, so the profiled cost
``min_{P_0, n} Σ r_i²`` (n clipped to its bounds) is evaluated in closed form on a
21 × 21 grid over the receivers' bounding box extended by 50 % of its span on each side;
the optimiser is started from the receivers' centroid, from the strongest receiver (moved
5 % of the way to the centroid), and from the three lowest local minima of the grid (all
five at once), and the lowest final cost wins.

Covariance
----------
Gauss–Newton / Fisher approximation at the solution, on the full θ:

.. math:: \widehat{\mathrm{Cov}}(\hat\theta) = \hat\sigma^2 (J^T W J)^{-1},\qquad
          J_{i\cdot} = \partial\mu_i/\partial\theta,

``W = I`` for the linear loss and the IRLS weights ``W = diag(ρ'(z_i))``,
``z_i = (r_i/f)²``, for robust losses. ``σ̂² = Σ W_ii r_i² / (m − 4)`` when m > 4,
floored by ``sigma_db²`` (the prior shadowing standard deviation); ``σ̂ = sigma_db`` when
m = 4 or when ``estimate_sigma=False`` (σ known). With an estimated σ the k-sigma
ellipse's coverage follows ``P(F(2, m−4) ≤ k²/2)`` rather than ``1 − e^{−k²/2}`` (the floor
raises it again); with σ known it is the χ²₂ value. The derivatives of ``μ_i``:

.. math:: \frac{\partial\mu_i}{\partial x} = -\frac{10 n}{\ln 10}\frac{x - x_i}{d_i^2},\quad
          \frac{\partial\mu_i}{\partial y} = -\frac{10 n}{\ln 10}\frac{y - y_i}{d_i^2},\quad
          \frac{\partial\mu_i}{\partial P_0} = 1,\quad
          \frac{\partial\mu_i}{\partial n} = -10\log_{10} d_i.

The Cramér–Rao bound (:func:`rss_crlb`) is the same expression with the true θ and σ:
``CRLB(x, y) = [σ² (JᵀJ)⁻¹]_{1:2, 1:2}`` — unknown ``P_0`` and ``n`` are nuisance
parameters, so the bound is the top-left block of the inverse of the full 4 × 4 Fisher
information (not the inverse of its top-left block).

Receivers all on one line give a mirror-image ambiguity across that line; such inputs
(and fewer than four receivers, or a singular Fisher matrix) raise
:class:`~heimdall.core.errors.EstimationError`.

References
----------
- N. Patwari, A. O. Hero III, M. Perkins, N. S. Correal, R. J. O'Dea, "Relative location
  estimation in wireless sensor networks", IEEE Trans. Signal Process. 51(8), 2137–2148,
  2003 (RSS model and CRLB).
- T. S. Rappaport, *Wireless Communications: Principles and Practice*, 2nd ed., 2002,
  §4.9 (log-distance path loss, log-normal shadowing).
- S. M. Kay, *Fundamentals of Statistical Signal Processing: Estimation Theory*, 1993,
  §3.8–3.9 (vector CRLB, nuisance parameters).
- P. J. Huber, *Robust Statistics*, Wiley, 1981 (M-estimation, IRLS weights).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators._numerics import grid_minima, invert_spd
from heimdall.ml.estimators._rss_lm import fit_rss_lm

__all__ = [
    "N_BOUNDS",
    "RssEstimate",
    "estimate_rss",
    "rss_crlb",
    "rss_jacobian",
    "rss_mean_model",
]

FloatArray = npt.NDArray[np.float64]
Loss = Literal["linear", "soft_l1", "huber"]

#: Bounds of the path-loss exponent.
N_BOUNDS = (1.5, 6.0)
_D0_M = 1.0
_LN10 = math.log(10.0)
_GRID = 21
_N_GRID_STARTS = 3


@dataclass(frozen=True, slots=True)
class RssEstimate:
    """Result of :func:`estimate_rss`.

    Attributes
    ----------
    east_m, north_m : float
        Transmitter position in the local frame, m.
    cov_en : numpy.ndarray, shape (2, 2)
        Covariance of (east, north), m² (marginal of the full 4-parameter covariance).
    p0_dbm : float
        Estimated power at 1 m, dBm (includes antenna gains).
    path_loss_exponent : float
        Estimated n.
    residual_rms_db : float
        ``sqrt(mean r_i²)`` of the fit, dB.
    n_receivers : int
        m.
    converged : bool
        The optimiser reported convergence.
    cost : float
        Final cost ``½ Σ ρ(r_i²)`` in dB² (``ρ`` the loss).
    cov_theta : numpy.ndarray, shape (4, 4)
        Covariance of (east, north, P0, n).
    sigma_db : float
        The σ used in the covariance, dB.
    """

    east_m: float
    north_m: float
    cov_en: FloatArray
    p0_dbm: float
    path_loss_exponent: float
    residual_rms_db: float
    n_receivers: int
    converged: bool
    cost: float
    cov_theta: FloatArray
    sigma_db: float


def _split_rx(rx_enu: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    rx = np.asarray(rx_enu, dtype=float)
    if rx.ndim != 2 or rx.shape[1] not in (2, 3):
        raise EstimationError(f"receiver positions must be (m, 2) or (m, 3), got {rx.shape}")
    h = rx[:, 2].copy() if rx.shape[1] == 3 else np.zeros(rx.shape[0])
    return rx[:, :2].copy(), h


def _dist2(
    x: float | FloatArray, y: float | FloatArray, rx: FloatArray, dh2: FloatArray
) -> FloatArray:
    return (
        (np.asarray(x)[..., None] - rx[:, 0]) ** 2
        + (np.asarray(y)[..., None] - rx[:, 1]) ** 2
        + dh2
        + _D0_M**2
    )


def rss_mean_model(
    theta: npt.ArrayLike, rx_enu: npt.ArrayLike, tx_height_m: float = 0.0
) -> FloatArray:
    """Mean received power ``μ_i = P0 − 10 n log10 d_i`` (dBm) for ``θ = (x, y, P0, n)``."""
    x, y, p0, n = (float(v) for v in np.asarray(theta, dtype=float))
    rx, h = _split_rx(rx_enu)
    d2 = _dist2(x, y, rx, (tx_height_m - h) ** 2)
    return p0 - 5.0 * n * np.log10(d2)


def _jacobian(theta: FloatArray, rx: FloatArray, dh2: FloatArray) -> FloatArray:
    x, y, _p0, n = theta
    d2 = _dist2(x, y, rx, dh2)
    k = -10.0 * n / _LN10
    jac = np.empty((rx.shape[0], 4))
    jac[:, 0] = k * (x - rx[:, 0]) / d2
    jac[:, 1] = k * (y - rx[:, 1]) / d2
    jac[:, 2] = 1.0
    jac[:, 3] = -5.0 * np.log10(d2)
    return jac


def rss_jacobian(
    theta: npt.ArrayLike, rx_enu: npt.ArrayLike, tx_height_m: float = 0.0
) -> FloatArray:
    """``∂μ/∂(x, y, P0, n)`` of :func:`rss_mean_model` at ``theta``, shape (m, 4).

    ``rx_enu`` is (m, 2) or (m, 3) (with receiver heights), m.
    """
    rx, h = _split_rx(rx_enu)
    return _jacobian(np.asarray(theta, dtype=float), rx, (tx_height_m - h) ** 2)


def rss_crlb(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    n: float,
    sigma_db: float,
    tx_height_m: float = 0.0,
) -> FloatArray:
    """Cramér–Rao bound on (east, north) with P0 and n unknown (Patwari et al. 2003).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 2) or (m, 3)
        Receiver positions (m); a third column is the receiver height.
    tx_enu : array_like, shape (2,)
        True transmitter position (m).
    n : float
        True path-loss exponent.
    sigma_db : float
        Shadowing standard deviation σ (dB).
    tx_height_m : float
        Transmitter height in the frame (m).

    Returns
    -------
    numpy.ndarray, shape (2, 2)
        ``[(JᵀJ/σ²)⁻¹]_{1:2,1:2}`` with J the Jacobian of the mean model with respect to
        (x, y, P0, n) at the truth (P0 does not enter J). All entries are ``inf`` if the
        Fisher information is singular (e.g. a transmitter equidistant from all receivers,
        where P0 and n cannot be separated).
    """
    tx = np.asarray(tx_enu, dtype=float).reshape(2)
    jac = rss_jacobian([tx[0], tx[1], 0.0, float(n)], rx_enu, tx_height_m)
    inv = invert_spd(jac.T @ jac / float(sigma_db) ** 2)
    if inv is None:
        return np.full((2, 2), np.inf)
    return inv[:2, :2].copy()


def _profile(
    px: FloatArray, py: FloatArray, rx: FloatArray, dh2: FloatArray, p: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Closed-form (P0, n) and cost for each candidate position (n clipped to its bounds)."""
    lg = -5.0 * np.log10(_dist2(px, py, rx, dh2))  # (g, m): μ = P0 + n·lg
    lm = lg.mean(axis=1, keepdims=True)
    pm = p.mean()
    var = ((lg - lm) ** 2).sum(axis=1)
    cov = ((lg - lm) * (p - pm)).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.where(var > 0, cov / var, N_BOUNDS[0])
    n = np.clip(n, *N_BOUNDS)
    p0 = pm - n * lm[:, 0]
    res = p - (p0[:, None] + n[:, None] * lg)
    return p0, n, (res**2).sum(axis=1)


def _loss_weights(r: FloatArray, loss: Loss, f_scale: float) -> FloatArray:
    """IRLS weights ρ'(z), z = (r/f)²."""
    z = (r / f_scale) ** 2
    if loss == "soft_l1":
        return np.asarray(1.0 / np.sqrt(1.0 + z))
    if loss == "huber":
        return np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0)))
    return np.ones_like(r)


def estimate_rss(
    rx_enu: npt.ArrayLike,
    power_dbm: npt.ArrayLike,
    *,
    sigma_db: float = 4.0,
    estimate_sigma: bool = True,
    loss: Loss = "linear",
    f_scale_db: float | None = None,
    calibration_db: npt.ArrayLike | None = None,
    tx_height_m: float = 0.0,
) -> RssEstimate:
    """Maximum-likelihood transmitter position from received powers (model above).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 2) or (m, 3)
        Receiver positions in a local ENU frame, m (third column: height).
    power_dbm : array_like, shape (m,)
        Measured powers, dBm.
    sigma_db : float
        Shadowing standard deviation σ in dB. With ``estimate_sigma`` it is the floor
        of ``σ̂``; otherwise σ is taken as known. Default 4 dB: outdoor shadowing is
        typically 4–12 dB (Rappaport §4.9.2), and with few receivers ``σ̂`` has few
        degrees of freedom and is often too small by luck, which would make the
        ellipse overconfident.
    estimate_sigma : bool
        Use ``max(σ̂, sigma_db)`` (True) or ``sigma_db`` (False) in the covariance.
    loss : {"linear", "soft_l1", "huber"}
        Loss of ``scipy.optimize.least_squares``; robust losses down-weight outliers.
    f_scale_db : float, optional
        Residual scale where a robust loss starts to bend; default ``sigma_db``.
    calibration_db : array_like, shape (m,), optional
        Per-receiver offsets added to ``power_dbm`` before fitting.
    tx_height_m : float
        Assumed transmitter height in the frame, m.

    Returns
    -------
    RssEstimate

    Raises
    ------
    EstimationError
        Fewer than 4 receivers, non-finite inputs, collinear receivers (mirror
        ambiguity), or a singular Fisher matrix at the solution.
    """
    rx, h = _split_rx(rx_enu)
    p = np.asarray(power_dbm, dtype=float).reshape(-1)
    m = rx.shape[0]
    if p.shape[0] != m:
        raise EstimationError(f"{m} receiver positions but {p.shape[0]} power values")
    if m < 4:
        raise EstimationError(f"RSS needs at least 4 receivers for (x, y, P0, n), got {m}")
    if calibration_db is not None:
        cal = np.asarray(calibration_db, dtype=float).reshape(-1)
        if cal.shape[0] != m:
            raise EstimationError(f"{m} receivers but {cal.shape[0]} calibration offsets")
        p = p + cal
    if not (np.all(np.isfinite(rx)) and np.all(np.isfinite(p)) and np.all(np.isfinite(h))):
        raise EstimationError("receiver positions or powers contain NaN or infinity")
    if not sigma_db > 0.0:
        raise EstimationError(f"sigma_db must be positive, got {sigma_db}")

    centroid = rx.mean(axis=0)
    sv = np.linalg.svd(rx - centroid, compute_uv=False)
    if sv[0] == 0.0 or sv[1] < 1e-3 * sv[0]:
        raise EstimationError(
            "receivers are collinear: the position is ambiguous (mirror image across their line)"
        )
    dh2 = (tx_height_m - h) ** 2
    f_scale = float(f_scale_db) if f_scale_db is not None else float(sigma_db)

    # starts
    lo, hi = rx.min(axis=0), rx.max(axis=0)
    span = np.maximum(hi - lo, 1.0)
    gx = np.linspace(lo[0] - 0.5 * span[0], hi[0] + 0.5 * span[0], _GRID)
    gy = np.linspace(lo[1] - 0.5 * span[1], hi[1] + 0.5 * span[1], _GRID)
    mx, my = np.meshgrid(gx, gy)
    _, _, g_cost = _profile(mx.ravel(), my.ravel(), rx, dh2, p)
    minima = grid_minima(g_cost.reshape(_GRID, _GRID), _N_GRID_STARTS)
    strongest = rx[int(np.argmax(p))]
    cand = np.vstack(
        [
            centroid,
            strongest + 0.05 * (centroid - strongest),
            np.c_[mx.ravel()[minima], my.ravel()[minima]],
        ]
    )
    c_p0, c_n, _ = _profile(cand[:, 0], cand[:, 1], rx, dh2, p)

    starts = np.column_stack([cand, c_p0, np.clip(c_n, N_BOUNDS[0] + 1e-6, N_BOUNDS[1] - 1e-6)])
    thetas, costs, conv = fit_rss_lm(starts, rx, dh2, p, N_BOUNDS, loss=loss, f_scale=f_scale)
    best = int(np.argmin(costs))
    theta = thetas[best]
    r = p - (theta[2] - 5.0 * theta[3] * np.log10(_dist2(theta[0], theta[1], rx, dh2)))
    jm = _jacobian(theta, rx, dh2)
    w = _loss_weights(r, loss, f_scale)
    info = (jm * w[:, None]).T @ jm
    inv = invert_spd(info)
    if inv is None:
        raise EstimationError("degenerate geometry: the Fisher information is singular")
    sigma2 = float(sigma_db) ** 2
    if estimate_sigma and m > 4:
        sigma2 = max(float(np.sum(w * r * r)) / (m - 4), sigma2)
    cov = sigma2 * inv
    return RssEstimate(
        east_m=float(theta[0]),
        north_m=float(theta[1]),
        cov_en=cov[:2, :2].copy(),
        p0_dbm=float(theta[2]),
        path_loss_exponent=float(theta[3]),
        residual_rms_db=float(np.sqrt(np.mean(r * r))),
        n_receivers=m,
        converged=bool(conv[best]),
        cost=float(costs[best]),
        cov_theta=cov,
        sigma_db=math.sqrt(sigma2),
    )
