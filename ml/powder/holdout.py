r"""A validation hold-out as far from the fitting rows as the test rows are from training.

The covariance is calibrated on held-out training rows, so those rows should be as new to
the model as the test rows will be. How new is measured without any truth, by time: the
POWDER rows are walks and drives, so a row's gap in time to the nearest row of a set is a
proxy for its distance to that set's positions. The dataset's README: a test row is
typically 4 s (``random_test``) or 26 s (``grid_test``) from the nearest training row.

:func:`matched_holdout` computes the test rows' median gap to the training rows,
:math:`g_{test}`, and, for each candidate hold-out of the training rows — random rows, or
whole square cells of transmitter positions of side :data:`CELL_CANDIDATES_M` — the held-out
rows' median gap to the remaining rows, :math:`g_h`, and takes the candidate with the
smallest :math:`|\log(g_h / g_{test})|`. Measured on the data set (seed 0, 15 % held out):

================  =======  ===========================================================
test rows          g_test   candidates' g_h (s): random; cells 100 / 150 / 200 / 250 / 300 / 400 m
================  =======  ===========================================================
``random_test``    4 s      4; 13 / 15 / 16 / 42 / 25 / 55  → random
``grid_test``      26 s     4; 12 / 16 / 15.5 / 22 / 26 / 78 → 300 m cells
================  =======  ===========================================================

and the held-out rows' median distance to the nearest fitting position follows: 8.6 m
(random) and 67 m (300 m cells), against 8.1 m and 51 m for the test rows (measured with
their truth, only to check the proxy). Test rows from another day are hours from every
training row: the largest cells are taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from heimdall.ml.powder.baselines import random_holdout, spatial_holdout

__all__ = ["CELL_CANDIDATES_M", "HoldoutChoice", "matched_holdout", "median_time_gap_s"]

FloatArray = npt.NDArray[np.float64]

#: Cell sides (m) of the spatial hold-outs :func:`matched_holdout` chooses among.
CELL_CANDIDATES_M = (100.0, 150.0, 200.0, 250.0, 300.0, 400.0)


def median_time_gap_s(reference_s: npt.ArrayLike, query_s: npt.ArrayLike) -> float:
    """Median over ``query_s`` of the gap to the nearest time in ``reference_s``, s.

    Raises
    ------
    ValueError
        When either set is empty.
    """
    ref = np.sort(np.asarray(reference_s, dtype=float).reshape(-1))
    q = np.asarray(query_s, dtype=float).reshape(-1)
    if ref.size == 0 or q.size == 0:
        raise ValueError("time gaps need at least one reference and one query time")
    i = np.searchsorted(ref, q)
    before = ref[np.clip(i - 1, 0, ref.size - 1)]
    after = ref[np.clip(i, 0, ref.size - 1)]
    return float(np.median(np.minimum(np.abs(q - before), np.abs(after - q))))


@dataclass(frozen=True)
class HoldoutChoice:
    """The chosen hold-out and the gaps that chose it."""

    kind: str  # "random" or "spatial"
    cell_m: float  # cell side of a spatial hold-out (0 for random)
    test_gap_s: float  # the test rows' median gap to the training rows
    holdout_gap_s: float  # the chosen hold-out rows' median gap to the fitting rows
    candidate_gaps_s: dict[str, float]


def matched_holdout(
    train_times_s: npt.ArrayLike,
    train_positions_m: npt.ArrayLike,
    test_times_s: npt.ArrayLike,
    *,
    fraction: float = 0.15,
    seed: int = 0,
    cells_m: tuple[float, ...] = CELL_CANDIDATES_M,
) -> HoldoutChoice:
    """The hold-out whose rows are as far in time from the rest as the test rows (module notes).

    Parameters
    ----------
    train_times_s, train_positions_m : array_like
        Training rows' times (s) and transmitter positions (n, 2), m.
    test_times_s : array_like
        Test rows' times, s (no truth is needed).
    fraction, seed : float, int
        As the hold-out the trainer will draw (same fraction and seed: same rows).
    cells_m : tuple of float
        Spatial candidates' cell sides, m.
    """
    t = np.asarray(train_times_s, dtype=float).reshape(-1)
    y = np.asarray(train_positions_m, dtype=float).reshape(-1, 2)
    g_test = median_time_gap_s(t, test_times_s)
    gaps: dict[str, float] = {}
    fit_i, val_i = random_holdout(t.size, fraction, seed)
    gaps["random"] = median_time_gap_s(t[fit_i], t[val_i])
    for c in cells_m:
        fit_i, val_i = spatial_holdout(y, fraction, seed, c)
        gaps[f"{c:g} m"] = median_time_gap_s(t[fit_i], t[val_i])
    floor = 1e-3  # s: equal times (gap 0) must not give log(0)

    def distance(name: str) -> float:
        return abs(np.log((gaps[name] + floor) / (g_test + floor)))

    best = min(gaps, key=distance)  # dict order: random first, then cells small → large
    if best == "random":
        return HoldoutChoice("random", 0.0, g_test, gaps[best], gaps)
    return HoldoutChoice("spatial", float(best.removesuffix(" m")), g_test, gaps[best], gaps)
