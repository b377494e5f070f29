r"""End-to-end POWDER evaluation: train the model and the baselines, predict, score, plot.

Protocol (the data set authors', README of the data folder): for a named split the test rows
are the split's rows, and training uses every other single-transmitter row except the
special cases (``off_campus``, ``indoor``, ``stationary*``). With a separate test CSV,
training uses every row of the training CSV except the special cases (and except the named
split's rows when a split is also given). Errors are Euclidean distances in metres in the
local frame :data:`~heimdall.ml.powder.data.POWDER_FRAME` (a tangent plane: within 2 km of
the origin it differs from UTM distances by < 0.1 %).

Methods: the SetNet ensemble (:mod:`heimdall.ml.powder.train`), its fusion with a k-NN
fingerprint (:func:`fuse_gaussians`; the k-NN uses the fixed receivers' RSS with
inverse-squared-distance weights, and k ∈ :data:`FUSION_KS` chosen on the validation rows),
the reference 5-NN fingerprint and the log-distance RSS ML
(:mod:`heimdall.ml.powder.baselines`). The reported model (top-level metrics, predictions) is
SetNet ⊕ k-NN when its validation median error is more than :data:`FUSION_MARGIN` below
SetNet's, else SetNet. The model's
covariance is calibrated on a held-out part of the training rows chosen to be as far from
the fitting rows, in time, as the test rows are from the training rows
(:func:`~heimdall.ml.powder.holdout.matched_holdout`: random rows for ``random_test``,
300 m cells for ``grid_test``, the largest cells for other days), unless ``holdout`` says
otherwise.

Why the fusion's k-NN leaves the shuttles out: a shuttle's RSS column without its position
is not a fingerprint of a place but of a moment (where the bus was). Measured on
``random_test``: with the shuttle columns the 1-NN's matched training row is a median 20 s
away in time (46 s without) and its median error drops from 58 m to 38 m, while the error of
matches within 30 s is the same (22 m) either way — the gain is from matching the
neighbouring rows of the same walk, which a deployed system never has. The set model uses
the shuttles *with* their positions (physics, not time: it also gains on ``grid_test``,
117 m with them vs 131 m without).

Tracking (``track=True``): the test rows are one transmitter moving in time, so the fixes of
the reported model can be fused along time by a Kalman filter and Rauch–Tung–Striebel
smoother (:mod:`heimdall.ml.estimators.track`; a gap over ``max_gap_s`` starts a new track).
It uses the test rows' timestamps and measurements, never their truth. The acceleration
spectral density is chosen among :data:`TRACK_PSDS` and the tracked covariance recalibrated
on the validation rows tracked the same way, as ``s (P + β R)``: the tracker's P assumes
independent fixes, and a share β of each fix's covariance R persists along a path
(:func:`~heimdall.ml.evaluation.metrics.fit_track_calibration`). Per-fix results stay in
``models``.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from heimdall.ml.estimators.track import TrackConfig, track_positions
from heimdall.ml.evaluation.metrics import (
    METRIC_KEYS,
    coverage,
    fit_covariance_calibration,
    fit_track_calibration,
    localization_metrics,
    plot_error_cdf,
)
from heimdall.ml.powder.baselines import (
    KnnFingerprint,
    RssLogDistance,
    rss_holdout_calibration,
)
from heimdall.ml.powder.data import (
    DEFAULT_DATA_DIR,
    SPECIAL_SPLITS,
    PowderSamples,
    load_powder_csv,
    load_splits,
    train_test_for_split,
)
from heimdall.ml.powder.holdout import matched_holdout
from heimdall.ml.powder.train import (
    POWDER_EPOCHS,
    TrainConfig,
    TrainedSetNet,
    describe,
    predict_setnet,
    train_setnet,
)
from heimdall.ml.training import Holdout

__all__ = [
    "PREDICTION_COLUMNS",
    "ReportedFixes",
    "evaluate_powder",
    "fit_reported_model",
    "fuse_gaussians",
    "prediction_rows",
    "times_s",
    "track_in_time_order",
    "write_predictions",
]

log = logging.getLogger(__name__)
FloatArray = npt.NDArray[np.float64]

#: Columns of the predictions CSV (covariances of East/North in m²).
PREDICTION_COLUMNS = ("timestamp", "lat", "lon", "cov_ee", "cov_en", "cov_nn")


def prediction_rows(
    samples: PowderSamples, mean_enu: FloatArray, cov: FloatArray
) -> list[dict[str, Any]]:
    """One dict per sample: timestamp, WGS84 lat/lon of the estimate, covariance in m²."""
    lat, lon, _ = samples.frame.from_enu(mean_enu[:, 0], mean_enu[:, 1], 0.0)
    lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
    return [
        {
            "timestamp": str(samples.timestamps[i]),
            "lat": float(lat[i]),
            "lon": float(lon[i]),
            "cov_ee": float(cov[i, 0, 0]),
            "cov_en": float(0.5 * (cov[i, 0, 1] + cov[i, 1, 0])),
            "cov_nn": float(cov[i, 1, 1]),
        }
        for i in range(len(samples))
    ]


def write_predictions(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write prediction rows as CSV with :data:`PREDICTION_COLUMNS` (+ any extra keys)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(PREDICTION_COLUMNS)
    for r in rows[:1]:
        cols += [k for k in r if k not in cols]
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def fuse_gaussians(
    mu1: FloatArray, cov1: FloatArray, mu2: FloatArray, cov2: FloatArray
) -> tuple[FloatArray, FloatArray]:
    r"""Precision-weighted fusion of two Gaussian estimates (product of the densities).

    .. math:: \Sigma = (\Sigma_1^{-1} + \Sigma_2^{-1})^{-1},\qquad
              \mu = \Sigma(\Sigma_1^{-1}\mu_1 + \Sigma_2^{-1}\mu_2).

    Exact for independent errors; the two estimators here share their inputs, so the fused
    covariance is recalibrated afterwards (a scalar inflation fitted on validation rows).
    """
    p1 = np.linalg.inv(cov1)
    p2 = np.linalg.inv(cov2)
    cov = np.linalg.inv(p1 + p2)
    mu = np.einsum(
        "nij,nj->ni", cov, np.einsum("nij,nj->ni", p1, mu1) + np.einsum("nij,nj->ni", p2, mu2)
    )
    return mu, 0.5 * (cov + np.swapaxes(cov, 1, 2))


#: Candidate k of the fusion's k-NN component (chosen on the validation rows).
FUSION_KS = (3, 5, 8)
#: The fusion is reported only when its validation median is this much (relative) below the
#: set model's: a difference smaller than the median's sampling noise (a few % with ~500
#: validation rows) is no reason to prefer the more complex estimator.
FUSION_MARGIN = 0.02


def _fusion_knn(k: int) -> KnnFingerprint:
    """The k-NN used inside the fusion: fixed receivers' RSS, inverse-squared-distance weights."""
    return KnnFingerprint(k=k, include_mobile=False, weighting="inverse_distance2")


