r"""The a-posteriori variance factor of TDOA fixes, pooled over a stream of fixes.

A fix from ``m`` receivers has ``ν = m − 3`` degrees of freedom beyond the position (N − 1
independent lag differences, two coordinates). If the lags' covariance ``Σ`` is right, the fit's
weighted residual ``χ² = rᵀ Σ⁻¹ r`` is ``χ²_ν`` distributed, with mean ``ν``; if ``Σ`` is off by
a common factor ``s`` (``Σ_true = s Σ``), ``E[χ²] = s ν``. The factor is therefore estimated
from the residuals alone — no knowledge of the transmitter's position — as the unit-weight
variance of least-squares adjustment (Koch 1999, §3.2.4; Teunissen 2000, §4.3):

.. math:: \hat s = \frac{ν_0 + Σ_k w_k χ²_k}{ν_0 + Σ_k w_k ν_k},

pooled over the fixes ``k`` seen so far, with a prior of ``ν_0`` degrees of freedom at
``s = 1`` (so the first fixes, or a network of three receivers that has no redundancy, keep the
sigmas as measured) and a forgetting weight ``w_k = λ^{K−k}`` that lets the factor follow a
change of conditions (``memory_dof`` ≈ the degrees of freedom it remembers: ``λ`` such that
``Σ w ν ≈ memory_dof`` in the steady state). Its relative standard error is about
``sqrt(2 / (ν_0 + Σ w ν))``: 13 % after 120 degrees of freedom (40 fixes of six receivers).

Why it is needed, measured: on the ``hf-tdoa`` scenario the pairs' sub-window sigmas are 1.14×
the spread of their errors against the truth, and the pooled ``χ²/ν`` of the same 40 fixes
(120 dof, without the truth) is 0.73 ≈ 1/1.14² — the redundancy sees what the truth sees. A
factor above 1 carries what no pair statistic shows (per-receiver delays, multipath common to a
receiver); below 1, the lag estimator's pessimism. Both are scaled, not only rejections.

What it cannot see: errors the fit absorbs (with three receivers nothing; in general the part
of the lag errors along the position's directions), so with little redundancy it stays near 1.

References
----------
- K.-R. Koch, *Parameter Estimation and Hypothesis Testing in Linear Models*, 2nd ed.,
  Springer, 1999.
- P. J. G. Teunissen, *Adjustment Theory*, Delft University Press, 2000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = ["PooledVariance"]


@dataclass
class PooledVariance:
    """The pooled a-posteriori variance factor of a stream of fixes (module docstring).

    Parameters
    ----------
    prior_dof : float
        ``ν_0``: degrees of freedom of the prior at factor 1.
    memory_dof : float
        Degrees of freedom the estimate remembers (exponential forgetting); ``inf`` keeps all.
    min_factor, max_factor : float
        The factor is clipped to this range (a guard against a run of degenerate fits).

    Examples
    --------
    >>> pv = PooledVariance(prior_dof=6)
    >>> pv.factor
    1.0
    >>> pv.update(chi2=1.5, dof=3)
    >>> round(pv.factor, 3)
    0.833
    """

    prior_dof: float = 12.0
    memory_dof: float = 600.0
    min_factor: float = 0.1
    max_factor: float = 100.0
    _chi2: float = field(default=0.0, init=False, repr=False)
    _dof: float = field(default=0.0, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.prior_dof > 0:
            raise ValueError(f"prior_dof must be positive, got {self.prior_dof}")
        if not self.memory_dof > 0:
            raise ValueError(f"memory_dof must be positive, got {self.memory_dof}")
        if not 0 < self.min_factor <= 1 <= self.max_factor:
            raise ValueError("need 0 < min_factor <= 1 <= max_factor")

    @property
    def factor(self) -> float:
        """``ŝ``: multiply the lags' covariance by this before the fix."""
        s = (self.prior_dof + self._chi2) / (self.prior_dof + self._dof)
        return min(max(s, self.min_factor), self.max_factor)

    @property
    def dof(self) -> float:
        """The (weighted) degrees of freedom the estimate rests on, prior excluded."""
        return self._dof

    def update(self, chi2: float, dof: int) -> None:
        """Add one fix's ``χ²`` (against the *unscaled* sigmas) with its degrees of freedom.

        Fixes without redundancy (``dof ≤ 0``) and non-finite ``χ²`` are ignored.
        """
        if dof <= 0 or not math.isfinite(chi2) or chi2 < 0:
            return
        keep = 1.0 - dof / self.memory_dof if math.isfinite(self.memory_dof) else 1.0
        keep = max(keep, 0.0)
        self._chi2 = keep * self._chi2 + chi2
        self._dof = keep * self._dof + dof

    def reset(self) -> None:
        """Forget every fix (back to the prior)."""
        self._chi2 = 0.0
        self._dof = 0.0
