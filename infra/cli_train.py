"""``heimdall train``: train the set model, evaluate it, register it, optionally promote it.

A plain typer command function (:func:`train`); the CLI wires it as ``heimdall train``. The
work is in :func:`run_training`, which takes the settings (tests call it directly):

1. Data (:func:`build_dataset`): ``sim`` — ``samples`` labelled samples of ``scenario`` at
   uniform positions over the network's area (the simulator's ``LabelledGenerator``, called
   here since ``ml`` does not import ``producers``), in the frame at the receivers' centroid;
   ``history`` — the ClickHouse history's observations labelled by their channel's truth
   (:func:`heimdall.ml.datasets.load_history`); ``archive`` — the same from the archive on
   the object store (``rf.observations.v1`` and ``rf.truth.v1``,
   :func:`heimdall.ml.datasets.label_events`); ``--from`` / ``--to`` bound the observations'
   window start (replay's time syntax, :func:`heimdall.consumers.replay.parse_time_ns`),
   and labels come from simulated truth and known sources' truth alike; ``both`` — the two
   in the frame at the centroid of all their receivers.
2. A test part (``test_fraction`` of the rows, drawn at random) is held out; the model is
   trained on the rest (:func:`heimdall.ml.training.train_set_model`, which holds out its own
   validation rows for the covariance calibration), with a rich progress bar.
3. On the test part: median / mean / P68 / P95 error and 1σ / 2σ coverage of the model, and
   of the classical RSS estimator (:func:`heimdall.ml.estimators.rss.estimate_rss`, as the
   localize stage calls it) on up to ``rss_samples`` of the same rows (it takes ~50 ms a
   sample); the model is also scored on exactly those rows.
4. ONNX export with its input spec (frame, receiver identities), publication in the model
   registry on the object store with the metrics and the training data's hash; with
   ``promote`` the version is made active and, when ``KAFKA_BOOTSTRAP_SERVERS`` is set,
   announced on the models topic (embedded mode: the next ``heimdall up`` announces it).
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from heimdall.core.errors import EstimationError, HeimdallError
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.ml.datasets import (
    HistoryData,
    combine_datasets,
    label_events,
    labelled_dataset,
    load_history,
    suggest_pos_scale,
)
from heimdall.ml.evaluation.metrics import METRIC_KEYS, localization_metrics
from heimdall.ml.models.setnet import Normalisation, SetNetConfig, export_onnx, input_spec
from heimdall.ml.training import (
    SetDataset,
    TrainConfig,
    TrainedSetNet,
    describe,
    predict_set_model,
    random_holdout,
    train_set_model,
)

__all__ = [
    "Source",
    "build_dataset",
    "default_config",
    "evaluate_rss",
    "run_training",
    "simulated_dataset",
    "train",
]


class Source(StrEnum):
    """Where the training data comes from."""

    sim = "sim"
    history = "history"
    archive = "archive"
    both = "both"


#: Observations are archived with their window's end as Kafka timestamp, truths with their
#: own time: the archive is read this much beyond the range, then filtered on window start.
ARCHIVE_PAD_NS = 60 * 1_000_000_000


def archive_history(
    settings: HeimdallSettings, since_ns: int, until_ns: int
) -> tuple[HistoryData, list[str]]:
    """Observations of ``[since_ns, until_ns)`` in the archive labelled by the archived truth
    (simulated and known sources alike: one truth topic), and the problems met reading."""
    from heimdall.consumers.archive_store import ArchiveStore, decoded_events
    from heimdall.schemas.models import Observation, Truth
    from heimdall.schemas.serde import Serde

    store = ArchiveStore.from_settings(settings)
    serde = Serde.from_settings(settings)
    problems: list[str] = []
    lo, hi = since_ns - ARCHIVE_PAD_NS, until_ns + ARCHIVE_PAD_NS
    obs = [
        e
        for _, e in decoded_events(
            store, settings.topics.observations, lo, hi, serde, problems.append
        )
        if isinstance(e, Observation)
    ]
    truths = [
        e
        for _, e in decoded_events(store, settings.topics.truth, lo, hi, serde, problems.append)
        if isinstance(e, Truth)
    ]
    return label_events(obs, truths, since_ns=since_ns, until_ns=until_ns), problems


def simulated_dataset(scenario: str, samples: int, seed: int) -> SetDataset:
    """``samples`` uniform labelled samples of a scenario (built-in name or file)."""
    from heimdall.producers.sim.labelled import LabelledGenerator
    from heimdall.producers.sim.library import load_scenario

    sc = load_scenario(scenario)
    batch = LabelledGenerator(sc, seed=seed).uniform_samples(samples, rng_seed=seed)
    receivers = [(r.receiver_id, r.lat_deg, r.lon_deg) for r in sc.receivers]
    return labelled_dataset(batch, receivers)


def _span(since_ns: int | None, until_ns: int | None) -> str:
    from datetime import UTC, datetime

    def one(t: int | None) -> str:
        if t is None:
            return "…"
        return datetime.fromtimestamp(t / 1e9, tz=UTC).isoformat(timespec="seconds")

    return f"[{one(since_ns)}, {one(until_ns)})"


def build_dataset(
    settings: HeimdallSettings,
    source: Source,
    scenario: str,
    samples: int,
    seed: int,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> tuple[SetDataset, dict[str, Any]]:
    """The training data of ``source`` and a JSON-able description of where it came from.

    ``since_ns`` / ``until_ns`` bound the observations' window start (history, archive;
    the archive needs both). A history or archive source with no labelled observation in the
    range is a :class:`HeimdallError` naming the range and what was read.
    """
    from heimdall.core.store import open_clickhouse

    info: dict[str, Any] = {"source": source.value}
    if since_ns is not None or until_ns is not None:
        info["range_ns"] = [since_ns, until_ns]
    if since_ns is not None and until_ns is not None and until_ns <= since_ns:
        raise HeimdallError(
            f"empty time range {_span(since_ns, until_ns)}: --to must follow --from"
        )
    parts: list[SetDataset] = []
    if source in (Source.sim, Source.both):
        sim = simulated_dataset(scenario, samples, seed)
        info["sim"] = {"scenario": scenario, "requested": samples, "labelled": len(sim)}
        parts.append(sim)
    if source in (Source.history, Source.both):
        client = open_clickhouse(settings)
        try:
            hist = load_history(client, since_ns=since_ns, until_ns=until_ns)
        finally:
            client.close()
        info["history"] = {
            "observations": hist.n_observations,
            "labelled": len(hist.dataset),
            "without_truth": hist.n_unmatched,
            "ambiguous": hist.n_ambiguous,
            "too_few_receivers": hist.n_too_few,
        }
        if len(hist.dataset):
            parts.append(hist.dataset)
        elif source is Source.history:
            raise HeimdallError(
                f"no observation in the history {_span(since_ns, until_ns)} has a truth of its "
                f"channel ({hist.n_observations} observations read)"
            )
    if source is Source.archive:
        if since_ns is None or until_ns is None:
            raise HeimdallError("--source archive needs --from and --to")
        arch, problems = archive_history(settings, since_ns, until_ns)
        info["archive"] = {
            "observations": arch.n_observations,
            "labelled": len(arch.dataset),
            "without_truth": arch.n_unmatched,
            "ambiguous": arch.n_ambiguous,
            "too_few_receivers": arch.n_too_few,
            "problems": problems[:20],
        }
        if not len(arch.dataset):
            raise HeimdallError(
                f"no observation in the archive {_span(since_ns, until_ns)} has a truth of its "
                f"channel ({arch.n_observations} observations read)"
            )
        parts.append(arch.dataset)
    ds = parts[0] if len(parts) == 1 else combine_datasets(parts)
    info["n_samples"] = len(ds)
    info["frame"] = ds.frame
    info["receivers"] = len(ds.rx_names)
    return ds, info


def default_config(
    ds: SetDataset,
    *,
    epochs: int,
    members: int,
    seed: int,
    batch_size: int = 128,
    threads: int = 1,
) -> TrainConfig:
    """Training configuration for a data set: position scale from its extent, large batches.

    The minimum standard deviation of a member stays 10 m whatever the scale (SetNet's
    default 0.002 scaled units is 2 m at POWDER's 1 km but 200 m at the seed network's
    100 km). One thread by default: the network is small, a second thread gains little,
    and on a 2-core machine shared with the pipeline oversubscribed threads slow training
    down many times (measured: 0.4 s instead of 0.01 s a step).
    """
    scale = suggest_pos_scale(ds)
    model = SetNetConfig(min_std=10.0 / scale, norm=Normalisation(pos_scale_m=scale))
    return TrainConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=3e-3,
        warmup_epochs=max(1, epochs // 6),
        members=members,
        seed=seed,
        holdout="random",
        threads=threads,
        model=model,
    )


def evaluate_rss(ds: SetDataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The localize stage's RSS estimate for each sample: ``(mean, cov, ok)``.

    ``ok`` is False where the estimator refused (fewer than four receivers, degenerate
    geometry); those rows hold NaN.
    """
    from heimdall.ml.estimators.rss import estimate_rss
    from heimdall.streams.localize import MIN_SIGMA_DB

    n = len(ds)
    mu = np.full((n, 2), np.nan)
    cov = np.full((n, 2, 2), np.nan)
    ok = np.zeros(n, dtype=bool)
    for i in range(n):
        m = ds.mask[i]
        try:
            # the stage's σ floor; a single simulated chunk has no per-window spread
            est = estimate_rss(ds.enu_m[i][m], ds.rss_dbm[i][m], sigma_db=MIN_SIGMA_DB)
        except EstimationError:
            continue
        mu[i] = (est.east_m, est.north_m)
        cov[i] = est.cov_en
        ok[i] = True
    return mu, cov, ok


