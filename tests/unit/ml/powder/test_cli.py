"""The ``eval powder`` command function on a tiny data set (fast: 2 epochs, 1 member)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")

from heimdall.infra.cli_powder import eval_powder
from heimdall.ml.powder.evaluate import PREDICTION_COLUMNS, TRACK_PSDS

from ._tiny import write_tiny


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(eval_powder)
    return app


def test_eval_powder_split(tmp_path: Path) -> None:
    train = write_tiny(tmp_path, n=60)
    out, png, pred = tmp_path / "r.json", tmp_path / "cdf.png", tmp_path / "p.csv"
    res = CliRunner().invoke(
        _app(),
        [
            "--train",
            str(train),
            "--split",
            "random_test",
            "--json",
            str(out),
            "--plot",
            str(png),
            "--predictions",
            str(pred),
            "--epochs",
            "2",
            "--members",
            "1",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    keys = ("median_m", "mean_m", "p68_m", "p95_m", "coverage_1sigma", "coverage_2sigma")
    for k in keys:
        assert k in rep and k in rep["baselines"]["knn"] and k in rep["baselines"]["rss"]
    assert rep["n_test"] == 12 and rep["n_train"] == 47
    assert png.exists()
    # the hold-out that calibrated the ellipses is said, with the time gaps that chose it
    gaps = rep["calibration"]["holdout_time_gaps_s"]
    assert gaps["test"] > 0.0 and "random" in gaps["candidates"]
    assert "calibrated on" in res.output and f"{gaps['test']:g} s" in res.output
    rows = list(csv.DictReader(pred.open()))
    assert len(rows) == 12 and tuple(rows[0])[:6] == PREDICTION_COLUMNS


def test_eval_powder_unlabelled_test_csv(tmp_path: Path) -> None:
    train = write_tiny(tmp_path, n=40)
    tdir = tmp_path / "other"
    tdir.mkdir()
    test = write_tiny(tdir, n=7, seed=3, with_truth=False)
    out, pred = tmp_path / "r.json", tmp_path / "p.csv"
    res = CliRunner().invoke(
        _app(),
        [
            "--train",
            str(train),
            "--test",
            str(test),
            "--json",
            str(out),
            "--predictions",
            str(pred),
            "--epochs",
            "1",
            "--members",
            "1",
            "--no-baselines",
            "--quiet",
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert not rep["has_truth"] and "median_m" not in rep and rep["n_predictions"] == 7
    rows = list(csv.DictReader(pred.open()))
    assert len(rows) == 7 and float(rows[0]["cov_ee"]) > 0.0


def test_eval_powder_track(tmp_path: Path) -> None:
    """``--track`` reports the tracked estimates and keeps the per-fix ones under models."""
    train = write_tiny(tmp_path, n=60)
    out = tmp_path / "r.json"
    res = CliRunner().invoke(
        _app(),
        [
            *("--train", str(train), "--split", "random_test", "--json", str(out), "--track"),
            *("--epochs", "2", "--members", "1", "--no-baselines", "--quiet"),
        ],
    )
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["method"].endswith("+track")
    assert rep["tracking"]["accel_psd_m2_s3"] in TRACK_PSDS
    tracked = rep["models"][rep["method"]]
    assert tracked["median_m"] == rep["median_m"]
    assert "setnet" in rep["models"]


def test_the_command_trains_as_long_as_the_library_default() -> None:
    """The CLI's ``--epochs`` default is written out (the CLI does not import torch to start)."""
    import inspect

    from heimdall.ml.powder.train import POWDER_EPOCHS

    assert inspect.signature(eval_powder).parameters["epochs"].default == POWDER_EPOCHS


def test_eval_powder_test_csv_without_some_receivers(tmp_path: Path) -> None:
    """A test CSV that lacks a fixed receiver's and the shuttle's columns is still scored."""
    train = write_tiny(tmp_path, n=40)
    tdir = tmp_path / "fewer"
    tdir.mkdir()
    test = write_tiny(tdir, n=9, seed=4)
    rows = list(csv.reader(test.open()))
    gone = {"rx-c", "bus-1_rss", "bus-1_x", "bus-1_y"}
    keep = [i for i, c in enumerate(rows[0]) if c not in gone]
    test.write_text("\n".join(",".join(r[i] for i in keep) for r in rows) + "\n")
    out = tmp_path / "r.json"
    args = ["--train", str(train), "--test", str(test), "--json", str(out)]
    res = CliRunner().invoke(_app(), [*args, "--epochs", "1", "--members", "1", "--quiet"])
    assert res.exit_code == 0, res.output
    rep = json.loads(out.read_text())
    assert rep["n_predictions"] == 9 and rep["has_truth"]
    assert 0.0 < rep["median_m"] < float("inf")
    assert set(rep["baselines"]) == {"knn", "rss"}
