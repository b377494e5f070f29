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


#: Fraction of the excess power left outside the occupied bandwidth (ITU-R SM.328 "99 %
#: bandwidth": 0.5 % below the lower edge, 0.5 % above the upper one).
OBW_OUT = 0.01


def occupied_band(excess: np.ndarray, freqs_hz: np.ndarray, bin_hz: float) -> tuple[float, float]:
    """Occupied bandwidth and power-weighted centre of a channel's excess power.

    ``excess`` is each bin's power above the noise floor (any linear unit) at bin centres
    ``freqs_hz`` spaced ``bin_hz``. The cumulative excess over the bin edges is taken as
    piecewise linear; the occupied band runs from where it reaches ``OBW_OUT / 2`` of the total
    to where it reaches ``1 − OBW_OUT / 2`` (the β/2 rule of ITU-R SM.328, β = 1 %), and its
    centre is the mean frequency of the positive excess of the bins that overlap it.

    Returns
    -------
    (occupied_bw_hz, centre_hz) : tuple of float
        ``(0.0, nan)`` when the total excess is not positive (nothing above the noise), and
        the centre is ``nan`` when no overlapping bin has positive excess.
    """
    total = float(excess.sum())
    if not total > 0.0:
        return 0.0, float("nan")
    cum = np.concatenate(([0.0], np.cumsum(excess)))  # cum[i]: power below bin i's lower edge
    edges = np.concatenate((freqs_hz - bin_hz / 2.0, [freqs_hz[-1] + bin_hz / 2.0]))
    lo = _crossing(cum, edges, 0.5 * OBW_OUT * total)
    hi = _crossing(cum, edges, (1.0 - 0.5 * OBW_OUT) * total)
    band = (freqs_hz + bin_hz / 2.0 > lo) & (freqs_hz - bin_hz / 2.0 < hi)
    w = np.clip(excess[band], 0.0, None)
    centre = float(np.dot(freqs_hz[band], w) / w.sum()) if w.sum() > 0.0 else float("nan")
    return max(hi - lo, 0.0), centre


def _crossing(cum: np.ndarray, edges: np.ndarray, level: float) -> float:
    """Frequency where the piecewise-linear cumulative power first reaches ``level``."""
    i = int(np.argmax(cum >= level))  # first edge index at or above level (cum[-1] = total)
    if i == 0:
        return float(edges[0])
    c0, c1 = cum[i - 1], cum[i]
    frac = (level - c0) / (c1 - c0) if c1 > c0 else 1.0
    return float(edges[i - 1] + frac * (edges[i] - edges[i - 1]))
