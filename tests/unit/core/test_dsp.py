r"""Shared DSP primitives (heimdall.core.dsp).

``occupied_band``: for an excess power uniform over ``[f_1, f_2]`` (bins aligned with the
band) the cumulative power is linear across it, so the 99 % band runs from
``f_1 + 0.005 W`` to ``f_2 − 0.005 W``: ``0.99 W``, centred on ``(f_1 + f_2) / 2``. A
triangular spectrum ``1 − |f − f_c| / h`` has cumulative ``1 − (1 − x/h)²/2`` on each side, so
the 0.5 % point lies ``h (1 − sqrt(0.01))`` = ``0.9 h`` from the centre: ``1.8 h`` wide.
``welch_dof``: one segment has 2 degrees of freedom; Hann at 50 % overlap tends to
``36 K / 19`` for many segments (Welch 1967; Percival & Walden 1993, eq. 292b).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.core.dsp import OBW_OUT, occupied_band, welch_dof


def test_occupied_band_of_a_flat_band() -> None:
    df = 10.0
    f = np.arange(-500.0, 500.0, df) + df / 2  # bin centres, edges on multiples of 10 Hz
    excess = np.where((f > -100) & (f < 200), 3.0, 0.0)  # 300 Hz from -100 to 200 Hz
    obw, centre = occupied_band(excess, f, df)
    assert obw == pytest.approx((1 - OBW_OUT) * 300.0, rel=1e-12)
    assert centre == pytest.approx(50.0, abs=1e-9)


def test_occupied_band_of_a_triangle() -> None:
    df, h = 0.01, 100.0
    f = np.arange(-200.0, 200.0, df) + df / 2
    excess = np.clip(1.0 - np.abs(f - 20.0) / h, 0.0, None)
    obw, centre = occupied_band(excess, f, df)
    assert obw == pytest.approx(2 * h * (1 - math.sqrt(OBW_OUT)), rel=1e-3)
    assert centre == pytest.approx(20.0, abs=1e-3)


def test_occupied_band_without_excess() -> None:
    obw, centre = occupied_band(np.full(8, -1.0), np.arange(8.0), 1.0)
    assert obw == 0.0 and math.isnan(centre)


def test_welch_dof_limits() -> None:
    assert welch_dof(256, 1) == pytest.approx(2.0)
    assert welch_dof(256, 2000) / 2000 == pytest.approx(36 / 19, rel=2e-3)
