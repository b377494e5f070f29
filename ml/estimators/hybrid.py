r"""Joint RSS + TDOA maximum-likelihood localisation and its Cramér–Rao bound.

Model
-----
The two measurement models of :mod:`~heimdall.ml.estimators.rss` and
:mod:`~heimdall.ml.estimators.tdoa` on the same receivers, with independent noises:

.. math::

    P_i &= μ_i(θ) + v_i = P_0 - 5 n \log_{10}\big(g_i^2 + d_0^2\big) + v_i,
        \qquad v_i \sim \mathcal N(0, σ_{dB}^2),\\
    \hat τ &= τ(x) + w,\qquad w \sim \mathcal N(0, P),

with ``θ = (x, y, P_0, n)``, ``g_i`` the range to receiver i (known transmitter height),
``d_0 = 1 m`` (as in ``rss.py``; ``μ`` is :func:`~heimdall.ml.estimators.rss.rss_mean_model`)
and ``(τ̂, P)`` the TDOA measurements in reference form
(:func:`~heimdall.ml.estimators.tdoa.reduce_tdoa`). The negative log-likelihood is half the
sum of squares of the stacked whitened residuals

.. math:: r(θ) = \begin{pmatrix} (P - μ(θ)) / σ_{dB} \\ L^{-1}(\hat τ - τ(x)) \end{pmatrix},
          \qquad P = LL^T,

minimised with ``scipy.optimize.least_squares`` (trust-region reflective, ``n`` bounded to
``rss.N_BOUNDS``). Starts: the TDOA estimate, the RSS estimate (when ≥ 4 powers), the
receivers' centroid; at each, ``(P_0, n)`` start at their closed-form least-squares values
for that position (the RSS model is linear in them).

Fisher information and CRLB
---------------------------
Independent blocks add:

.. math:: \mathcal I(θ) = \frac{J_P^T J_P}{σ_{dB}^2}
          + \begin{pmatrix} J_τ^T P^{-1} J_τ & 0 \\ 0 & 0 \end{pmatrix},\qquad
          \mathrm{CRLB}(x, y) = [\mathcal I^{-1}]_{1:2, 1:2},

``J_P = ∂μ/∂θ`` (m × 4), ``J_τ = ∂τ/∂(x, y)``. Since information only adds, the hybrid
bound is never larger (in the Loewner order) than either bound alone; the covariance of the
estimate is ``𝓘(θ̂)⁻¹`` (σ's known; ``scale_by_chi2`` multiplies it by the reduced
chi-square). The RSS derivatives are

.. math:: \frac{∂μ_i}{∂x} = -\frac{10n}{\ln 10}\frac{x - x_i}{g_i^2 + d_0^2},\quad
          \frac{∂μ_i}{∂P_0} = 1,\quad \frac{∂μ_i}{∂n} = -5\log_{10}(g_i^2 + d_0^2).

References
----------
- N. Patwari et al., "Locating the nodes", IEEE Signal Process. Mag. 22(4), 54–69, 2005
  (RSS/TOA/TDOA CRLBs; fusion by adding Fisher information).
- S. M. Kay, *Fundamentals of Statistical Signal Processing: Estimation Theory*, 1993, §3.8.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators._numerics import invert_spd
from heimdall.ml.estimators.rss import N_BOUNDS, estimate_rss, rss_jacobian, rss_mean_model
from heimdall.ml.estimators.tdoa import (
    SPEED_OF_LIGHT_M_S,
    ReducedTdoa,
    estimate_tdoa,
    reduce_tdoa,
)

__all__ = ["HybridEstimate", "estimate_hybrid", "hybrid_crlb"]

FloatArray = npt.NDArray[np.float64]
_D0_M = 1.0  # as rss.py


@dataclass(frozen=True, slots=True)
class HybridEstimate:
    """Result of :func:`estimate_hybrid`.

    Attributes
    ----------
    east_m, north_m : float
        Transmitter position, m.
    cov_en : numpy.ndarray, shape (2, 2)
        Covariance of (east, north), m² (marginal of ``cov_theta``).
    p0_dbm, path_loss_exponent : float
        Estimated RSS nuisance parameters.
    residual_rms_db : float
        RMS of the RSS residuals, dB.
    residual_rms_m : float
        RMS of the TDOA range-difference residuals of the input pairs, m.
    n_receivers : int
        Receivers in the TDOA fix (RSS uses those with a finite power).
    n_rss : int
        Receivers with a finite power.
    converged : bool
        The optimiser reported convergence.
    cost : float
        ½ Σ of squared whitened residuals.
    cov_theta : numpy.ndarray, shape (4, 4)
        Covariance of (east, north, P0, n).
    method : str
        Start that led to the solution (``"tdoa"``, ``"rss"``, ``"centroid"``).
    """

    east_m: float
    north_m: float
    cov_en: FloatArray
    p0_dbm: float
    path_loss_exponent: float
    residual_rms_db: float
    residual_rms_m: float
    n_receivers: int
    n_rss: int
    converged: bool
    cost: float
    cov_theta: FloatArray
    method: str


def _fisher(
    theta: FloatArray, rx_rss: FloatArray, sigma_db: float, red: ReducedTdoa, tx_height_m: float
) -> FloatArray:
    jp = rss_jacobian(theta, rx_rss, tx_height_m)
    info = jp.T @ jp / sigma_db**2
    info[:2, :2] += red.fisher(theta[:2])
    return np.asarray(info)


def _profile_p0_n(
    xy: FloatArray, rx_rss: FloatArray, p: FloatArray, tx_height_m: float
) -> tuple[float, float]:
    lg = -5.0 * np.log10(
        (xy[0] - rx_rss[:, 0]) ** 2
        + (xy[1] - rx_rss[:, 1]) ** 2
        + (tx_height_m - (rx_rss[:, 2] if rx_rss.shape[1] == 3 else 0.0)) ** 2
        + _D0_M**2
    )
    lc = lg - lg.mean()
    var = float(lc @ lc)
    n = float(lc @ (p - p.mean())) / var if var > 0 else N_BOUNDS[0]
    n = float(np.clip(n, N_BOUNDS[0] + 1e-6, N_BOUNDS[1] - 1e-6))
    return float(p.mean() - n * lg.mean()), n


def estimate_hybrid(
    rx_enu: npt.ArrayLike,
    power_dbm: npt.ArrayLike,
    tdoa_s: npt.ArrayLike,
    *,
    sigma_db: float = 4.0,
    pairs: Sequence[tuple[int, int]] | None = None,
    sigma_s: npt.ArrayLike | None = None,
    pair_sigma_s: npt.ArrayLike | None = None,
    cov_s2: npt.ArrayLike | None = None,
    ref: int = 0,
    tx_height_m: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
    scale_by_chi2: bool = False,
) -> HybridEstimate:
    """Joint ML position from received powers and time differences (module docstring).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 2) or (m, 3)
        Receiver positions, m.
    power_dbm : array_like, shape (m,)
        Received powers, dBm; NaN for a receiver without a power measurement.
    tdoa_s, pairs, sigma_s, pair_sigma_s, cov_s2, ref, speed_m_s
        TDOA measurements and noise, as :func:`~heimdall.ml.estimators.tdoa.reduce_tdoa`.
    sigma_db : float
        Shadowing standard deviation, dB (taken as known).
    tx_height_m : float
        Transmitter height in the frame, m (both models).
    scale_by_chi2 : bool
        Scale the covariance by the reduced chi-square of the joint fit.

    Returns
    -------
    HybridEstimate

    Raises
    ------
    EstimationError
        Fewer than 3 finite powers (P0 and n take two), invalid TDOA input, or a singular
        Fisher matrix.
    """
    red = reduce_tdoa(
        rx_enu,
        tdoa_s,
        pairs=pairs,
        sigma_s=sigma_s,
        pair_sigma_s=pair_sigma_s,
        cov_s2=cov_s2,
        ref=ref,
        tx_height_m=tx_height_m,
        speed_m_s=speed_m_s,
    )
    rx = np.asarray(rx_enu, dtype=float)
    p_all = np.asarray(power_dbm, dtype=float).reshape(-1)
    if p_all.shape[0] != rx.shape[0]:
        raise EstimationError(f"{rx.shape[0]} receivers but {p_all.shape[0]} power values")
    have = np.isfinite(p_all)
    if int(have.sum()) < 3:
        raise EstimationError("hybrid RSS+TDOA needs at least 3 finite powers (P0, n unknown)")
    if not sigma_db > 0.0:
        raise EstimationError(f"sigma_db must be positive, got {sigma_db}")
    rx_rss, p = rx[have], p_all[have]

    def fun(theta: FloatArray) -> FloatArray:
        r_p = (p - rss_mean_model(theta, rx_rss, tx_height_m)) / sigma_db
        return np.concatenate([r_p, red.whitened(theta[:2])])

    def jac(theta: FloatArray) -> FloatArray:
        jp = -rss_jacobian(theta, rx_rss, tx_height_m) / sigma_db
        jt = np.zeros((red.tau_m.shape[0], 4))
        jt[:, :2] = red.whitened_jacobian(theta[:2])
        return np.vstack([jp, jt])

    starts: list[tuple[FloatArray, str]] = []
    try:
        t = estimate_tdoa(
            rx_enu,
            tdoa_s,
            pairs=pairs,
            sigma_s=sigma_s,
            pair_sigma_s=pair_sigma_s,
            cov_s2=cov_s2,
            ref=ref,
            tx_height_m=tx_height_m,
            speed_m_s=speed_m_s,
        )
        starts.append((np.array([t.east_m, t.north_m]), "tdoa"))
        starts.extend((np.asarray(a, dtype=float), "tdoa") for a in t.alternatives)
    except EstimationError:
        pass
    if int(have.sum()) >= 4:
        try:
            r = estimate_rss(rx_rss, p, sigma_db=sigma_db, tx_height_m=tx_height_m)
            starts.append((np.array([r.east_m, r.north_m]), "rss"))
        except EstimationError:
            pass
    starts.append((red.rx_xy.mean(axis=0), "centroid"))

    lower = np.array([-np.inf, -np.inf, -np.inf, N_BOUNDS[0]])
    upper = np.array([np.inf, np.inf, np.inf, N_BOUNDS[1]])
    best = None
    best_method = ""
    for xy, method in starts:
        p0, n = _profile_p0_n(xy, rx_rss, p, tx_height_m)
        res = least_squares(
            fun,
            np.array([xy[0], xy[1], p0, n]),
            jac=jac,
            bounds=(lower, upper),
            method="trf",
            x_scale="jac",
            xtol=1e-10,
            ftol=1e-10,
            gtol=1e-10,
        )
        if best is None or res.cost < best.cost:
            best, best_method = res, method
    assert best is not None
    theta = np.asarray(best.x, dtype=float)
    inv = invert_spd(_fisher(theta, rx_rss, sigma_db, red, tx_height_m))
    if inv is None:
        raise EstimationError("degenerate geometry: the hybrid Fisher information is singular")
    dof = int(have.sum()) + red.tau_m.shape[0] - 4
    if scale_by_chi2 and dof > 0:
        inv = inv * (2.0 * float(best.cost) / dof)
    r_db = p - rss_mean_model(theta, rx_rss, tx_height_m)
    r_m = red.d_m - red.incidence @ red.ranges(theta[:2])
    return HybridEstimate(
        east_m=float(theta[0]),
        north_m=float(theta[1]),
        cov_en=inv[:2, :2].copy(),
        p0_dbm=float(theta[2]),
        path_loss_exponent=float(theta[3]),
        residual_rms_db=float(np.sqrt(np.mean(r_db * r_db))),
        residual_rms_m=float(np.sqrt(np.mean(r_m * r_m))),
        n_receivers=red.m,
        n_rss=int(have.sum()),
        converged=bool(best.status > 0),
        cost=float(best.cost),
        cov_theta=inv,
        method=best_method,
    )


def hybrid_crlb(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    *,
    n: float,
    sigma_db: float,
    sigma_s: npt.ArrayLike | None = None,
    pair_sigma_s: npt.ArrayLike | None = None,
    cov_s2: npt.ArrayLike | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    ref: int = 0,
    rss_mask: npt.ArrayLike | None = None,
    tx_height_m: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
) -> FloatArray:
    """Cramér–Rao bound on (east, north) of joint RSS + TDOA, m² (module docstring).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 2) or (m, 3)
        Receiver positions, m.
    tx_enu : array_like, shape (2,)
        True transmitter position, m.
    n : float
        True path-loss exponent.
    sigma_db : float
        Shadowing standard deviation, dB.
    sigma_s, pair_sigma_s, cov_s2, pairs, ref, speed_m_s
        TDOA noise, as :func:`~heimdall.ml.estimators.tdoa.reduce_tdoa`.
    rss_mask : array_like of bool, shape (m,), optional
        Receivers with a power measurement (default all).
    tx_height_m : float
        Transmitter height, m.

    Returns
    -------
    numpy.ndarray, shape (2, 2)
        ``[𝓘(θ)⁻¹]_{1:2,1:2}``; all ``inf`` if 𝓘 is singular.
    """
    rx = np.asarray(rx_enu, dtype=float)
    tx = np.asarray(tx_enu, dtype=float).reshape(-1)[:2]
    m = rx.shape[0]
    npairs = m - 1 if pairs is None else len(pairs)
    red = reduce_tdoa(
        rx,
        np.zeros(npairs),
        pairs=pairs,
        sigma_s=sigma_s,
        pair_sigma_s=pair_sigma_s,
        cov_s2=cov_s2,
        ref=ref,
        tx_height_m=tx_height_m,
        speed_m_s=speed_m_s,
    )
    mask = np.ones(m, bool) if rss_mask is None else np.asarray(rss_mask, dtype=bool)
    theta = np.array([tx[0], tx[1], 0.0, float(n)])
    inv = invert_spd(_fisher(theta, rx[mask], float(sigma_db), red, tx_height_m))
    if inv is None:
        return np.full((2, 2), np.inf)
    return inv[:2, :2].copy()
