"""Protocol scoring: coverage against a Gaussian of known covariance, cross-day folds, and
``eval powder --protocol`` end to end on a tiny several-day data set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from heimdall.infra.cli_powder import eval_powder
from heimdall.ml.evaluation.metrics import mahalanobis2_batch
from heimdall.ml.powder.data import PowderSamples, load_powder_csv
from heimdall.ml.powder.protocol_eval import (
    PROTOCOL_KEYS,
    cross_day_cases,
    evaluate_protocol,
    fit_knn_for_protocol,
    pooled_metrics,
)
from heimdall.ml.powder.protocols import sample_days

from ._days import DAYS, synthetic, write_days


def test_coverage_of_a_gaussian_with_known_covariance() -> None:
    """Errors drawn from N(0, Σ) fall in their kσ ellipse with P = 1 − exp(−k²/2)."""
    rng = np.random.default_rng(42)
    n = 20_000
    cov = np.array([[900.0, 300.0], [300.0, 400.0]])
    err = rng.multivariate_normal([0.0, 0.0], cov, size=n)
    m = pooled_metrics(err, mahalanobis2_batch(err, np.broadcast_to(cov, (n, 2, 2))))
    for key, k in (("coverage_1sigma", 1.0), ("coverage_2sigma", 2.0)):
        p = 1.0 - math.exp(-0.5 * k * k)  # 39.35 %, 86.47 %
        sd = math.sqrt(p * (1.0 - p) / n)  # binomial standard deviation of the fraction
        assert abs(m[key] - p) < 4.0 * sd
    # radial error of this Gaussian: its median and P95 from the same draw, by definition
    r = np.hypot(err[:, 0], err[:, 1])
    assert m["median_m"] == pytest.approx(np.median(r))
    assert m["p95_m"] == pytest.approx(np.percentile(r, 95.0))
    # a covariance 4× too small doubles every Mahalanobis radius: its 2σ ellipse is the true
    # 1σ one, and its 1σ ellipse covers P(q ≤ 1/4) = 1 − exp(−1/8) = 11.75 %
    small = pooled_metrics(err, mahalanobis2_batch(err, np.broadcast_to(cov / 4.0, (n, 2, 2))))
    assert small["coverage_2sigma"] == pytest.approx(m["coverage_1sigma"], abs=1e-12)
    p8 = 1.0 - math.exp(-1.0 / 8.0)
    assert abs(small["coverage_1sigma"] - p8) < 4.0 * math.sqrt(p8 * (1.0 - p8) / n)


def _three_days() -> PowderSamples:
    days = [d for d in DAYS for _ in range(10)]
    return synthetic(days, [f"rx{j}" for j in range(8)], np.ones((30, 8), dtype=bool))


def test_cross_day_folds_hold_out_one_day_and_imitate_the_churn() -> None:
    s = _three_days()
    cases = cross_day_cases(s, "churn", 0, n_withheld=2, n_removed=1)
    assert len(cases) == 3
    for day, c in zip(DAYS, cases, strict=True):
        assert set(sample_days(c.test)) == {day} and day not in set(sample_days(c.train))
        assert c.draw is not None and len(c.draw.withheld) == 2 and len(c.draw.removed) == 1
        assert not set(c.draw.withheld) & set(c.train.rx_names)
        assert not set(c.draw.removed) & set(c.test.rx_names)
    plain = cross_day_cases(s, "time", 0)
    assert all(c.draw is None and len(c.test) == 10 for c in plain)


def test_knn_calibrated_across_days_covers_its_cross_validation_rows(tmp_path: Path) -> None:
    """The fitted (s, f²) makes the cross-day predictions cover about 39 %/86 %."""
    s = load_powder_csv(write_days(tmp_path, n=150))
    knn, folds = fit_knn_for_protocol(s, "time", 0)
    assert len(folds) == 3 and knn.cov_scale > 0.0
    errs, qs = [], []
    for c in cross_day_cases(s, "time", 0):
        from heimdall.ml.powder.protocol_eval import _knn_raw

        mu, cov = _knn_raw(c.train, c.test, False)
        cal = knn.cov_scale * (cov + knn.cov_floor_m2 * np.eye(2)[None])
        assert c.test.tx_enu is not None
        errs.append(mu - c.test.tx_enu)
        qs.append(mahalanobis2_batch(errs[-1], cal))
    m = pooled_metrics(np.concatenate(errs), np.concatenate(qs))
    # 150 rows: the coverage steps are 1/150; the fit gets within a few steps of the target
    assert abs(m["coverage_1sigma"] - 0.3935) < 0.05
    assert abs(m["coverage_2sigma"] - 0.8647) < 0.05


def _stub_model(
    train: PowderSamples, test: PowderSamples, _progress: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The training rows' mean position with their spread: a model that needs no torch."""
    assert train.tx_enu is not None
    mu = np.broadcast_to(train.tx_enu.mean(axis=0), (len(test), 2)).copy()
    return mu, np.broadcast_to(np.cov(train.tx_enu.T), (len(test), 2, 2)).copy()


def test_evaluate_churn_pools_the_draws(tmp_path: Path) -> None:
    csv_path = write_days(tmp_path, n=60)
    r = evaluate_protocol(
        "churn", csv_path, draws=2, seed=3, n_withheld=1, n_removed=1,
        methods={"model": _stub_model}, progress=False,
    )  # fmt: skip
    assert r.test_day == DAYS[-1] and r.train_days == DAYS[:-1]
    assert r.n_test == 19  # 20 rows on the last day, one of them a special case (indoor)
    assert [c["seed"] for c in r.cases] == [3, 4]
    assert all(len(c["withheld"]) == 1 and len(c["removed"]) == 1 for c in r.cases)
    js = r.to_json()
    assert list(js) == ["churn"] and set(js["churn"]) == {"model", "knn", "rss"}
    for m in js["churn"].values():
        assert tuple(m) == PROTOCOL_KEYS
        assert 0.0 <= m["coverage_1sigma"] <= m["coverage_2sigma"] <= 1.0
    # pooled over the two draws: the median lies between the draws' medians
    meds = [c["metrics"]["knn"]["median_m"] for c in r.cases]
    assert min(meds) <= js["churn"]["knn"]["median_m"] <= max(meds)


def test_eval_powder_protocol_command_writes_the_json(tmp_path: Path) -> None:
    csv_path = write_days(tmp_path, n=60)
    out = tmp_path / "p.json"
    app = typer.Typer()
    app.command()(eval_powder)
    args = ["--train", str(csv_path), "--protocol", "time", "--json", str(out)]
    res = CliRunner().invoke(app, [*args, "--epochs", "1", "--members", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "2022-07-11" in res.output and "knn" in res.output
    js = json.loads(out.read_text())
    assert set(js) == {"time"} and set(js["time"]) == {"model", "knn", "rss"}
    assert all(tuple(m) == PROTOCOL_KEYS for m in js["time"].values())
    bad = CliRunner().invoke(app, ["--train", str(csv_path), "--protocol", "space"])
    assert bad.exit_code != 0 and "--protocol must be one of time, churn" in bad.output
