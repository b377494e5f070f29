r"""Time-difference-of-arrival (TDOA) localisation: Chan–Ho closed form, ML refinement, CRLB.

Model
-----
Receiver i sits at ``r_i = (x_i, y_i, h_i)`` in a local ENU frame (metres; ``h_i = 0`` when
only east/north are given) and time-stamps the arrival of the same emission at ``t_i``. The
transmitter is at ``x = (x, y)`` with a fixed, known height ``h_tx`` (``tx_height_m``);
only (x, y) are estimated (with receivers on the ground a few hundred km apart the height is
practically unobservable). With ``g_i(x) = ||(x, h_tx) − r_i||`` the ranges and ``c`` the
propagation speed, a measured pair ``(a, b)`` gives the range difference

.. math:: d_{ab} = c\,(t_a - t_b) = g_a(x) - g_b(x) + w_{ab}.

Stacking k pairs, ``d = A g(x) + w`` with ``A`` the k × m incidence matrix (row j has
``+1`` at ``a_j`` and ``−1`` at ``b_j``) and ``w ~ N(0, Q)``. Three noise descriptions are
accepted (exactly one; all in seconds, converted to metres with ``c``):

- ``sigma_s`` — per-receiver timing noise ``σ_i`` (scalar or one per receiver, e.g. the
  GPS-disciplined clock of each receiver): ``Q = c² A diag(σ_i²) Aᵀ``. For the usual
  reference-based pairs ``(i, 0)`` with equal ``σ`` this is

  .. math:: Q = c^2 σ^2 (I + \mathbf 1 \mathbf 1^T),

  i.e. variance ``2σ²`` per difference and correlation ½ between any two differences, because
  every pair shares the reference receiver's clock error. Ignoring that correlation (taking
  ``Q = 2σ² I``) gives a consistent but inefficient estimator and a wrong covariance. With
  redundant pairs (all m(m−1)/2 pairs built from the same m time stamps) Q is singular (rank
  m − 1); the pseudo-inverse is used, which is the exact GLS for noise confined to range(Q).
- ``pair_sigma_s`` — independent per-pair noise (e.g. cross-correlation lags, each measured
  separately with its own :func:`~heimdall.ml.tdoa.xcorr.measure_lag` sigma): ``Q = c²
  diag(σ_ab²)``.
- ``cov_s2`` — a full k × k covariance in s².

Reduction to a reference receiver
---------------------------------
Rows of A sum to zero, so ``A g = A' τ`` with ``τ_i = g_i − g_ref`` (i ≠ ref) and ``A'`` the
columns of A without the reference. The generalised-least-squares estimate

.. math:: \hat τ = (A'^T Q^{+} A')^{-1} A'^T Q^{+} d,\qquad P = (A'^T Q^{+} A')^{-1}

is a sufficient statistic for x (the GLS cost splits into ``(τ̂ − τ(x))ᵀ P⁻¹ (τ̂ − τ(x))``
plus a term free of x), so every estimator below works on (τ̂, P) in reference form. For
reference-based input ``τ̂ = d`` and ``P = Q``. A pair set that does not connect every
receiver to the reference makes ``A'ᵀQ⁺A'`` singular and raises
:class:`~heimdall.core.errors.EstimationError` (:func:`reduce_tdoa`).

Chan–Ho closed form (2-D, start value)
--------------------------------------
With the reference moved to the origin, ``K_i = x_i² + y_i² + (h_tx − h_i)²`` and
``R_0 = g_ref``, squaring ``g_i = τ_i + R_0`` gives equations linear in ``z = (x, y, R_0)``:

.. math:: x_i x + y_i y + τ_i R_0 = \tfrac12 (K_i - K_0 - τ_i^2),\qquad i ≠ \mathrm{ref}.

*Stage 1* (m ≥ 4): weighted least squares ``z₁ = (GᵀWG)⁻¹GᵀWh`` with ``W = (BPB)⁻¹``,
``B = diag(g_i)`` (the equation error is ``−g_i w_i − w_i²/2``); ``B`` is first taken as
``I`` and then recomputed from z₁ (twice). *Stage 2* uses the relation
``R_0² − (h_tx − h_0)² = x² + y²``: with ``h' = (x₁², y₁², R₀₁² − Δh₀²)``,
``G' = [[1, 0], [0, 1], [1, 1]]``, ``B' = diag(x₁, y₁, R₀₁)``,
``W' = B'^{-1} (GᵀWG) B'^{-1}``, ``z' = (G'ᵀW'G')⁻¹G'ᵀW'h'`` and
``x = sign(z₁) sqrt(z')`` (Chan & Ho 1994, eqs. 14–22). When stage 2 is ill-conditioned
(the source on a coordinate axis through the reference) or yields a negative square, the
stage-1 position is kept.

*Three receivers* (two differences, exactly determined): the two linear equations give
``(x, y) = a − b R_0``; substituting into ``R_0² = |a − b R_0|² + Δh₀²`` gives the quadratic

.. math:: (b^Tb - 1) R_0^2 - 2 a^Tb R_0 + a^Ta + Δh_0^2 = 0,

whose real roots with ``R_0 ≥ 0`` and ``g_i = τ_i + R_0 ≥ 0`` (the right hyperbola
branches) are the admissible solutions — zero, one or two; two is a genuine ambiguity of
3-receiver 2-D TDOA.

Maximum-likelihood refinement
-----------------------------
``x̂ = argmin ½ ||L⁻¹(τ̂ − τ(x))||²`` with ``P = LLᵀ`` (Cholesky): whitened residuals,
``scipy.optimize.least_squares`` (Levenberg–Marquardt, analytic Jacobian
``∂τ_i/∂x = u_i − u_ref``, ``u_i = (x − r_i)/g_i`` the horizontal part of the unit vector).
Starts: the Chan solution(s); when Chan fails, is ambiguous, or disagrees with the refined
fit, also the receiver centroid and the three lowest local minima of the cost on a 21 × 21
grid over the receivers' bounding box extended by 50 % of its span. The lowest cost wins;
another distinct local minimum within 1 of the best cost (a likelihood ratio below e) is
reported in ``alternatives`` and sets ``ambiguous``; exact ties (the noiseless 3-receiver
case) are broken towards the receiver centroid.

Covariance and CRLB
-------------------
``Cov(x̂) ≈ (Jᵀ P⁻¹ J)⁻¹`` at the solution, J = ∂τ/∂x (k' × 2). The sigmas are taken as
known (GPS clocks: tens of ns); ``scale_by_chi2=True`` multiplies by the reduced chi-square
``2·cost/(m − 3)`` when ``m − 1 > 2``. With three receivers (dof = 0) the fix is exact and
the covariance is still well defined: it is the timing noise mapped through the inverse
Jacobian, ``J⁻¹ P J⁻ᵀ``. The Cramér–Rao bound (:func:`tdoa_crlb`) is the same expression at
the truth, ``(Hᵀ Q⁺ H)⁻¹`` with ``H = A ∂g/∂x`` — the reduction leaves it unchanged.

References
----------
- Y. T. Chan, K. C. Ho, "A simple and efficient estimator for hyperbolic location", IEEE
  Trans. Signal Process. 42(8), 1905–1915, 1994.
- W. H. Foy, "Position-location solutions by Taylor-series estimation", IEEE Trans. Aerosp.
  Electron. Syst. AES-12(2), 187–194, 1976 (Gauss–Newton TDOA).
- S. M. Kay, *Fundamentals of Statistical Signal Processing: Estimation Theory*, 1993,
  §3.8 (vector CRLB), §4.6 and §8.9 (GLS, sufficiency).
- D. J. Torrieri, "Statistical theory of passive location systems", IEEE Trans. Aerosp.
  Electron. Syst. AES-20(2), 183–198, 1984 (TDOA covariance, reference-clock correlation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import least_squares

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators._numerics import grid_minima, invert_spd

__all__ = [
    "SPEED_OF_LIGHT_M_S",
    "ReducedTdoa",
    "TdoaEstimate",
    "chan_ho",
    "estimate_tdoa",
    "range_differences",
    "reduce_tdoa",
    "tdoa_crlb",
    "tdoa_delay_sensitivity",
]

FloatArray = npt.NDArray[np.float64]

#: Speed of light in vacuum, m/s (exact).
SPEED_OF_LIGHT_M_S = 299_792_458.0
_GRID = 21
_N_GRID_STARTS = 3
_AMBIGUITY_COST = 1.0
_TINY = 1e-9


@dataclass(frozen=True, slots=True)
class TdoaEstimate:
    """Result of :func:`estimate_tdoa`.

    Attributes
    ----------
    east_m, north_m : float
        Transmitter position in the local frame, m.
    up_m : float or None
        The (fixed, not estimated) transmitter height used, m, when receiver heights were
        given; None for 2-D receivers.
    cov_en : numpy.ndarray, shape (2, 2)
        Covariance of (east, north), m².
    residual_rms_m : float
        RMS of the range-difference residuals of the input pairs, m.
    n_receivers : int
        Receivers that enter the fix.
    converged : bool
        The optimiser reported convergence (True for a closed-form-only result).
    cost : float
        ``½ Σ r_w²`` of the whitened residuals (½ χ²).
    method : str
        ``"chan"`` (closed form only), ``"chan+lm"``, ``"centroid+lm"`` or ``"grid+lm"`` —
        the start that led to the chosen minimum.
    dof : int
        Degrees of freedom of the fit, ``rank(Q) − 2``.
    ambiguous : bool
        Another distinct local minimum has a cost within 1 of the best.
    alternatives : tuple of (float, float)
        Those other minima (east, north), m.
    """

    east_m: float
    north_m: float
    up_m: float | None
    cov_en: FloatArray
    residual_rms_m: float
    n_receivers: int
    converged: bool
    cost: float
    method: str
    dof: int = 0
    ambiguous: bool = False
    alternatives: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class ReducedTdoa:
    """TDOA measurements in reference form (see module docstring, *Reduction*).

    Attributes
    ----------
    rx_xy : numpy.ndarray, shape (m, 2)
        Receiver east/north, m.
    dh2 : numpy.ndarray, shape (m,)
        ``(h_tx − h_i)²``, m².
    ref : int
        Index of the reference receiver.
    others : numpy.ndarray of int, shape (m − 1,)
        Indices of the other receivers, in order.
    tau_m : numpy.ndarray, shape (m − 1,)
        ``τ̂_i ≈ g_i − g_ref``, m.
    cov_m2 : numpy.ndarray, shape (m − 1, m − 1)
        Its covariance P, m².
    chol : numpy.ndarray
        Lower Cholesky factor L of P.
    whitener : numpy.ndarray
        ``L⁻¹`` (small: m − 1 square), so whitening is one matrix product.
    incidence : numpy.ndarray, shape (k, m)
        The pair incidence matrix A of the input.
    d_m : numpy.ndarray, shape (k,)
        The input range differences, m.
    has_heights : bool
        Receiver heights were given.
    tx_height_m : float
        Transmitter height used, m.
    """

    rx_xy: FloatArray
    dh2: FloatArray
    ref: int
    others: npt.NDArray[np.intp]
    tau_m: FloatArray
    cov_m2: FloatArray
    chol: FloatArray
    whitener: FloatArray
    incidence: FloatArray
    d_m: FloatArray
    has_heights: bool
    tx_height_m: float

    @property
    def m(self) -> int:
        """Number of receivers."""
        return int(self.rx_xy.shape[0])

    def ranges(self, xy: npt.ArrayLike) -> FloatArray:
        """``g_i(x)`` for positions of shape (..., 2): shape (..., m)."""
        p = np.asarray(xy, dtype=float)
        dx = p[..., None, 0] - self.rx_xy[:, 0]
        dy = p[..., None, 1] - self.rx_xy[:, 1]
        return np.asarray(np.sqrt(dx * dx + dy * dy + self.dh2))

    def tau_model(self, xy: npt.ArrayLike) -> FloatArray:
        """``τ_i(x) = g_i(x) − g_ref(x)`` for the other receivers: shape (..., m − 1)."""
        g = self.ranges(xy)
        return np.asarray(g[..., self.others] - g[..., self.ref : self.ref + 1])

    def tau_jacobian(self, xy: npt.ArrayLike) -> FloatArray:
        """``∂τ/∂(x, y)``, shape (m − 1, 2)."""
        p = np.asarray(xy, dtype=float).reshape(2)
        g = np.maximum(self.ranges(p), _TINY)
        u = (p - self.rx_xy) / g[:, None]
        return np.asarray(u[self.others] - u[self.ref])

    def whitened(self, xy: npt.ArrayLike) -> FloatArray:
        """``L⁻¹(τ̂ − τ(x))`` for one position."""
        r = self.tau_m - self.tau_model(np.asarray(xy, dtype=float).reshape(2))
        return np.asarray(self.whitener @ r)

    def whitened_jacobian(self, xy: npt.ArrayLike) -> FloatArray:
        """Jacobian of :meth:`whitened`: ``−L⁻¹ ∂τ/∂x``."""
        return -np.asarray(self.whitener @ self.tau_jacobian(xy))

    def cost_grid(self, xy: FloatArray) -> FloatArray:
        """``½ ||L⁻¹(τ̂ − τ(x))||²`` for positions of shape (g, 2)."""
        r = self.tau_m[None, :] - self.tau_model(xy)
        w = self.whitener @ r.T
        return np.asarray(0.5 * np.sum(w * w, axis=0))

    def fisher(self, xy: npt.ArrayLike) -> FloatArray:
        """``Jᵀ P⁻¹ J`` (2 × 2, m⁻²) at a position."""
        jw = self.whitened_jacobian(xy)
        return np.asarray(jw.T @ jw)


def _split_rx(rx_enu: npt.ArrayLike) -> tuple[FloatArray, FloatArray, bool]:
    rx = np.asarray(rx_enu, dtype=float)
    if rx.ndim != 2 or rx.shape[1] not in (2, 3):
        raise EstimationError(f"receiver positions must be (m, 2) or (m, 3), got {rx.shape}")
    if not np.all(np.isfinite(rx)):
        raise EstimationError("receiver positions contain NaN or infinity")
    h = rx[:, 2].copy() if rx.shape[1] == 3 else np.zeros(rx.shape[0])
    return rx[:, :2].copy(), h, rx.shape[1] == 3


def _incidence(m: int, pairs: Sequence[tuple[int, int]] | None, ref: int) -> FloatArray:
    if pairs is None:
        if not 0 <= ref < m:
            raise EstimationError(f"reference receiver {ref} out of range for {m} receivers")
        pairs = [(i, ref) for i in range(m) if i != ref]
    a = np.zeros((len(pairs), m))
    for j, (p, q) in enumerate(pairs):
        if not (0 <= p < m and 0 <= q < m) or p == q:
            raise EstimationError(f"pair {j} = ({p}, {q}) is not two distinct receivers of {m}")
        a[j, p] = 1.0
        a[j, q] = -1.0
    return a


def _pair_cov_m2(
    a: FloatArray,
    sigma_s: npt.ArrayLike | None,
    pair_sigma_s: npt.ArrayLike | None,
    cov_s2: npt.ArrayLike | None,
    speed: float,
) -> FloatArray:
    given = [v is not None for v in (sigma_s, pair_sigma_s, cov_s2)]
    if sum(given) != 1:
        raise EstimationError("give exactly one of sigma_s, pair_sigma_s, cov_s2")
    k, m = a.shape
    c2 = speed * speed
    if sigma_s is not None:
        s = np.broadcast_to(np.asarray(sigma_s, dtype=float), (m,))
        q = c2 * (a * (s * s)[None, :]) @ a.T
    elif pair_sigma_s is not None:
        s = np.asarray(pair_sigma_s, dtype=float).reshape(-1)
        if s.shape[0] != k:
            raise EstimationError(f"{k} pairs but {s.shape[0]} pair sigmas")
        q = c2 * np.diag(s * s)
    else:
        q = c2 * np.asarray(cov_s2, dtype=float)
        if q.shape != (k, k):
            raise EstimationError(f"{k} pairs but a covariance of shape {q.shape}")
    if not np.all(np.isfinite(q)) or np.any(np.diag(q) <= 0.0):
        raise EstimationError("TDOA sigmas must be finite and positive")
    return np.asarray(0.5 * (q + q.T))


def reduce_tdoa(
    rx_enu: npt.ArrayLike,
    tdoa_s: npt.ArrayLike,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    sigma_s: npt.ArrayLike | None = None,
    pair_sigma_s: npt.ArrayLike | None = None,
    cov_s2: npt.ArrayLike | None = None,
    ref: int = 0,
    tx_height_m: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
) -> ReducedTdoa:
    """Validate TDOA input and reduce it to reference form ``(τ̂, P)`` (module docstring).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 2) or (m, 3)
        Receiver positions, m (third column: height).
    tdoa_s : array_like, shape (k,)
        ``t_a − t_b`` for each pair, s. Without ``pairs``: ``t_i − t_ref`` for every
        receiver i ≠ ref, in receiver order.
    pairs : sequence of (a, b), optional
        Receiver indices of each difference.
    sigma_s, pair_sigma_s, cov_s2
        Noise: per-receiver timing σ (scalar or (m,)), per-pair independent σ (k,), or full
        (k, k) covariance, in seconds (exactly one).
    ref : int
        Reference receiver (used without ``pairs``, and as the reduction's reference when
        ``pairs`` are given: the first receiver of the first pair is not special).
    tx_height_m : float
        Transmitter height in the frame, m.
    speed_m_s : float
        Propagation speed, m/s.

    Returns
    -------
    ReducedTdoa

    Raises
    ------
    EstimationError
        Fewer than 3 receivers, collinear receivers (mirror ambiguity), wrong shapes,
        non-finite values, bad sigmas, or pairs that do not connect all receivers.
    """
    rx, h, has_h = _split_rx(rx_enu)
    m = rx.shape[0]
    if m < 3:
        raise EstimationError(f"2-D TDOA needs at least 3 receivers, got {m}")
    sv = np.linalg.svd(rx - rx.mean(axis=0), compute_uv=False)
    if sv[0] == 0.0 or sv[1] < 1e-3 * sv[0]:
        raise EstimationError(
            "receivers are collinear: the position is ambiguous (mirror image across their line)"
        )
    a = _incidence(m, pairs, ref)
    d = speed_m_s * np.asarray(tdoa_s, dtype=float).reshape(-1)
    if d.shape[0] != a.shape[0]:
        raise EstimationError(f"{a.shape[0]} pairs but {d.shape[0]} time differences")
    if not np.all(np.isfinite(d)):
        raise EstimationError("time differences contain NaN or infinity")
    q = _pair_cov_m2(a, sigma_s, pair_sigma_s, cov_s2, speed_m_s)
    if not 0 <= ref < m:
        raise EstimationError(f"reference receiver {ref} out of range for {m} receivers")
    others = np.array([i for i in range(m) if i != ref], dtype=np.intp)
    a1 = a[:, others]
    if a1.shape == (m - 1, m - 1) and np.array_equal(a1, np.eye(m - 1)):
        tau, p = d.copy(), q.copy()
    else:
        qi = np.linalg.pinv(q, rcond=1e-10, hermitian=True)
        info = a1.T @ qi @ a1
        if np.linalg.matrix_rank(info, tol=1e-10 * np.max(np.abs(info))) < m - 1:
            raise EstimationError("the pairs do not connect every receiver to the others")
        pinv_info = np.linalg.inv(info)
        p = np.asarray(0.5 * (pinv_info + pinv_info.T), dtype=float)
        tau = p @ (a1.T @ qi @ d)
    try:
        chol = np.linalg.cholesky(p)
    except np.linalg.LinAlgError as exc:
        raise EstimationError("TDOA covariance is not positive definite") from exc
    return ReducedTdoa(
        rx_xy=rx,
        dh2=(tx_height_m - h) ** 2,
        ref=ref,
        others=others,
        tau_m=np.asarray(tau, dtype=float),
        cov_m2=np.asarray(p, dtype=float),
        chol=np.asarray(chol, dtype=float),
        whitener=np.asarray(np.linalg.inv(chol), dtype=float),
        incidence=a,
        d_m=d,
        has_heights=has_h,
        tx_height_m=float(tx_height_m),
    )


def range_differences(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    ref: int = 0,
    tx_height_m: float = 0.0,
) -> FloatArray:
    """Noiseless range differences ``g_a − g_b`` (m) for each pair (default ``(i, ref)``)."""
    rx, h, _ = _split_rx(rx_enu)
    a = _incidence(rx.shape[0], pairs, ref)
    tx = np.asarray(tx_enu, dtype=float).reshape(-1)[:2]
    g = np.sqrt(np.sum((tx - rx) ** 2, axis=1) + (tx_height_m - h) ** 2)
    return np.asarray(a @ g)


def _chan_stage(red: ReducedTdoa) -> list[tuple[FloatArray, bool]]:
    """Chan–Ho candidates as (position, trustworthy) in the frame; empty if it fails."""
    r0 = red.rx_xy[red.ref]
    xy = red.rx_xy[red.others] - r0
    tau = red.tau_m
    dh0 = red.dh2[red.ref]
    kk = np.sum(xy * xy, axis=1) + red.dh2[red.others]
    h = 0.5 * (kk - dh0 - tau * tau)
    n_eq = tau.shape[0]
    if n_eq == 2:
        mat = xy
        if abs(np.linalg.det(mat)) < 1e-9 * float(np.sum(mat * mat)):
            return []
        av = np.linalg.solve(mat, h)
        bv = np.linalg.solve(mat, tau)
        qa = float(bv @ bv) - 1.0
        qb = -2.0 * float(av @ bv)
        qc = float(av @ av) + dh0
        if abs(qa) < 1e-12:
            roots = [-qc / qb] if qb != 0.0 else []
        else:
            disc = qb * qb - 4.0 * qa * qc
            if disc < 0.0:
                # noise pushed the hyperbolas apart: the nearest real point is the double root
                disc = 0.0
            sq = math.sqrt(disc)
            roots = [(-qb - sq) / (2.0 * qa), (-qb + sq) / (2.0 * qa)]
        out: list[tuple[FloatArray, bool]] = []
        scale = math.sqrt(float(np.max(np.sum(xy * xy, axis=1))))
        for r in roots:
            if r < -1e-9 * scale or np.any(tau + r < -1e-6 * scale):
                continue
            p = av - bv * r + r0
            if not any(np.allclose(p, o, atol=1e-6 * scale) for o, _ in out):
                out.append((p, True))
        return out
    g = np.c_[xy, tau]
    try:
        pinv = np.linalg.inv(red.cov_m2)
        w = pinv
        z = np.zeros(3)
        cov_z = np.eye(3)
        for _ in range(3):
            gw = g.T @ w
            cov_z = np.linalg.inv(gw @ g)
            z = cov_z @ (gw @ h)
            b = np.sqrt(np.sum((z[:2] - xy) ** 2, axis=1) + red.dh2[red.others])
            w = pinv / np.outer(b, b)
    except np.linalg.LinAlgError:
        return []
    if not np.all(np.isfinite(z)) or z[2] < 0.0:
        return [(z[:2] + r0, False)] if np.all(np.isfinite(z)) else []
    stage1 = z[:2] + r0
    bp = np.array([z[0], z[1], z[2]])
    scale = max(float(np.max(np.abs(bp))), 1.0)
    if np.any(np.abs(bp) < 1e-6 * scale):
        return [(stage1, True)]
    w2 = np.linalg.inv(cov_z) / np.outer(bp, bp)
    g2 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    h2 = np.array([z[0] ** 2, z[1] ** 2, z[2] ** 2 - dh0])
    try:
        z2 = np.linalg.solve(g2.T @ w2 @ g2, g2.T @ w2 @ h2)
    except np.linalg.LinAlgError:
        return [(stage1, True)]
    if np.any(z2 < 0.0) or not np.all(np.isfinite(z2)):
        return [(stage1, False)]
    sgn = np.where(z[:2] < 0.0, -1.0, 1.0)
    return [(sgn * np.sqrt(z2) + r0, True)]


def chan_ho(
    rx_enu: npt.ArrayLike,
    tdoa_s: npt.ArrayLike,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    sigma_s: npt.ArrayLike | None = None,
    pair_sigma_s: npt.ArrayLike | None = None,
    cov_s2: npt.ArrayLike | None = None,
    ref: int = 0,
    tx_height_m: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
) -> list[FloatArray]:
    """Chan–Ho closed-form position(s) (module docstring); arguments as :func:`reduce_tdoa`.

    Returns
    -------
    list of numpy.ndarray, shape (2,)
        Candidate (east, north) positions, m: one for m ≥ 4 receivers; zero, one or two
        admissible roots for m = 3. Empty when the closed form fails (collinear receivers,
        no admissible root).
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
    return [p for p, _ in _chan_stage(red)]


