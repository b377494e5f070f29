r"""Error ellipses of a 2-D Gaussian position estimate.

For an estimate with error ``ε ~ N(0, Σ)`` in (east, north), the squared Mahalanobis
distance ``q = εᵀ Σ⁻¹ ε`` is χ² with 2 degrees of freedom, whose CDF is
``1 − exp(−q/2)``. The "k-sigma" ellipse ``{ε : εᵀ Σ⁻¹ ε ≤ k²}`` therefore contains the
truth with probability

.. math:: P(k) = 1 - e^{-k^2/2}

— 39.35 % at k = 1, 86.47 % at k = 2, 98.89 % at k = 3 (not the 68/95/99.7 % of 1-D);
the 95 % ellipse is k = sqrt(−2 ln 0.05) = 2.4477.

Its semi-axes are ``k sqrt(λ₁) ≥ k sqrt(λ₂)`` with ``λ`` the eigenvalues of Σ, and the
major axis points along the eigenvector of λ₁.

References
----------
- Y. Bar-Shalom, X. R. Li, T. Kirubarajan, *Estimation with Applications to Tracking and
  Navigation*, Wiley, 2001, §1.4.14 / §3.7 (χ² gates and probability ellipses).
- N. L. Johnson, S. Kotz, N. Balakrishnan, *Continuous Univariate Distributions*, Vol. 1,
  2nd ed., Wiley, 1994, ch. 18 (χ² distribution).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["coverage_probability", "error_ellipse", "k_for_probability", "mahalanobis2"]


def _cov2(cov: npt.ArrayLike) -> npt.NDArray[np.float64]:
    c = np.asarray(cov, dtype=float)
    if c.shape != (2, 2):
        raise ValueError(f"covariance must be 2x2, got shape {c.shape}")
    if not np.all(np.isfinite(c)):
        raise ValueError("covariance has non-finite entries")
    return 0.5 * (c + c.T)


def error_ellipse(cov: npt.ArrayLike, k_sigma: float = 1.0) -> tuple[float, float, float]:
    """Semi-axes and orientation of the k-sigma ellipse of a 2x2 covariance.

    Parameters
    ----------
    cov : array_like, shape (2, 2)
        Covariance of (east, north) in m²; symmetrised before use.
    k_sigma : float
        Scale k of the ellipse ``εᵀ Σ⁻¹ ε = k²`` (coverage :func:`coverage_probability`).

    Returns
    -------
    semi_major_m, semi_minor_m : float
        ``k sqrt(λ_max)``, ``k sqrt(λ_min)`` (negative eigenvalues from round-off clamp to 0).
    angle_deg : float
        Direction of the major axis, degrees counter-clockwise from east (towards north),
        in (−90, 90].
    """
    c = _cov2(cov)
    a, b, d = c[0, 0], c[0, 1], c[1, 1]
    # closed form for the symmetric 2x2 eigenproblem
    mean = 0.5 * (a + d)
    rad = math.hypot(0.5 * (a - d), b)
    lam1 = max(mean + rad, 0.0)
    lam2 = max(mean - rad, 0.0)
    angle = 0.5 * math.degrees(math.atan2(2.0 * b, a - d))  # in (−90, 90]
    if angle <= -90.0:
        angle += 180.0
    return k_sigma * math.sqrt(lam1), k_sigma * math.sqrt(lam2), angle


def coverage_probability(k: float) -> float:
    """Probability that a 2-D Gaussian error lies inside its k-sigma ellipse: ``1 − e^{−k²/2}``."""
    return -math.expm1(-0.5 * k * k)


def k_for_probability(p: float) -> float:
    """Inverse of :func:`coverage_probability`: ``k = sqrt(−2 ln(1 − p))``, 0 ≤ p < 1."""
    if not 0.0 <= p < 1.0:
        raise ValueError(f"probability must be in [0, 1), got {p}")
    return math.sqrt(-2.0 * math.log1p(-p))


def mahalanobis2(err: npt.ArrayLike, cov: npt.ArrayLike) -> float:
    """Squared Mahalanobis distance ``εᵀ Σ⁻¹ ε`` of a 2-D error (χ²₂ if ε ~ N(0, Σ)).

    Raises
    ------
    numpy.linalg.LinAlgError
        ``cov`` is singular.
    """
    e = np.asarray(err, dtype=float).reshape(2)
    c = _cov2(cov)
    return float(e @ np.linalg.solve(c, e))
