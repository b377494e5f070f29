"""DSP primitives shared by the adapters, the simulator and the streams."""

from __future__ import annotations

import numpy as np
from scipy import signal as sps


def welch_dof(nperseg: int, n_segments: int) -> float:
    """Equivalent χ² degrees of freedom of a Hann, 50 %-overlap Welch average.

    Parameters
    ----------
    nperseg : int
        Segment length L.
    n_segments : int
        Number of averaged segments K.

    Returns
    -------
    float
        ``ν = 2K / (1 + 2 Σ_{m=1}^{K−1} (1 − m/K) ρ(m)²)``, ``ρ(m)`` the normalised window
        overlap correlation at a shift of ``m·L/2`` (Percival & Walden 1993, eq. 292b).
    """
    w = np.asarray(sps.get_window("hann", nperseg), dtype=float)
    step = nperseg - nperseg // 2
    e = float(np.dot(w, w))
    denom = 1.0
    for m in range(1, n_segments):
        shift = m * step
        if shift >= nperseg:
            break
        rho = float(np.dot(w[: nperseg - shift], w[shift:])) / e
        denom += 2.0 * (1.0 - m / n_segments) * rho * rho
    return 2.0 * n_segments / denom