@dataclass
class _Validation:
    """What the validation rows decided: fusion k and inflation, the choice, and its fixes."""

    fused_calibration: tuple[float, float] = (1.0, 0.0)
    k: int = FUSION_KS[1]
    choice: str = "setnet"
    medians: dict[str, float] = field(default_factory=dict)
    samples: PowderSamples | None = None
    mean: FloatArray | None = None
    cov: FloatArray | None = None


def _fusion_on_validation(train: PowderSamples, trained: TrainedSetNet) -> _Validation:
    """Fusion's k, covariance inflation, and the choice model vs fusion, on validation rows.

    The k-NN is refitted on the model's fitting rows only, so neither the model nor the k-NN
    has seen the validation rows. Also returns the chosen method's calibrated validation
    fixes (for the tracker's choices).
    """
    if trained.val_index.size == 0 or trained.fit_index.size < 10:
        return _Validation()
    fit_s, val_s = train.subset(trained.fit_index), train.subset(trained.val_index)
    assert val_s.tx_enu is not None
    y = val_s.tx_enu
    smu, scov = predict_setnet(trained.model, val_s, trained.norm)
    med = {"setnet": float(np.median(np.hypot(*(smu - y).T)))}
    best: tuple[float, int, tuple[float, float], FloatArray, FloatArray] | None = None
    for k in FUSION_KS:
        kmu, kcov = _fusion_knn(k).fit(fit_s).predict(val_s)
        fmu, fcov = fuse_gaussians(smu, scov, kmu, kcov)
        m = float(np.median(np.hypot(*(fmu - y).T)))
        med[f"knn{k}"] = float(np.median(np.hypot(*(kmu - y).T)))
        med[f"setnet+knn{k}"] = m
        if best is None or m < best[0]:
            best = (m, k, fit_covariance_calibration(fmu - y, fcov), fmu, fcov)
    assert best is not None
    _, k, (scale, floor), fmu, fcov = best
    if best[0] < (1.0 - FUSION_MARGIN) * med["setnet"]:
        mean, cov, choice = fmu, scale * (fcov + floor * np.eye(2)[None]), "setnet+knn"
    else:
        mean, cov, choice = smu, scov, "setnet"
    return _Validation((scale, floor), k, choice, med, val_s, mean, cov)