def _metrics(mu: np.ndarray, truth: np.ndarray, cov: np.ndarray) -> dict[str, float]:
    m = localization_metrics(mu, truth, cov)
    return {k: float(m[k]) for k in (*METRIC_KEYS, "n")}


def run_training(
    settings: HeimdallSettings,
    *,
    source: Source = Source.sim,
    scenario: str = "seed-network",
    samples: int = 20_000,
    epochs: int = 12,
    members: int = 2,
    name: str = "setnet",
    promote: bool = False,
    seed: int = 0,
    test_fraction: float = 0.15,
    rss_samples: int = 400,
    config: TrainConfig | None = None,
    progress: bool = True,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> tuple[dict[str, Any], TrainedSetNet, SetDataset]:
    """Build the data, train, evaluate, export, register (and promote); see the module notes.

    Parameters
    ----------
    settings : HeimdallSettings
        Object store (registry), ClickHouse (history), Kafka (announcement).
    since_ns, until_ns : int, optional
        Time range of the observations (history, archive): see :func:`build_dataset`.
    config : TrainConfig, optional
        Overrides :func:`default_config` (``epochs``, ``members``, ``seed`` are then
        ignored).

    Returns
    -------
    report : dict
        JSON-able: data, configuration, training, test metrics of the model and of the RSS
        estimator, registry record, timings.
    trained : TrainedSetNet
    test : SetDataset
        The held-out test rows.
    """
    t0 = time.perf_counter()
    ds, info = build_dataset(settings, source, scenario, samples, seed, since_ns, until_ns)
    t_data = time.perf_counter() - t0
    if len(ds) < 10:
        raise HeimdallError(f"only {len(ds)} labelled samples: too few to train and test")
    fit_i, test_i = random_holdout(len(ds), test_fraction, seed + 1)
    train_ds, test_ds = ds.subset(fit_i), ds.subset(test_i)
    cfg = config or default_config(ds, epochs=epochs, members=members, seed=seed)
    trained = train_set_model(train_ds, cfg, progress=progress)

    t1 = time.perf_counter()
    mu, cov = predict_set_model(trained.model, test_ds, trained.norm)
    model_test = _metrics(mu, test_ds.y_enu_m, cov)
    rng = np.random.default_rng(seed + 2)
    sub = np.sort(rng.permutation(len(test_ds))[: max(0, rss_samples)])
    rmu, rcov, ok = evaluate_rss(test_ds.subset(sub))
    rows = sub[ok]
    rss: dict[str, Any] = {"n_tried": int(sub.size), "n_failed": int((~ok).sum())}
    model_same: dict[str, float] = {}
    if rows.size:
        rss.update(_metrics(rmu[ok], test_ds.y_enu_m[rows], rcov[ok]))
        model_same = _metrics(mu[rows], test_ds.y_enu_m[rows], cov[rows])
    t_eval = time.perf_counter() - t1

    spec = input_spec(
        trained.model,
        frame=ds.frame,
        rx_names=ds.rx_names,
        extra={"training": {**describe(trained), "data": info}},
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(trained.model, Path(tmp) / "model.onnx", spec=spec)
        onnx_bytes = path.read_bytes()
        spec = json.loads(path.with_suffix(".spec.json").read_text())

    from heimdall.core.objectstore import storage_options
    from heimdall.ml.registry import ModelRegistry

    registry = ModelRegistry(settings.object_store_url, storage_options(settings))
    metrics = {k: v for k, v in model_test.items() if np.isfinite(v)}
    metrics["train_seconds"] = trained.train_seconds
    if "median_m" in rss:
        metrics["rss_median_m"] = float(rss["median_m"])
    data_hash = ds.content_hash()
    record = registry.publish(
        name,
        onnx_bytes,
        spec,
        metrics=metrics,
        training_data_hash=data_hash,
        extra={
            "data": info,
            "config": {k: v for k, v in asdict(cfg).items() if k != "model"},
            "test": {"model": model_test, "rss": rss, "model_on_rss_rows": model_same},
        },
    )
    announced = False
    if promote:
        registry.set_active(record)
        if not settings.kafka.embedded:
            from heimdall.infra.model_announce import announce

            announce(settings, [record])
            announced = True

    report: dict[str, Any] = {
        "data": info,
        "n_train": len(train_ds),
        "n_test": len(test_ds),
        "pos_scale_m": trained.norm.pos_scale_m,
        "config": {k: v for k, v in asdict(cfg).items() if k != "model"},
        "model_config": {k: v for k, v in asdict(trained.model.config).items() if k != "norm"},
        "training": describe(trained),
        "test": model_test,
        "rss": rss,
        "model_on_rss_rows": model_same,
        "registry": {
            "name": record.name,
            "version": record.version,
            "url": record.url,
            "sha256": record.sha256,
            "training_data_hash": data_hash,
        },
        "promoted": promote,
        "announced": announced,
        "seconds": {
            "data": t_data,
            "train": trained.train_seconds,
            "evaluate": t_eval,
            "total": time.perf_counter() - t0,
        },
    }
    return report, trained, test_ds


def _table(report: dict[str, Any]) -> Table:
    t = Table(title=f"held-out test ({report['n_test']} samples)")
    t.add_column("method")
    for k in METRIC_KEYS:
        t.add_column(k, justify="right")
    t.add_column("n", justify="right")
    rows = [("setnet", report["test"])]
    if report["model_on_rss_rows"]:
        rows += [("setnet (RSS rows)", report["model_on_rss_rows"]), ("rss-ml", report["rss"])]
    for label, m in rows:
        cells = []
        for k in METRIC_KEYS:
            v = m.get(k, float("nan"))
            cells.append(f"{100 * v:.1f} %" if k.startswith("coverage") else f"{v:.1f}")
        t.add_row(label, *cells, str(int(m.get("n", 0))))
    return t


def train(
    source: Annotated[
        Source,
        typer.Option("--source", help="training data: simulator, history, archive, or both"),
    ] = Source.sim,
    from_time: Annotated[
        str | None,
        typer.Option("--from", help="observations from (ISO 8601, -2h, epoch s): history, archive"),
    ] = None,
    to_time: Annotated[
        str | None, typer.Option("--to", help="observations until (exclusive); default now")
    ] = None,
    scenario: Annotated[
        str, typer.Option("--scenario", help="simulator scenario (built-in name or file)")
    ] = "seed-network",
    samples: Annotated[int, typer.Option("--samples", help="simulated samples")] = 20_000,
    epochs: Annotated[int, typer.Option(help="training epochs per member")] = 12,
    members: Annotated[int, typer.Option(help="ensemble members")] = 2,
    name: Annotated[str, typer.Option(help="model name in the registry")] = "setnet",
    promote: Annotated[
        bool, typer.Option("--promote/--no-promote", help="make it the active model")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the report here")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    rss_samples: Annotated[
        int, typer.Option(help="test samples the RSS estimator is compared on")
    ] = 400,
    quiet: Annotated[bool, typer.Option("--quiet", help="no progress bar")] = False,
) -> None:
    """Train the set model on simulated and/or historical data, evaluate it, register it."""
    from heimdall.consumers.replay import parse_time_ns

    console = Console()
    settings = load_settings()
    since_ns = parse_time_ns(from_time) if from_time is not None else None
    until_ns = parse_time_ns(to_time) if to_time is not None else None
    if source is Source.archive and until_ns is None and since_ns is not None:
        until_ns = parse_time_ns("now")
    report, _, _ = run_training(
        settings,
        source=source,
        scenario=scenario,
        samples=samples,
        epochs=epochs,
        members=members,
        name=name,
        promote=promote,
        seed=seed,
        rss_samples=rss_samples,
        progress=not quiet,
        since_ns=since_ns,
        until_ns=until_ns,
    )
    console.print(_table(report))
    reg = report["registry"]
    s = report["seconds"]
    console.print(
        f"registered {reg['name']} {reg['version']} ({report['n_train']} training samples, "
        f"trained in {s['train']:.0f} s, total {s['total']:.0f} s)"
    )
    if promote:
        where = (
            "announced on the models topic"
            if report["announced"]
            else "`heimdall up` will announce it"
        )
        console.print(f"{reg['name']} {reg['version']} is active; {where}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(report, indent=2, default=float))
        console.print(f"[dim]report:[/dim] {json_out}")