def _refine(red: ReducedTdoa, x0: FloatArray) -> tuple[FloatArray, float, bool]:
    res = least_squares(
        red.whitened,
        x0,
        jac=red.whitened_jacobian,
        method="lm",
        xtol=1e-13,
        ftol=1e-13,
        gtol=1e-13,
        max_nfev=400,
    )
    return np.asarray(res.x, dtype=float), float(res.cost), bool(res.status > 0)


def _grid_starts(red: ReducedTdoa) -> FloatArray:
    lo, hi = red.rx_xy.min(axis=0), red.rx_xy.max(axis=0)
    span = np.maximum(hi - lo, 1.0)
    span = np.maximum(span, 0.2 * float(np.max(span)))
    gx = np.linspace(lo[0] - 0.5 * span[0], hi[0] + 0.5 * span[0], _GRID)
    gy = np.linspace(lo[1] - 0.5 * span[1], hi[1] + 0.5 * span[1], _GRID)
    mx, my = np.meshgrid(gx, gy)
    pts = np.c_[mx.ravel(), my.ravel()]
    cost = red.cost_grid(pts).reshape(_GRID, _GRID)
    return np.asarray(pts[grid_minima(cost, _N_GRID_STARTS)])


def _finish(
    red: ReducedTdoa,
    xy: FloatArray,
    cost: float,
    converged: bool,
    method: str,
    scale_by_chi2: bool,
    alternatives: list[FloatArray],
    chi2_alpha: float = 1.0,
) -> TdoaEstimate:
    inv = invert_spd(red.fisher(xy))
    if inv is None:
        raise EstimationError("degenerate geometry: the TDOA Fisher information is singular")
    dof = red.m - 1 - 2
    if scale_by_chi2 and dof > 0 and _chi2_rejects(2.0 * cost, dof, chi2_alpha):
        inv = inv * (2.0 * cost / dof)
    g = red.ranges(xy)
    resid = red.d_m - red.incidence @ g
    return TdoaEstimate(
        east_m=float(xy[0]),
        north_m=float(xy[1]),
        up_m=red.tx_height_m if red.has_heights else None,
        cov_en=inv,
        residual_rms_m=float(np.sqrt(np.mean(resid * resid))),
        n_receivers=red.m,
        converged=converged,
        cost=cost,
        method=method,
        dof=dof,
        ambiguous=bool(alternatives),
        alternatives=tuple((float(a[0]), float(a[1])) for a in alternatives),
    )


