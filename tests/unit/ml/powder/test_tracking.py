"""Tracking POWDER fixes in time order (heimdall.ml.powder.evaluate.track_in_time_order)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")

from heimdall.ml.estimators.track import TrackConfig, track_positions
from heimdall.ml.powder.data import load_powder_csv
from heimdall.ml.powder.evaluate import times_s, track_in_time_order

from ._tiny import write_tiny


def test_rows_out_of_time_order_are_tracked_in_time_order(tmp_path: Path) -> None:
    """Shuffling the rows shuffles the tracked output the same way (the order is restored)."""
    s = load_powder_csv(write_tiny(tmp_path, n=30))
    rng = np.random.default_rng(0)
    mean = rng.normal(0.0, 100.0, size=(len(s), 2))
    cov = np.repeat(np.eye(2)[None] * 400.0, len(s), axis=0)
    cfg = TrackConfig(accel_psd_m2_s3=0.1)
    t = times_s(s)
    assert np.all(np.diff(t) > 0) and t[1] - t[0] == pytest.approx(1.0)
    ref_m, ref_c = track_positions(t, mean, cov, cfg)
    perm = rng.permutation(len(s))
    got_m, got_c = track_in_time_order(s.subset(perm), mean[perm], cov[perm], cfg)
    np.testing.assert_allclose(got_m, ref_m[perm])
    np.testing.assert_allclose(got_c, ref_c[perm])


def test_timestamps_that_are_not_times_are_refused(tmp_path: Path) -> None:
    s = load_powder_csv(write_tiny(tmp_path, n=5))
    bad = replace(s, timestamps=np.array(["row1", "row2", "row3", "row4", "row5"]))
    with pytest.raises(ValueError, match="ISO-8601"):
        times_s(bad)
