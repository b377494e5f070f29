"""``heimdall eval powder``: train and evaluate the POWDER localisers (command function only).

The function is a plain typer command; the CLI wires it (``app.command("powder")`` on an
``eval`` sub-app). It prints a table and optionally writes the JSON report, the error-CDF
plot, the predictions CSV and the ONNX model.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from heimdall.core.errors import ConfigError
from heimdall.ml.evaluation.metrics import METRIC_KEYS

__all__ = ["eval_powder"]


def _holdout_line(report: dict[str, Any]) -> str:
    """Which validation rows calibrated the ellipses, and why (the time gaps)."""
    cal = report.get("calibration") or {}
    kind = cal.get("holdout", "?")
    what = f"whole {cal['cell_m']:g} m cells" if kind == "spatial" else f"{kind} rows"
    gaps = cal.get("holdout_time_gaps_s")
    if not gaps:
        return f"calibrated on {what} of the training set"
    return (
        f"calibrated on {what} of the training set: {gaps['holdout']:g} s from the fitting rows "
        f"(median), as the test rows are {gaps['test']:g} s from the training rows"
    )


def _table(report: dict[str, Any]) -> Table:
    t = Table(
        title=f"POWDER {report.get('split') or report.get('test_csv')}",
        caption="* the reported model (chosen on validation rows)\n" + _holdout_line(report),
    )
    t.add_column("method")
    for k in METRIC_KEYS:
        t.add_column(k, justify="right")
    chosen = report.get("method", "setnet")
    models = report.get("models", {})
    rows: list[tuple[str, dict[str, Any]]] = [
        (f"{name} *" if name == chosen else name, m)
        for name, m in models.items()
        if not name.endswith("_uncalibrated")
    ] or [(str(chosen), report)]
    for name, m in report.get("baselines", {}).items():
        rows.append((name, m))
    for name, m in rows:
        cells = []
        for k in METRIC_KEYS:
            v = m.get(k)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                cells.append("-")
            elif k.startswith("coverage"):
                cells.append(f"{100 * v:.1f} %")
            else:
                cells.append(f"{v:.1f}")
        t.add_row(name, *cells)
    return t


def _protocol_table(result: Any) -> Table:
    """The pooled metrics of a protocol run, one row per method."""
    from heimdall.ml.powder.protocol_eval import PROTOCOL_KEYS

    days = ", ".join(result.train_days)
    t = Table(
        title=f"POWDER --protocol {result.protocol}: train {days} ({result.n_train} rows) → "
        f"test {result.test_day} ({result.n_test} rows)",
        caption=_protocol_caption(result),
    )
    t.add_column("method")
    for k in PROTOCOL_KEYS:
        t.add_column(k, justify="right")
    for name, m in result.summary.items():
        cells = [
            f"{100 * m[k]:.1f} %" if k.startswith("coverage") else f"{m[k]:.1f}"
            for k in PROTOCOL_KEYS
        ]
        t.add_row(f"model ({result.model})" if name == "model" else name, *cells)
    return t


def _protocol_caption(result: Any) -> str:
    lines = []
    for i, case in enumerate(result.cases):
        if case["seed"] is None:
            continue
        lines.append(
            f"draw {i + 1} (seed {case['seed']}): withheld {', '.join(case['withheld'])}; "
            f"removed {', '.join(case['removed'])}"
        )
    if result.model == "place":
        lines.append(
            "model (place): RSS grid posterior, receivers as places; temperature and ellipse "
            "chosen on the cross-day folds below"
        )
    lines.append(
        "knn: spread of the 5 neighbours + 10 m, rss: Gauss-Newton covariance; both scaled "
        "s(Σ + f²I) on leave-one-day-out predictions of the training rows, protocol imitated"
    )
    lines.append("coverage of a calibrated 2-D Gaussian: 39.3 % (1σ), 86.5 % (2σ)")
    return "\n".join(lines)


def eval_powder(
    train: Annotated[
        Path | None,
        typer.Option(
            "--train", help="training CSV (single_tx.csv layout; default: the shared one)"
        ),
    ] = None,
    test: Annotated[
        Path | None, typer.Option("--test", help="test CSV (may lack the transmitter columns)")
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="named split of splits.json, e.g. random_test")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="error CDF PNG")] = None,
    predictions: Annotated[
        Path | None, typer.Option("--predictions", help="predictions CSV")
    ] = None,
    onnx: Annotated[Path | None, typer.Option("--onnx", help="export the model here")] = None,
    epochs: Annotated[int, typer.Option(help="training epochs per member")] = 240,
    members: Annotated[int, typer.Option(help="ensemble members")] = 2,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    no_baselines: Annotated[
        bool, typer.Option("--no-baselines", help="skip the k-NN and RSS baselines")
    ] = False,
    track: Annotated[
        bool,
        typer.Option(
            "--track",
            help="fuse the fixes along time (Kalman/RTS over the test rows' timestamps; "
            "one transmitter moving) and report the tracked estimates",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
    protocol: Annotated[
        str | None,
        typer.Option(
            "--protocol",
            help="changing-network protocol instead of a split: time (earlier days → last "
            "day) or churn (the same, receivers withheld from training and removed at test)",
        ),
    ] = None,
    draws: Annotated[int, typer.Option("--draws", help="churn draws (seeds seed…)")] = 3,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="place (RSS grid posterior, receivers as places) or setnet (the learned "
            "pipeline); default: place with --protocol, setnet with --split/--test",
        ),
    ] = None,
) -> None:
    """Train the set model on POWDER, evaluate it and the baselines on a split or a test CSV."""
    for flag, path in (("--train", train), ("--test", test)):
        if path is not None and not path.is_file():
            raise ConfigError(f"{flag} {path}: no such file")
    from heimdall.ml.powder.evaluate import evaluate_powder
    from heimdall.ml.powder.train import TrainConfig

    console = Console()
    if protocol is not None:
        cfg_args = (epochs, members)
        chosen = model or "place"
        _run_protocol(console, protocol, chosen, train, draws, seed, cfg_args, json_out, quiet)
        return
    if train is None:
        from heimdall.ml.powder.data import DEFAULT_DATA_DIR

        train = DEFAULT_DATA_DIR / "single_tx.csv"
    if test is None and split is None:
        raise typer.BadParameter("give --test, --split, --protocol, or both --test and --split")
    if model not in (None, "place", "setnet"):
        raise typer.BadParameter(f"--model must be place or setnet, not {model!r}")
    if model == "place":
        if track or onnx is not None or plot is not None:
            raise typer.BadParameter("--model place has no --track, --onnx or --plot")
        from heimdall.ml.powder.place_split import evaluate_place_split

        report = evaluate_place_split(
            train, test, split, seed=seed, baselines=not no_baselines, predictions=predictions
        )
        _print_and_write(console, report, json_out)
        return
    cfg = TrainConfig(epochs=epochs, members=members, seed=seed)
    report = evaluate_powder(
        train,
        test,
        split,
        config=cfg,
        baselines=not no_baselines,
        plot=plot,
        predictions=predictions,
        onnx=onnx,
        track=track,
        progress=not quiet,
    )
    _print_and_write(console, report, json_out)


def _print_and_write(console: Console, report: dict[str, Any], json_out: Path | None) -> None:
    """Print a split's table (or the prediction count) and write the JSON report."""
    if report.get("has_truth"):
        console.print(_table(report))
    else:
        console.print(f"{report['n_predictions']} predictions (the test set has no truth)")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2, default=float))
        console.print(f"[dim]report:[/dim] {json_out}")


def _run_protocol(
    console: Console,
    protocol: str,
    model: str,
    train: Path | None,
    draws: int,
    seed: int,
    cfg_args: tuple[int, int],
    json_out: Path | None,
    quiet: bool,
) -> None:
    """``--protocol``: run it, print the table, write ``{protocol: {method: metrics}}``."""
    from heimdall.ml.powder.protocol_eval import MODELS, evaluate_protocol
    from heimdall.ml.powder.protocols import PROTOCOLS
    from heimdall.ml.powder.train import TrainConfig

    if protocol not in PROTOCOLS:
        raise typer.BadParameter(
            f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}"
        )
    if model not in MODELS:
        raise typer.BadParameter(f"--model must be one of {', '.join(MODELS)}, not {model!r}")
    if draws < 1:
        raise typer.BadParameter(f"--draws must be at least 1, not {draws}")
    cfg = TrainConfig(epochs=cfg_args[0], members=cfg_args[1], seed=seed)
    result = evaluate_protocol(
        protocol, train, draws=draws, seed=seed, config=cfg, model=model, progress=not quiet
    )
    console.print(_protocol_table(result))
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_json(), indent=2))
        console.print(f"[dim]report:[/dim] {json_out}")