def _chi2_rejects(chi2: float, dof: int, alpha: float) -> bool:
    """True when ``P(χ²_dof ≥ chi2) < alpha`` (always for ``alpha ≥ 1``)."""
    if alpha >= 1.0:
        return True
    from scipy.stats import chi2 as chi2_dist

    return bool(chi2_dist.sf(chi2, dof) < alpha)


def estimate_tdoa(
    rx_enu: npt.ArrayLike,
    tdoa_s: npt.ArrayLike,
    *,
    pairs: Sequence[tuple[int, int]] | None = None,
    sigma_s: npt.ArrayLike | None = None,
    pair_sigma_s: npt.ArrayLike | None = None,
    cov_s2: npt.ArrayLike | None = None,
    ref: int = 0,
    tx_height_m: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
    refine: bool = True,
    scale_by_chi2: bool = False,
    chi2_alpha: float = 1.0,
) -> TdoaEstimate:
    """Transmitter position from time differences of arrival (model in the module docstring).

    Parameters
    ----------
    rx_enu, tdoa_s, pairs, sigma_s, pair_sigma_s, cov_s2, ref, tx_height_m, speed_m_s
        As :func:`reduce_tdoa`.
    refine : bool
        Refine by maximum likelihood (Levenberg–Marquardt, multi-start). False returns the
        Chan–Ho solution (``method="chan"``) with the covariance evaluated there.
    scale_by_chi2 : bool
        Multiply the covariance by the reduced chi-square ``2·cost/dof`` when dof > 0.
        Default off: GPS-timed receivers have known timing sigmas, and with few pairs the
        reduced chi-square is itself very noisy.
    chi2_alpha : float
        With ``scale_by_chi2``, scale only when the fit's chi-square rejects the sigmas at this
        level (``P(χ²_dof ≥ 2·cost) < chi2_alpha``); 1 scales always. With 3 dof the reduced
        chi-square of honest sigmas scatters by ±82 % (``sqrt(2/dof)``), so scaling every fix
        by it turns honest ellipses into over- and under-confident ones (on ``hf-tdoa``: 30 %
        / 75 % coverage at 1σ / 2σ instead of 50 % / 92 % unscaled).

    Returns
    -------
    TdoaEstimate

    Raises
    ------
    EstimationError
        Invalid input (see :func:`reduce_tdoa`), no closed-form solution with
        ``refine=False``, or a singular Fisher matrix at the solution (collinear receivers
        and a transmitter on their line).
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
    chan = _chan_stage(red)
    centroid = red.rx_xy.mean(axis=0)
    if not refine:
        if not chan:
            raise EstimationError("the Chan–Ho closed form has no admissible solution")
        costs = [float(red.cost_grid(p[None, :])[0]) for p, _ in chan]
        order = sorted(
            range(len(chan)), key=lambda i: (costs[i], float(np.linalg.norm(chan[i][0] - centroid)))
        )
        c_best = chan[order[0]][0]
        c_alts = [chan[i][0] for i in order[1:] if costs[i] - costs[order[0]] < _AMBIGUITY_COST]
        return _finish(
            red, c_best, costs[order[0]], True, "chan", scale_by_chi2, c_alts, chi2_alpha
        )

    results: list[tuple[FloatArray, float, bool, str]] = []
    for p, _ in chan:
        results.append((*_refine(red, p), "chan+lm"))
    need_more = len(chan) != 1 or not chan[0][1]
    if not need_more:
        # Chan and LM should agree to within a few standard deviations
        moved = results[0][0] - chan[0][0]
        inv = invert_spd(red.fisher(results[0][0]))
        need_more = inv is None or float(moved @ np.linalg.solve(inv, moved)) > 25.0
    if need_more:
        results.append((*_refine(red, centroid), "centroid+lm"))
        for p in _grid_starts(red):
            results.append((*_refine(red, p), "grid+lm"))
    finite = [r for r in results if np.all(np.isfinite(r[0])) and math.isfinite(r[1])]
    if not finite:
        raise EstimationError("TDOA refinement diverged from every start")
    scale = float(np.max(np.ptp(red.rx_xy, axis=0)))
    finite.sort(key=lambda r: (round(r[1], 9), float(np.linalg.norm(r[0] - centroid))))
    best = finite[0]
    alts: list[FloatArray] = []
    for r in finite[1:]:
        if r[1] - best[1] >= _AMBIGUITY_COST:
            continue
        if all(np.linalg.norm(r[0] - o) > 1e-4 * scale for o in [best[0], *alts]):
            alts.append(r[0])
    return _finish(red, best[0], best[1], best[2], best[3], scale_by_chi2, alts, chi2_alpha)


def _linearised(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    pairs: Sequence[tuple[int, int]] | None,
    ref: int,
    tx_height_m: float,
    sigma_s: npt.ArrayLike | None,
    pair_sigma_s: npt.ArrayLike | None,
    cov_s2: npt.ArrayLike | None,
    speed_m_s: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Incidence A, pseudo-inverse pair covariance Q⁺ (1/m²) and H = A ∂g/∂x at ``tx_enu``."""
    rx, h, _ = _split_rx(rx_enu)
    a = _incidence(rx.shape[0], pairs, ref)
    q = _pair_cov_m2(a, sigma_s, pair_sigma_s, cov_s2, speed_m_s)
    tx = np.asarray(tx_enu, dtype=float).reshape(-1)[:2]
    g = np.maximum(np.sqrt(np.sum((tx - rx) ** 2, axis=1) + (tx_height_m - h) ** 2), _TINY)
    hm = a @ ((tx - rx) / g[:, None])
    qp = np.asarray(np.linalg.pinv(q, rcond=1e-10, hermitian=True), dtype=float)
    return a, qp, hm


