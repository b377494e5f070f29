"""Hold-out matched to the test rows' gap in time (heimdall.ml.powder.holdout).

Synthetic walk: one transmitter walks a lawn-mower path over 1.2 km × 1.2 km (lanes 40 m
apart) at 1.5 m/s with a row every 2 s. Random test rows sit one row (2 s) from a training
row, so the random hold-out (also ~2 s) is chosen; test rows that fill whole 300 m blocks
are minutes from the nearest training row along the lanes, so a spatial hold-out of large
cells is chosen; test rows from another day take the hold-out with the largest gap.
"""

from __future__ import annotations

import numpy as np
import pytest

from heimdall.ml.powder.holdout import CELL_CANDIDATES_M, matched_holdout, median_time_gap_s


def _walk() -> tuple[np.ndarray, np.ndarray]:
    step_m, lane_m, side_m = 3.0, 40.0, 1200.0
    pts = []
    for j, north in enumerate(np.arange(0.0, side_m, lane_m)):
        east = np.arange(0.0, side_m, step_m)
        pts.append(np.c_[east if j % 2 == 0 else east[::-1], np.full(east.size, north)])
    pos = np.concatenate(pts)
    return 2.0 * np.arange(pos.shape[0]), pos


def test_median_time_gap_by_hand() -> None:
    # gaps of 1, 4 and 10 s to the nearest reference time
    assert median_time_gap_s([20.0, 0.0, 10.0], [1.0, 14.0, 30.0]) == 4.0
    with pytest.raises(ValueError, match="at least one"):
        median_time_gap_s([], [1.0])


def test_random_test_rows_get_a_random_holdout() -> None:
    t, pos = _walk()
    rng = np.random.default_rng(3)
    is_test = rng.random(t.size) < 0.15
    c = matched_holdout(t[~is_test], pos[~is_test], t[is_test])
    assert c.test_gap_s == 2.0
    assert c.kind == "random" and c.cell_m == 0.0


def test_test_rows_in_whole_blocks_get_a_spatial_holdout() -> None:
    t, pos = _walk()
    block = np.floor(pos / 300.0).astype(int)
    is_test = ((block[:, 0] + 2 * block[:, 1]) % 5) == 0  # a fifth of the 300 m blocks
    c = matched_holdout(t[~is_test], pos[~is_test], t[is_test])
    assert c.test_gap_s > 60.0
    assert c.kind == "spatial" and c.cell_m >= 200.0
    assert set(c.candidate_gaps_s) == {"random", *(f"{x:g} m" for x in CELL_CANDIDATES_M)}


def test_test_rows_from_another_day_get_the_farthest_holdout() -> None:
    t, pos = _walk()
    c = matched_holdout(t, pos, t[:50] + 86_400.0)
    widest = max(c.candidate_gaps_s.values())
    assert c.kind == "spatial"
    assert c.candidate_gaps_s[f"{c.cell_m:g} m"] == widest
