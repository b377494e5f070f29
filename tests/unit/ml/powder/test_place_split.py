"""``eval powder --split/--test --model place``: the place model on a split (tiny data)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from heimdall.infra.cli_powder import eval_powder
from heimdall.ml.powder.evaluate import PREDICTION_COLUMNS

from ._tiny import write_tiny


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(eval_powder)
    return app


def test_place_on_a_split_reports_coverage_and_keeps_the_csv_columns(tmp_path: Path) -> None:
    train = write_tiny(tmp_path, n=80)
    out, pred = tmp_path / "r.json", tmp_path / "p.csv"
    res = CliRunner().invoke(
        _app(),
        ["--train", str(train), "--split", "random_test", "--model", "place", "--quiet",
         "--json", str(out), "--predictions", str(pred)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["method"] == "place"
    base = report["baselines"]
    for method in (report["models"]["place"], base["knn"], base["rss"]):
        assert 0.0 <= method["coverage_1sigma"] <= method["coverage_2sigma"] <= 1.0
    assert report["calibration"]["place_cov_scale"] > 0.0
    with pred.open() as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == PREDICTION_COLUMNS
    assert len(rows) == report["n_test"]


def test_place_refuses_what_it_has_not(tmp_path: Path) -> None:
    train = write_tiny(tmp_path, n=40)
    res = CliRunner().invoke(
        _app(), ["--train", str(train), "--split", "random_test", "--model", "place", "--track"]
    )
    assert res.exit_code != 0
    assert "--model place has no --track" in res.output
