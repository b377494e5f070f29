"""Shared estimator numerics (heimdall.ml.estimators._numerics), by hand."""

from __future__ import annotations

import numpy as np

from heimdall.ml.estimators._numerics import grid_minima, invert_spd


def test_invert_spd_mixed_units_and_singular() -> None:
    # metres² and dB²: 12 orders of magnitude apart on the diagonal, still well determined
    a = np.array([[1e6, 10.0], [10.0, 1e-6 + 1e-4]])
    inv = invert_spd(a)
    assert inv is not None
    det = a[0, 0] * a[1, 1] - a[0, 1] ** 2  # = 1
    expected = np.array([[a[1, 1], -a[0, 1]], [-a[0, 1], a[0, 0]]]) / det
    assert np.allclose(inv, expected, rtol=1e-9, atol=0.0)
    assert np.array_equal(inv, inv.T)
    assert invert_spd(np.array([[1.0, 1.0], [1.0, 1.0]])) is None  # rank 1
    assert invert_spd(np.array([[0.0, 0.0], [0.0, 1.0]])) is None  # a zero variance


def test_grid_minima_two_basins_in_order() -> None:
    x, y = np.meshgrid(np.linspace(-3, 3, 31), np.linspace(-3, 3, 31), indexing="ij")
    cost = np.minimum((x + 2) ** 2 + (y - 1) ** 2, 0.5 + (x - 1.6) ** 2 + (y + 1.4) ** 2)
    idx = grid_minima(cost, 3)
    assert len(idx) == 2
    i, j = np.unravel_index(idx, cost.shape)
    assert np.allclose((x[i[0], j[0]], y[i[0], j[0]]), (-2.0, 1.0))  # the deeper basin first
    assert np.allclose((x[i[1], j[1]], y[i[1], j[1]]), (1.6, -1.4))
