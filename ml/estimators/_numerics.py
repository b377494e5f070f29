"""Numerical helpers shared by the estimators: a guarded SPD inverse, grid minima."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["grid_minima", "invert_spd"]

FloatArray = npt.NDArray[np.float64]

#: Largest condition number (of the correlation form) still inverted.
MAX_CONDITION = 1e12


def invert_spd(a: FloatArray) -> FloatArray | None:
    """Inverse of a symmetric positive definite matrix; None if (numerically) singular.

    The conditioning is judged on the correlation form ``D^{-1/2} A D^{-1/2}`` (D the
    diagonal), so that parameters in different units (metres, dB) do not make a
    well-determined matrix look singular. The result is symmetrised.
    """
    scale = np.sqrt(np.diag(a))
    if not np.all(scale > 0.0) or not np.all(np.isfinite(scale)):
        return None
    s = a / np.outer(scale, scale)
    if np.linalg.cond(s) > MAX_CONDITION:
        return None
    inv: FloatArray = np.linalg.inv(s) / np.outer(scale, scale)
    return 0.5 * (inv + inv.T)


def grid_minima(cost: FloatArray, k: int) -> npt.NDArray[np.intp]:
    """Flat indices of the k lowest local minima (8-neighbourhood) of a 2-D cost grid.

    Ties count as minima; a grid without one (impossible for finite costs, but NaN can
    do it) gives its global minimum.
    """
    padded = np.pad(cost, 1, constant_values=np.inf)
    is_min = np.ones(cost.shape, dtype=bool)
    rows, cols = cost.shape
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            if di or dj:
                is_min &= cost <= padded[1 + di : 1 + di + rows, 1 + dj : 1 + dj + cols]
    idx = np.flatnonzero(is_min)
    if idx.size == 0:
        idx = np.array([int(np.argmin(cost))])
    return idx[np.argsort(cost.ravel()[idx])[:k]]
