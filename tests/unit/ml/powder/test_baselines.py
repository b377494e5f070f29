"""k-NN on a hand-computable case; the RSS baseline recovers its own model's parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heimdall.ml.powder.baselines import KnnFingerprint, RssLogDistance
from heimdall.ml.powder.data import PowderSamples, load_powder_csv

from ._tiny import write_tiny


def _samples(rss: list[list[float]], tx: list[list[float]] | None) -> PowderSamples:
    r = np.array(rss, dtype=float)
    n, m = r.shape
    mask = r != -101.0
    return PowderSamples(
        timestamps=np.array([f"t{i}" for i in range(n)]),
        rx_names=tuple(f"r{j}" for j in range(m)),
        is_mobile=np.zeros(m, dtype=bool),
        rx_enu=np.zeros((n, m, 2)),
        rss_dbm=np.where(mask, r, np.nan),
        rx_index=np.tile(np.arange(m), (n, 1)),
        mask=mask,
        tx_enu=None if tx is None else np.array(tx, dtype=float),
    )


def test_knn_hand_case() -> None:
    train = _samples(
        [[-50, -60], [-52, -60], [-80, -101], [-90, -40]],
        [[0, 0], [10, 0], [500, 500], [-300, 0]],
    )
    knn = KnnFingerprint(k=2, floor_m=1.0, holdout_fraction=0.0).fit(train)
    # query (-51, -60): nearest rows 0 and 1 (distance 1 each) -> mean (5, 0);
    # spread: ((±5)², 0) / 2 = 25 on east, plus the 1 m² floor
    q = _samples([[-51, -60]], None)
    mu, cov = knn.predict(q)
    np.testing.assert_allclose(mu, [[5.0, 0.0]])
    np.testing.assert_allclose(cov, [[[26.0, 0.0], [0.0, 1.0]]])
    # a missing reading reads -101: (-80, -101) matches row 2 exactly, then row 1
    # (d² = 28² + 41² = 2465 < 30² + 41² = 2581 of row 0) -> mean of (500, 500), (10, 0)
    mu2, _ = knn.predict(_samples([[-80, -101]], None))
    np.testing.assert_allclose(mu2, [[255.0, 250.0]])


def test_rss_baseline_fits_offsets_and_localises(tmp_path: Path) -> None:
    s = load_powder_csv(write_tiny(tmp_path, n=40))
    rss = RssLogDistance().fit(s)
    assert rss.exponent == pytest.approx(2.5, abs=0.2)  # the generator's 25 dB/decade
    assert rss.sigma_db == pytest.approx(2.0, abs=0.6)
    mu, cov = rss.predict(s.subset(np.arange(10)))
    assert s.tx_enu is not None
    err = np.linalg.norm(mu - s.tx_enu[:10], axis=1)
    assert np.median(err) < 60.0
    assert np.all(np.linalg.eigvalsh(cov) > 0)