#: Candidate acceleration spectral densities of the tracker, m²/s³ (chosen on validation).
TRACK_PSDS = (0.03, 0.1, 0.3, 1.0, 3.0)


def times_s(samples: PowderSamples) -> FloatArray:
    """Sample timestamps as seconds (float) since the epoch.

    Raises
    ------
    ValueError
        When a timestamp is not an ISO-8601 date and time (tracking needs times).
    """
    try:
        t = samples.timestamps.astype("datetime64[ms]")
    except ValueError as exc:
        raise ValueError(f"tracking needs ISO-8601 timestamps: {exc}") from None
    return t.astype(np.int64).astype(float) / 1e3


def track_in_time_order(
    samples: PowderSamples, mean: FloatArray, cov: FloatArray, config: TrackConfig
) -> tuple[FloatArray, FloatArray]:
    """Track the fixes of ``samples`` in time order; results in the samples' own order."""
    t = times_s(samples)
    order = np.argsort(t, kind="stable")
    tm, tc = track_positions(t[order], mean[order], cov[order], config)
    out_m, out_c = np.empty_like(tm), np.empty_like(tc)
    out_m[order], out_c[order] = tm, tc
    return out_m, out_c


def _track_on_validation(
    val: _Validation,
) -> tuple[TrackConfig, tuple[float, float], dict[str, float]]:
    """The tracker's acceleration PSD (smallest validation median) and its calibration.

    Returns ``(config, (s, β), medians)``: tracked covariances are then ``s (P + β R)``
    with R the fix's covariance (:func:`~heimdall.ml.evaluation.metrics.fit_track_calibration`).
    """
    if val.samples is None or val.mean is None or val.cov is None:
        return TrackConfig(), (1.0, 0.0), {}
    assert val.samples.tx_enu is not None
    y = val.samples.tx_enu
    best: tuple[float, TrackConfig, FloatArray, FloatArray] | None = None
    med: dict[str, float] = {}
    for q in TRACK_PSDS:
        cfg = TrackConfig(accel_psd_m2_s3=q)
        tm, tc = track_in_time_order(val.samples, val.mean, val.cov, cfg)
        m = float(np.median(np.hypot(*(tm - y).T)))
        med[f"q={q:g}"] = m
        if best is None or m < best[0]:
            best = (m, cfg, tm, tc)
    assert best is not None
    return best[1], fit_track_calibration(best[2] - y, best[3], val.cov), med


def _holdout(
    holdout: Literal["auto", "random", "spatial"],
    train: PowderSamples,
    test: PowderSamples,
    cfg: TrainConfig,
    *,
    split: str | None,
    external: bool,
) -> tuple[Holdout, float, dict[str, Any] | None]:
    """The validation hold-out: ``(kind, cell_m, time gaps that chose it or None)``."""
    if holdout != "auto":
        return holdout, cfg.cell_m, None
    assert train.tx_enu is not None
    try:
        choice = matched_holdout(
            times_s(train), train.tx_enu, times_s(test), fraction=cfg.val_fraction, seed=cfg.seed
        )
    except ValueError as exc:  # timestamps that are not times: the split's nature decides
        log.warning("hold-out not matched in time (%s); by the test set's kind instead", exc)
        kind: Holdout = "spatial" if external or split == "grid_test" else "random"
        return kind, cfg.cell_m, None
    gaps = {
        "test": choice.test_gap_s,
        "holdout": choice.holdout_gap_s,
        "candidates": choice.candidate_gaps_s,
    }
    if choice.kind == "random":
        return "random", cfg.cell_m, gaps
    return "spatial", choice.cell_m, gaps


def _errors_label(choice: str, k: int) -> str:
    """Plot label of the reported model."""
    return "SetNet" if choice == "setnet" else f"SetNet ⊕ {k}-NN"


