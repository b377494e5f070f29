"""The place model's ellipse: the extrapolation term on synthetic errors, and its coverage on
the shared POWDER data's ``time`` protocol and ``random_test`` split, beside the RSS
baseline's (issue 14, items 1 and 3). The shared-data tests take a few minutes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from heimdall.ml.evaluation.metrics import TARGET_COVERAGE, mahalanobis2_batch
from heimdall.ml.powder.data import DEFAULT_DATA_DIR, load_powder_csv, load_splits
from heimdall.ml.powder.place_split import evaluate_place_split
from heimdall.ml.powder.protocol_eval import (
    _place_method,
    fit_place_calibration,
    place_covariance,
    pooled_metrics,
)
from heimdall.ml.powder.protocols import protocol_cases
from heimdall.ml.powder.rss_grid import network_margin_m

#: Coverage band of issue 14's targets.
BAND = 0.05


def test_extrapolation_term_calibrates_errors_that_grow_with_distance() -> None:
    """Errors N(0, (10² + (0.5 d)²) I) with a stated 10² I: a scale and a floor alone cannot
    cover both the near and the far rows; the slope a = 0.5 brings both to the χ²₂ values."""
    rng = np.random.default_rng(7)
    n = 6000
    d = rng.uniform(0.0, 600.0, n)
    sd = np.sqrt(100.0 + (0.5 * d) ** 2)
    err = rng.normal(size=(n, 2)) * sd[:, None]
    cov = np.broadcast_to(100.0 * np.eye(2), (n, 2, 2)).copy()
    s, f2, a = fit_place_calibration(err, cov, d)
    assert a == 0.5
    q = mahalanobis2_batch(err, place_covariance(cov, d, (s, f2, a)))
    for k, target in zip((1.0, 4.0), TARGET_COVERAGE, strict=True):
        se = math.sqrt(target * (1.0 - target) / n)
        assert abs(np.mean(q <= k) - target) < 4.0 * se


def test_network_margin_is_half_the_receivers_box() -> None:
    data = load_powder_csv(DEFAULT_DATA_DIR / "single_tx.csv") if _shared() else None
    if data is None:
        pytest.skip("shared POWDER data not found")
    fixed = data.mask & ~data.is_mobile[None, :]
    rx = data.rx_enu[fixed]
    assert network_margin_m(data) == pytest.approx(0.5 * np.ptp(rx, axis=0).max())


def _shared() -> bool:
    return (DEFAULT_DATA_DIR / "single_tx.csv").exists()


@pytest.fixture(scope="module")
def time_protocol_place() -> dict[str, float]:
    """The place model on ``--protocol time`` (seed 0): pooled metrics of the test day."""
    if not _shared():
        pytest.skip("shared POWDER data not found")
    data = load_powder_csv(DEFAULT_DATA_DIR / "single_tx.csv")
    splits = load_splits(DEFAULT_DATA_DIR / "splits.json")
    _, cases = protocol_cases(data, splits, "time", draws=1, seed=0)
    case = cases[0]
    assert case.test.tx_enu is not None
    mu, cov = _place_method("time", 0, {"n_withheld": 4, "n_removed": 3})(
        case.train, case.test, False
    )
    err = mu - case.test.tx_enu
    return pooled_metrics(err, mahalanobis2_batch(err, cov))


def test_time_protocol_place_1sigma_within_band(time_protocol_place: dict[str, float]) -> None:
    assert abs(time_protocol_place["coverage_1sigma"] - TARGET_COVERAGE[0]) <= BAND


@pytest.mark.xfail(
    strict=True,
    reason="measured (seed 0): 76.5 % at 2σ (target 86.5 %), short at every distance from "
    "the training places (78.7 % within 100 m, 71.4 % beyond 300 m): one (s, f, a) fitted on "
    "the three leave-one-day-out folds leaves the folds themselves at 62 %, 82 %, 92 % at "
    "2σ; the tails change from day to day and 07-11 is among the heavy ones",
)
def test_time_protocol_place_2sigma_within_band(time_protocol_place: dict[str, float]) -> None:
    assert abs(time_protocol_place["coverage_2sigma"] - TARGET_COVERAGE[1]) <= BAND


@pytest.fixture(scope="module")
def random_test_place() -> dict[str, Any]:
    """``eval powder --split random_test --model place`` (seed 0) on the shared data."""
    if not _shared():
        pytest.skip("shared POWDER data not found")
    return evaluate_place_split(DEFAULT_DATA_DIR / "single_tx.csv", split="random_test")


def test_random_test_place_coverage_within_band(random_test_place: dict[str, Any]) -> None:
    m = random_test_place["models"]["place"]
    assert abs(m["coverage_1sigma"] - TARGET_COVERAGE[0]) <= BAND
    assert abs(m["coverage_2sigma"] - TARGET_COVERAGE[1]) <= BAND


@pytest.mark.xfail(
    strict=True,
    reason="measured (seed 0): the RSS baseline's calibrated Gauss-Newton ellipse covers "
    "48.9 % / 80.9 % on random_test (41.7 / 76.7 % on grid_test): its errors are heavier-"
    "tailed than a Gaussian, and one scale and floor make 1σ too wide and 2σ too narrow",
)
def test_random_test_rss_coverage_within_band(random_test_place: dict[str, Any]) -> None:
    m = random_test_place["baselines"]["rss"]
    assert abs(m["coverage_1sigma"] - TARGET_COVERAGE[0]) <= BAND
    assert abs(m["coverage_2sigma"] - TARGET_COVERAGE[1]) <= BAND
