r"""Levenberg–Marquardt for the RSS model, run from several starts at once (numpy, no loop
over the starts).

Problem (see :mod:`heimdall.ml.estimators.rss`): minimise over ``θ = (x, y, P0, n)``,
``n ∈ [n_lo, n_hi]``,

.. math:: F(θ) = \tfrac12 \sum_i ρ(r_i^2),\qquad r_i = P_i - μ_i(θ),

with ``ρ`` the loss of ``scipy.optimize.least_squares`` (``linear``: ``ρ(z) = z``;
``soft_l1``: ``ρ(z) = 2C^2(\sqrt{1 + z/C^2} - 1)``; ``huber``: ``ρ(z) = z`` for ``z ≤ C^2``,
``2C\sqrt z - C^2`` above; ``C`` the scale), so that the optimum and the reported cost are
those of ``least_squares``.

Each iteration, for all ``S`` starts at once:

1. IRLS weights ``w_i = ρ'(r_i^2)`` (1 for the linear loss): a stationary point of ``F`` is
   one of the weighted least-squares problem with its own weights (Huber 1981);
2. Gauss–Newton system ``H = J^T W J``, ``g = J^T W r`` (``J = ∂μ/∂θ``), Marquardt's damping
   ``(H + λ\,\mathrm{diag}\,H)\,δ = g`` (Marquardt 1963), solved as an ``(S, 4, 4)`` batch;
3. the bound on ``n`` by an active set: where ``n`` sits on a bound and the step would leave
   it, ``n`` is held (its row and column of the system replaced by the identity) and the other
   three are solved for; ``n`` is clipped into the bounds;
4. the step is accepted where ``F`` decreases (``λ ← λ/10``), otherwise refused
   (``λ ← 10λ``).
5. a start whose cost is above that of a converged start stops (it is heading for a worse
   local minimum, far outside the receivers, or for the same one).

A start has converged when an accepted step changes ``F`` by at most ``1e-8 F`` (scipy's
``ftol``) or moves the position by less than 0.1 mm, or when no step can decrease ``F`` any more
(``λ > 1e12``); it is then frozen. At most ``max_iter`` iterations.

References
----------
- D. W. Marquardt, "An algorithm for least-squares estimation of nonlinear parameters",
  J. SIAM 11(2), 431–441, 1963.
- P. J. Huber, *Robust Statistics*, Wiley, 1981 (IRLS).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
Loss = Literal["linear", "soft_l1", "huber"]

_LN10 = math.log(10.0)
#: Relative cost change at which a start has converged (``least_squares``' default ftol).
FTOL = 1e-8
_D0_M = 1.0


def robust_cost(r: FloatArray, loss: Loss, f_scale: float) -> FloatArray:
    """``½ Σ ρ(r²)`` along the last axis, ``ρ`` as in ``scipy.optimize.least_squares``."""
    z = r * r
    if loss == "linear":
        return 0.5 * z.sum(axis=-1)
    c2 = f_scale * f_scale
    if loss == "soft_l1":
        rho = 2.0 * c2 * (np.sqrt(1.0 + z / c2) - 1.0)
    else:  # huber
        rho = np.where(z <= c2, z, 2.0 * f_scale * np.sqrt(z) - c2)
    return 0.5 * rho.sum(axis=-1)


def _weights(r: FloatArray, loss: Loss, f_scale: float) -> FloatArray:
    """``ρ'(r²)``: the IRLS weights."""
    if loss == "linear":
        return np.ones_like(r)
    z = (r / f_scale) ** 2
    if loss == "soft_l1":
        return np.asarray(1.0 / np.sqrt(1.0 + z))
    return np.where(z <= 1.0, 1.0, 1.0 / np.sqrt(np.maximum(z, 1.0)))


def _model(theta: FloatArray, rx: FloatArray, dh2: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``μ`` (S, m) and ``J = ∂μ/∂θ`` (S, m, 4) for the starts ``theta`` (S, 4)."""
    dx = theta[:, 0:1] - rx[:, 0]
    dy = theta[:, 1:2] - rx[:, 1]
    d2 = dx * dx + dy * dy + dh2 + _D0_M**2
    lg = -5.0 * np.log10(d2)
    n = theta[:, 3:4]
    mu = theta[:, 2:3] + n * lg
    k = -10.0 * n / _LN10 / d2
    jac = np.empty((*d2.shape, 4))
    jac[..., 0] = k * dx
    jac[..., 1] = k * dy
    jac[..., 2] = 1.0
    jac[..., 3] = lg
    return mu, jac


def fit_rss_lm(
    starts: FloatArray,
    rx: FloatArray,
    dh2: FloatArray,
    power_dbm: FloatArray,
    n_bounds: tuple[float, float],
    loss: Loss = "linear",
    f_scale: float = 1.0,
    max_iter: int = 100,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Minimise ``F`` from every start; returns ``(θ (S, 4), F (S,), converged (S,))``."""
    theta = np.array(starts, dtype=float)
    lo, hi = n_bounds
    theta[:, 3] = np.clip(theta[:, 3], lo, hi)
    s = theta.shape[0]
    mu, jac = _model(theta, rx, dh2)
    r = power_dbm - mu
    cost = robust_cost(r, loss, f_scale)
    lam = np.full(s, 1e-3)
    running = np.ones(s, dtype=bool)
    converged = np.zeros(s, dtype=bool)
    eye = np.eye(4)
    for _ in range(max_iter):
        if not running.any():
            break
        w = _weights(r, loss, f_scale)
        jw = jac * w[..., None]
        h = np.einsum("smi,smj->sij", jw, jac)
        g = np.einsum("smi,sm->si", jw, r)
        a = h + lam[:, None, None] * (h * eye)
        a += (
            1e-12
            * eye
            * np.maximum(np.abs(np.diagonal(h, axis1=1, axis2=2)).max(axis=1), 1.0)[:, None, None]
        )
        step = np.linalg.solve(a, g[..., None])[..., 0]
        n_new = theta[:, 3] + step[:, 3]
        hold = ((theta[:, 3] <= lo) & (n_new < lo)) | ((theta[:, 3] >= hi) & (n_new > hi))
        if hold.any():
            a_h = a[hold].copy()
            g_h = g[hold].copy()
            a_h[:, 3, :] = 0.0
            a_h[:, :, 3] = 0.0
            a_h[:, 3, 3] = 1.0
            g_h[:, 3] = 0.0
            step[hold] = np.linalg.solve(a_h, g_h[..., None])[..., 0]
        trial = theta + step
        trial[:, 3] = np.clip(trial[:, 3], lo, hi)
        mu_t, jac_t = _model(trial, rx, dh2)
        r_t = power_dbm - mu_t
        cost_t = robust_cost(r_t, loss, f_scale)
        accept = running & np.isfinite(cost_t) & (cost_t < cost)
        moved = np.hypot(*(trial[:, :2] - theta[:, :2]).T)
        small = (cost - cost_t <= FTOL * cost) | (moved < 1e-4)
        theta = np.where(accept[:, None], trial, theta)
        r = np.where(accept[:, None], r_t, r)
        jac = np.where(accept[:, None, None], jac_t, jac)
        cost = np.where(accept, cost_t, cost)
        lam = np.where(accept, np.maximum(lam / 10.0, 1e-15), lam * 10.0)
        done = (accept & small) | (running & (lam > 1e12))
        converged |= done
        running &= ~done
        if converged.any():
            running &= cost < cost[converged].min()
    return theta, cost, converged