#: The coverage entries of a metrics dict.
_COVERAGE_KEYS = ("coverage_1sigma", "coverage_2sigma")


def _coverages(mu: FloatArray, truth: FloatArray, cov: FloatArray) -> dict[str, float]:
    """1σ and 2σ coverage only (of a covariance before its calibration)."""
    err = mu - truth
    return {k: coverage(err, cov, n) for k, n in zip(_COVERAGE_KEYS, (1.0, 2.0), strict=True)}


def _metrics(mu: FloatArray, truth: FloatArray, cov: FloatArray) -> dict[str, float]:
    m = localization_metrics(mu, truth, cov)
    return {k: m[k] for k in METRIC_KEYS}


@dataclass(frozen=True)
class ReportedFixes:
    """The reported model's calibrated fixes of a test set, and which model it was."""

    mean: FloatArray
    cov: FloatArray
    choice: str
    trained: TrainedSetNet


def fit_reported_model(
    train: PowderSamples,
    test: PowderSamples,
    config: TrainConfig | None = None,
    *,
    holdout: Literal["auto", "random", "spatial"] = "auto",
    progress: bool = True,
) -> ReportedFixes:
    """Train the model on ``train`` and return the reported model's fixes of ``test``.

    The same steps as :func:`evaluate_powder` for a separate test set (hold-out matched in
    time, SetNet, fusion with a k-NN chosen on the validation rows), without the report:
    for evaluations that build their own train/test pairs
    (:mod:`~heimdall.ml.powder.protocol_eval`).
    """
    cfg = config or TrainConfig(epochs=POWDER_EPOCHS)
    kind, cell_m, _ = _holdout(holdout, train, test, cfg, split=None, external=True)
    cfg = replace(cfg, holdout=kind, cell_m=cell_m)
    trained = train_setnet(train, cfg, progress=progress)
    smu, scov = predict_setnet(trained.model, test, trained.norm)
    val = _fusion_on_validation(train, trained)
    if val.choice != "setnet+knn":
        return ReportedFixes(smu, scov, "setnet", trained)
    fkmu, fkcov = _fusion_knn(val.k).fit(train).predict(test)
    fmu, fcov_raw = fuse_gaussians(smu, scov, fkmu, fkcov)
    scale, floor = val.fused_calibration
    return ReportedFixes(fmu, scale * (fcov_raw + floor * np.eye(2)[None]), val.choice, trained)