def tdoa_crlb(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    *,
    sigma_s: npt.ArrayLike | None = None,
    pair_sigma_s: npt.ArrayLike | None = None,
    cov_s2: npt.ArrayLike | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    ref: int = 0,
    tx_height_m: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
) -> FloatArray:
    """Cramér–Rao bound on (east, north) for TDOA, m².

    .. math:: \\mathrm{CRLB} = (H^T Q^{+} H)^{-1},\\qquad
              H = A\\,\\frac{\\partial g}{\\partial x},\\quad
              \\frac{\\partial g_i}{\\partial x} = \\frac{(x - r_i)_{EN}}{g_i},

    with Q the pair covariance in m² (module docstring; ``sigma_s`` per receiver gives
    ``c²σ²(I + 11ᵀ)`` for reference pairs).

    Parameters
    ----------
    rx_enu : array_like, shape (m, 2) or (m, 3)
        Receiver positions, m.
    tx_enu : array_like, shape (2,)
        True transmitter (east, north), m.
    sigma_s, pair_sigma_s, cov_s2, pairs, ref, tx_height_m, speed_m_s
        As :func:`reduce_tdoa`.

    Returns
    -------
    numpy.ndarray, shape (2, 2)
        The bound, m²; all ``inf`` when the Fisher information is singular.
    """
    _, qp, hm = _linearised(
        rx_enu, tx_enu, pairs, ref, tx_height_m, sigma_s, pair_sigma_s, cov_s2, speed_m_s
    )
    inv = invert_spd(hm.T @ qp @ hm)
    if inv is None:
        return np.full((2, 2), np.inf)
    return inv


