"""Accuracy of the set model trained on seed-network simulated data, on held-out samples.

Reported (``-s`` prints it; also a ``record_property``), asserted only against sanity
bounds: the model must be far better than knowing nothing — the constant guess "the middle
of the area" is off by ~50 km (median) over the seed network's ~155 km × 130 km area, and a
model that learned the geometry at all is within a few km — and its calibrated 2σ ellipses
must cover between 60 % and 99 % (the target is 86.5 %; a few thousand training samples
leave the calibration loose). The classical RSS estimator is model-exact on this scenario
(free space, no shadowing: ~5 m median), so it is reported, not used as a bound.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")

from heimdall.core.settings import load_settings
from heimdall.infra.cli_train import Source, run_training

pytestmark = pytest.mark.integration


def test_seed_network_model_accuracy(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    settings = load_settings(data_dir=tmp_path / "heimdall")
    report, _, test = run_training(
        settings,
        source=Source.sim,
        samples=6000,
        epochs=8,
        members=1,
        seed=0,
        rss_samples=100,
        progress=False,
    )
    m, rss = report["test"], report["rss"]
    constant = np.median(np.hypot(*(test.y_enu_m - test.y_enu_m.mean(axis=0)).T))
    line = (
        f"seed-network, {report['n_train']} training / {report['n_test']} test samples, "
        f"trained {report['seconds']['train']:.0f} s: model median {m['median_m']:.0f} m, "
        f"P95 {m['p95_m']:.0f} m, 1σ/2σ coverage {m['coverage_1sigma']:.2f}/"
        f"{m['coverage_2sigma']:.2f}; RSS ML median {rss['median_m']:.1f} m on "
        f"{int(rss['n'])}; constant guess median {constant / 1000:.0f} km"
    )
    print(line)
    record_property("seed_network_accuracy", line)
    assert constant > 30_000
    assert m["median_m"] < 0.1 * constant
    assert 0.6 <= m["coverage_2sigma"] <= 0.99