def evaluate_powder(
    train_csv: str | Path,
    test_csv: str | Path | None = None,
    split: str | None = None,
    *,
    splits_json: str | Path | None = None,
    config: TrainConfig | None = None,
    holdout: Literal["auto", "random", "spatial"] = "auto",
    baselines: bool = True,
    plot: str | Path | None = None,
    predictions: str | Path | None = None,
    onnx: str | Path | None = None,
    track: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train on POWDER rows, predict a test set, and score the model against the baselines.

    Parameters
    ----------
    train_csv : str or Path
        ``single_tx.csv`` (or a file of the same layout).
    test_csv : str or Path, optional
        A separate test file; it may lack receivers or the transmitter columns (then only
        predictions are produced).
    split : str, optional
        A named split of ``splits.json`` (``random_test``, ``grid_test``, …). At least one of
        ``test_csv`` and ``split`` is required.
    splits_json : str or Path, optional
        Default: ``splits.json`` next to ``train_csv``, else in the shared data folder.
    config : TrainConfig, optional
        Training configuration (default: :data:`~heimdall.ml.powder.train.POWDER_EPOCHS`
        epochs per member; ``holdout`` overrides its hold-out kind unless ``"auto"``).
    holdout : {"auto", "random", "spatial"}
        Validation hold-out for calibration. ``"auto"``: matched to the test rows' gap in
        time to the training rows (module notes; when a timestamp is not a time: spatial
        for ``grid_test`` and for a separate test CSV, random otherwise); ``"spatial"``:
        whole cells of ``config.cell_m``.
    baselines : bool
        Also run the k-NN and RSS baselines.
    plot, predictions, onnx : str or Path, optional
        Where to save the error-CDF PNG, the predictions CSV, and the exported ONNX model
        (with ``<stem>.spec.json`` next to it).
    track : bool
        Also fuse the reported model's fixes along time (module notes); the tracked
        estimates are then the reported ones (top-level metrics, predictions).
    progress : bool
        Show training progress.

    Returns
    -------
    dict
        ``median_m, mean_m, p68_m, p95_m, coverage_1sigma, coverage_2sigma`` of the model
        (when the test set has truth), ``baselines: {knn: {...}, rss: {...}}``, ``models``
        (every method's metrics, and ``<method>_uncalibrated``: its coverage before the
        inflation), ``calibration``, ``training``,
        ``n_train``, ``n_test``, ``split``, ``has_truth``; ``predictions`` rows are not
        included (see ``predictions``) but their count is.
    """
    train, test = train_and_test(train_csv, test_csv, split, splits_json)

    cfg = config or TrainConfig(epochs=POWDER_EPOCHS)
    kind, cell_m, matched = _holdout(
        holdout, train, test, cfg, split=split, external=test_csv is not None
    )
    cfg = replace(cfg, holdout=kind, cell_m=cell_m)

    trained = train_setnet(train, cfg, progress=progress)
    smu, scov = predict_setnet(trained.model, test, trained.norm)

    # k-NN (the baseline, fitted on all training rows) and its fusion with the model; the
    # fusion's inflation and the choice model vs fusion use the validation rows only
    knn = KnnFingerprint(k=5, holdout=kind, cell_m=cell_m).fit(train)
    kmu, kcov = knn.predict(test)
    val = _fusion_on_validation(train, trained)
    (fused_scale, fused_floor), fused_k, choice = val.fused_calibration, val.k, val.choice
    fkmu, fkcov = _fusion_knn(fused_k).fit(train).predict(test)
    fmu, fcov_raw = fuse_gaussians(smu, scov, fkmu, fkcov)
    eye = np.eye(2)[None]
    fcov = fused_scale * (fcov_raw + fused_floor * eye)
    scov_raw = scov / trained.cov_scale - trained.cov_floor_m2 * eye
    mu, cov = (fmu, fcov) if choice == "setnet+knn" else (smu, scov)
    fix_mu, fix_cov = mu, cov
    tracking: dict[str, Any] | None = None
    if track:
        tcfg, (t_scale, t_share), t_medians = _track_on_validation(val)
        tmu, tcov_raw = track_in_time_order(test, fix_mu, fix_cov, tcfg)
        tcov = t_scale * (tcov_raw + t_share * fix_cov)
        mu, cov = tmu, tcov
        tracking = {
            "accel_psd_m2_s3": tcfg.accel_psd_m2_s3,
            "max_gap_s": tcfg.max_gap_s,
            "smooth": tcfg.smooth,
            "cov_scale": t_scale,
            "persistent_share": t_share,
            "validation_median_m": t_medians,
        }

    report: dict[str, Any] = {
        "method": f"{choice}+track" if track else choice,
        "tracking": tracking,
        "split": split,
        "train_csv": str(train_csv),
        "test_csv": None if test_csv is None else str(test_csv),
        "n_train": len(train),
        "n_test": len(test),
        "has_truth": test.has_truth,
        "training": describe(trained),
        "selection": {"validation_median_m": val.medians, "chosen": choice, "fusion_k": fused_k},
        "calibration": {
            "holdout": kind,
            "cell_m": cell_m if kind == "spatial" else None,
            "holdout_time_gaps_s": matched,
            "setnet_cov_scale": trained.cov_scale,
            "setnet_cov_floor_m2": trained.cov_floor_m2,
            "fused_cov_scale": fused_scale,
            "fused_cov_floor_m2": fused_floor,
            "validation_before": {k: trained.val_before.get(k) for k in _COVERAGE_KEYS},
            "validation_after": {k: trained.val_after.get(k) for k in _COVERAGE_KEYS},
        },
    }
    errors: dict[str, FloatArray] = {}
    if test.tx_enu is not None:
        reported = _metrics(mu, test.tx_enu, cov)
        report.update(reported)
        models = {
            "setnet": _metrics(smu, test.tx_enu, scov),
            "setnet+knn": _metrics(fmu, test.tx_enu, fcov),
            "setnet_uncalibrated": _coverages(smu, test.tx_enu, scov_raw),
            "setnet+knn_uncalibrated": _coverages(fmu, test.tx_enu, fcov_raw),
        }
        if track:
            models[f"{choice}+track"] = reported
            models[f"{choice}+track_uncalibrated"] = _coverages(mu, test.tx_enu, tcov_raw)
            errors[f"{_errors_label(choice, fused_k)} + track (RTS)"] = np.hypot(
                *(mu - test.tx_enu).T
            )
        report["models"] = models
        errors[_errors_label("setnet", fused_k)] = np.hypot(*(smu - test.tx_enu).T)
        errors[_errors_label("setnet+knn", fused_k)] = np.hypot(*(fmu - test.tx_enu).T)

    if baselines:
        base: dict[str, dict[str, float]] = {}
        rss = RssLogDistance().fit(train)
        rmu, rcov = rss.predict(test)
        if test.tx_enu is not None:
            base["knn"] = {
                **_metrics(kmu, test.tx_enu, kcov),
                "cov_scale": knn.cov_scale,
                "cov_floor_m2": knn.cov_floor_m2,
            }
            rs, rf2 = rss_holdout_calibration(train, kind, seed=cfg.seed, cell_m=cell_m)
            base["rss"] = {
                **_metrics(rmu, test.tx_enu, rs * (rcov + rf2 * np.eye(2)[None])),
                "cov_scale": rs,
                "cov_floor_m2": rf2,
                **{f"uncalibrated_{k}": v for k, v in _coverages(rmu, test.tx_enu, rcov).items()},
                "exponent": rss.exponent,
                "sigma_db": rss.sigma_db,
                "failed": float(rss.n_failed),
            }
            errors["5-NN fingerprint"] = np.hypot(*(kmu - test.tx_enu).T)
            errors["log-distance RSS ML"] = np.hypot(*(rmu - test.tx_enu).T)
        report["baselines"] = base

    rows = prediction_rows(test, mu, cov)
    report["n_predictions"] = len(rows)
    if predictions is not None:
        write_predictions(rows, predictions)
    if plot is not None and errors:
        title = f"POWDER {split or Path(str(test_csv)).name}: error CDF"
        plot_error_cdf(errors, plot, title=title)
    if onnx is not None:
        from heimdall.ml.models.setnet import export_onnx, input_spec

        f = test.frame
        spec = input_spec(
            trained.model,
            frame={"lat0_deg": f.lat0_deg, "lon0_deg": f.lon0_deg, "alt0_m": f.alt0_m},
            # rx_index is the same in every row (the CSV's receivers → the location indexes)
            rx_names={n: int(i) for n, i in zip(train.rx_names, train.rx_index[0], strict=True)},
            extra={
                "training": describe(trained),
                "dataset": "POWDER single_tx",
                "split": split,
                "note": "SetNet ensemble only; the k-NN fusion needs the training fingerprints",
            },
        )
        export_onnx(trained.model, onnx, spec=spec)
    return report


def train_and_test(
    train_csv: str | Path,
    test_csv: str | Path | None,
    split: str | None,
    splits_json: str | Path | None = None,
) -> tuple[PowderSamples, PowderSamples]:
    """The training and test rows of an evaluation: a named split of ``splits.json`` (its
    test rows replaced by ``test_csv`` when given), or all rows but the special splits'
    against ``test_csv``. ``splits.json`` is looked for beside ``train_csv``, then in the
    shared data.

    Raises
    ------
    ValueError
        Neither a test CSV nor a split, or an empty training or test set.
    """
    if test_csv is None and split is None:
        raise ValueError("give a test CSV, a split name, or both")
    train_csv = Path(train_csv)
    data = load_powder_csv(train_csv)
    sp_path = Path(splits_json) if splits_json is not None else train_csv.parent / "splits.json"
    if not sp_path.exists():
        sp_path = DEFAULT_DATA_DIR / "splits.json"
    splits = load_splits(sp_path) if sp_path.exists() else {}
    if split is not None:
        tr_i, te_i = train_test_for_split(data, splits, split)
        train = data.subset(tr_i)
        test = data.subset(te_i) if test_csv is None else load_powder_csv(test_csv)
    else:
        banned = {t for name in SPECIAL_SPLITS for t in splits.get(name, ())}
        train = data.subset(np.array([t not in banned for t in data.timestamps], dtype=bool))
        assert test_csv is not None
        test = load_powder_csv(test_csv)
    if len(train) == 0 or len(test) == 0:
        raise ValueError(f"empty training ({len(train)}) or test ({len(test)}) set")
    return train, test
