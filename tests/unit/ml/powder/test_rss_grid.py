"""The RSS grid posterior against its own generative model: exact Bayes is calibrated, and
an unseen receiver's offset is recovered from unlabelled rows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from heimdall.ml.evaluation.metrics import mahalanobis2_batch
from heimdall.ml.powder.data import PowderSamples
from heimdall.ml.powder.rss_grid import RssGridPosterior

RX = np.array(
    [[-400.0, -400.0], [400.0, -400.0], [400.0, 400.0], [-400.0, 400.0], [0.0, 0.0],
     [0.0, 500.0], [500.0, 0.0], [-500.0, 0.0]]
)  # fmt: skip
EXPONENT, P0_DBM, SIGMA_DB = 3.0, -20.0, 3.0


def _rows(n: int, seed: int, offsets_db: np.ndarray, names: list[str]) -> PowderSamples:
    """Transmitters uniform on the 600 m square, powers from the log-distance law + offsets."""
    rng = np.random.default_rng(seed)
    tx = rng.uniform(-300.0, 300.0, size=(n, 2))
    d = np.linalg.norm(RX[None] - tx[:, None], axis=2)
    p0 = P0_DBM + rng.normal(0.0, 2.0, size=(n, 1))  # each row's own transmitted power
    rss = p0 - 10.0 * EXPONENT * np.log10(d) + offsets_db + rng.normal(0.0, SIGMA_DB, d.shape)
    r = len(names)
    return PowderSamples(
        timestamps=np.array([f"2022-07-05 10:00:{i % 60:02d}" for i in range(n)]),
        rx_names=tuple(names),
        is_mobile=np.zeros(r, dtype=bool),
        rx_enu=np.broadcast_to(RX[:r], (n, r, 2)).copy(),
        rss_dbm=rss[:, :r],
        rx_index=np.tile(np.arange(r, dtype=np.int64), (n, 1)),
        mask=np.ones((n, r), dtype=bool),
        tx_enu=tx,
    )


def test_exact_posterior_is_calibrated() -> None:
    """Uniform prior = the generator's, T = 1: the posterior's ellipses cover 1 − e^{−k²/2}."""
    names = [f"rx{j}" for j in range(8)]
    off = np.zeros(8)
    model = RssGridPosterior(
        cell_m=10.0, margin_m=0.0, temperature=1.0, prior_uniform=1.0, self_calibrate=False
    ).fit(_rows(800, 0, off, names))
    assert model.rss.exponent == pytest.approx(EXPONENT, abs=0.1)
    assert model.rss.sigma_db == pytest.approx(math.hypot(SIGMA_DB, 2.0), abs=0.4)
    # the training residual includes the rows' power spread (2 dB); the posterior profiles
    # P0 out per row, so its σ is the shadowing's alone
    model.rss.sigma_db = SIGMA_DB
    test = _rows(600, 1, off, names)
    mu, cov = model.predict(test)
    assert test.tx_enu is not None
    q = mahalanobis2_batch(mu - test.tx_enu, cov)
    n = q.size
    for k in (1.0, 2.0):
        p = 1.0 - math.exp(-0.5 * k * k)
        assert abs(np.mean(q <= k * k) - p) < 4.0 * math.sqrt(p * (1.0 - p) / n)


def test_self_calibration_recovers_an_unseen_receivers_offset() -> None:
    names = [f"rx{j}" for j in range(8)]
    off = np.zeros(8)
    off[7] = 12.0  # rx7: a hotter antenna, never seen in training
    train = _rows(400, 2, off, names[:7])
    test = _rows(300, 3, off, names)
    model = RssGridPosterior(cell_m=10.0, margin_m=0.0, prior_uniform=1.0).fit(train)
    assert "rx7" not in model.offsets_db
    est = model._self_calibration(test, test.mask)
    # training offsets are relative to the training receivers' mean (0 here): rx7's is 12 dB
    assert est["rx7"] == pytest.approx(12.0 + np.mean(list(model.offsets_db.values())), abs=1.0)
    assert test.tx_enu is not None
    err_cal = np.median(np.hypot(*(model.predict(test)[0] - test.tx_enu).T))
    model.self_calibrate = False
    err_raw = np.median(np.hypot(*(model.predict(test)[0] - test.tx_enu).T))
    assert err_cal < err_raw


def test_residual_field_learns_a_shadow_where_the_rows_went() -> None:
    """rx0 reads 8 dB low east of x = 0: its field is ≈ −8 dB there, ≈ 0 west, 0 far away."""
    names = [f"rx{j}" for j in range(8)]
    rows = _rows(1500, 4, np.zeros(8), names)
    assert rows.tx_enu is not None
    rows.rss_dbm[rows.tx_enu[:, 0] > 0.0, 0] -= 8.0
    model = RssGridPosterior(cell_m=20.0, margin_m=400.0, residual_blur_m=40.0).fit(rows)
    f = model.fields_db["rx0"]
    g = model.grid
    east = (g[:, 0] > 100.0) & (g[:, 0] < 250.0) & (np.abs(g[:, 1]) < 250.0)
    west = (g[:, 0] < -100.0) & (g[:, 0] > -250.0) & (np.abs(g[:, 1]) < 250.0)
    far = np.abs(g).max(axis=1) > 550.0  # > 250 m (6 kernel widths) from every row
    # the fitted offset takes part of the step (the law is fitted to all rows): the field
    # holds the rest, so the east-west difference is the 8 dB step
    assert np.mean(f[east]) - np.mean(f[west]) == pytest.approx(-8.0, abs=0.6)
    assert np.abs(f[far]).max() < 1e-6
