"""Ellipse coverage reported by ``heimdall eval sim`` (issue 14, item 3).

The TDOA estimator's coverage on ``hf-tdoa`` and the RSS estimator's 2σ coverage at 2 dB
are checked in ``test_crlb_scenarios.py``. Here: that the command prints and writes the
coverage of every method it reports, and the RSS estimator's coverage at the default
σ = 8 dB (``urban-rss``), which is not met: its covariance is the Gauss–Newton (Jacobian)
one, and at 8 dB shadowing with 20 receivers the estimator is in the threshold regime
(RMSE about 2× the bound, ``tests/integration/ml/test_crlb_threshold.py``), so the
linearised ellipse is too small.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from heimdall.infra.cli import app
from heimdall.infra.cli_eval_sim import evaluate_sim

#: Coverage band of the targets (points): what issue 14 asks of every published ellipse.
BAND = 0.05


@pytest.mark.parametrize("method,scenario", [("rss", "urban-rss-2db"), ("tdoa", "hf-tdoa")])
def test_eval_sim_prints_and_writes_coverage(method: str, scenario: str, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        app,
        ["eval", "sim", "--method", method, "--scenario", scenario, "--trials", "4",
         "--json", str(out)],
    )  # fmt: skip
    assert "coverage 1σ/2σ" in res.output, res.output
    report = json.loads(out.read_text())
    for key in ("coverage_1sigma", "coverage_2sigma"):
        assert 0.0 <= report[key] <= 1.0
        assert all(0.0 <= p[key] <= 1.0 for p in report["positions"])


@pytest.mark.xfail(
    strict=True,
    reason="measured (40 trials × 9 positions, seed 0): RSS Gauss-Newton ellipse at 8 dB "
    "covers 34.2 % / 76.9 % (targets 39.3 / 86.5 %): the threshold regime, RMSE 2.08× the "
    "CRLB; the Jacobian covariance is not calibrated (issue 14)",
)
def test_rss_coverage_at_8db_within_band() -> None:
    report = evaluate_sim("urban-rss", "rss", trials=40, seed=0)
    assert abs(report.coverage_1sigma - report.expected_coverage_1sigma) <= BAND
    assert abs(report.coverage_2sigma - report.expected_coverage_2sigma) <= BAND