def tdoa_delay_sensitivity(
    rx_enu: npt.ArrayLike,
    tx_enu: npt.ArrayLike,
    *,
    sigma_s: npt.ArrayLike | None = None,
    pair_sigma_s: npt.ArrayLike | None = None,
    cov_s2: npt.ArrayLike | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    ref: int = 0,
    tx_height_m: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
) -> FloatArray:
    r"""How far an unmodelled delay at one receiver moves the fix, m per second of delay.

    A receiver whose signal arrives δ late (its own group delay, a multipath-pulled peak, a
    clock offset) adds cδ to its range; every pair it belongs to is biased by ±cδ, and the
    generalised least-squares fix moves, to first order, by

    .. math:: \Delta x = (H^T Q^{+} H)^{-1} H^T Q^{+} A\, e_i\, c\,δ,

    with A, H, Q as in :func:`tdoa_crlb`. With three receivers (two independent differences
    for two unknowns) the data cannot reveal such a delay — the residual stays zero — so
    this is what bounds the error when per-receiver delays are not calibrated.

    Parameters
    ----------
    rx_enu, tx_enu, sigma_s, pair_sigma_s, cov_s2, pairs, ref, tx_height_m, speed_m_s
        As :func:`tdoa_crlb` (``tx_enu``: the fix at which to linearise).

    Returns
    -------
    numpy.ndarray, shape (m, 2)
        Row i: (east, north) displacement of the fix per second of delay at receiver i;
        ``nan`` when the Fisher information is singular.
    """
    a, qp, hm = _linearised(
        rx_enu, tx_enu, pairs, ref, tx_height_m, sigma_s, pair_sigma_s, cov_s2, speed_m_s
    )
    inv = invert_spd(hm.T @ qp @ hm)
    if inv is None:
        return np.full((a.shape[1], 2), np.nan)
    return np.asarray((inv @ hm.T @ qp @ a * speed_m_s).T)
