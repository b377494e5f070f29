r"""The place model (:class:`~heimdall.ml.powder.rss_grid.RssGridPosterior`) on a shared split.

``heimdall eval powder --split NAME --model place`` (or ``--test CSV --model place``): the
RSS grid posterior in place of the SetNet pipeline, scored beside the same 5-NN fingerprint
and RSS estimator as :func:`~heimdall.ml.powder.evaluate.evaluate_powder`, with a report of
the same layout (``method`` ``"place"``; ``models``: ``place`` and ``place_uncalibrated``).

Selection and calibration use a hold-out of the training rows of the kind the SetNet's
calibration uses for the same test set (:func:`~heimdall.ml.powder.evaluate._holdout`:
matched in time; random rows for ``random_test``, whole cells for ``grid_test`` and a
separate test file): the residual-field blur and the temperature are chosen for the
smallest hold-out median (:data:`~heimdall.ml.powder.protocol_eval.PLACE_RESIDUAL_BLURS_M`,
:data:`~heimdall.ml.powder.protocol_eval.PLACE_TEMPERATURES`), the ellipse
:math:`s(\Sigma + f^2 I + (a d)^2 I)` is fitted on the hold-out
(:func:`~heimdall.ml.powder.protocol_eval.fit_place_calibration`), and the model is then
refitted on every training row. No test row is used for either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heimdall.ml.powder.baselines import (
    KnnFingerprint,
    RssLogDistance,
    random_holdout,
    rss_holdout_calibration,
)
from heimdall.ml.powder.baselines import spatial_holdout as spatial_cells
from heimdall.ml.powder.data import (
    PowderSamples,
)
from heimdall.ml.powder.evaluate import (
    _coverages,
    _holdout,
    _metrics,
    prediction_rows,
    train_and_test,
    write_predictions,
)
from heimdall.ml.powder.protocol_eval import (
    PLACE_RESIDUAL_BLURS_M,
    PLACE_TEMPERATURES,
    _place_model,
    fit_place_calibration,
    place_covariance,
    place_extrapolation_m,
)
from heimdall.ml.powder.rss_grid import RssGridPosterior
from heimdall.ml.powder.train import TrainConfig

__all__ = ["HOLDOUT_FRACTION", "evaluate_place_split", "fit_place_on_holdout"]

FloatArray = npt.NDArray[np.float64]
#: Share of the training rows held out for the place model's selection and calibration.
HOLDOUT_FRACTION = 0.15


def fit_place_on_holdout(
    train: PowderSamples, kind: str, cell_m: float, seed: int = 0
) -> tuple[RssGridPosterior, tuple[float, float, float], dict[str, float]]:
    """Blur, temperature and ``(s, f², a)`` on a hold-out of ``train``; the model refitted
    on all of ``train``. ``kind``: ``"random"`` or ``"spatial"`` (cells of ``cell_m``)."""
    assert train.tx_enu is not None
    if kind == "spatial":
        fit_i, held_i = spatial_cells(train.tx_enu, HOLDOUT_FRACTION, seed, cell_m)
    else:
        fit_i, held_i = random_holdout(len(train), HOLDOUT_FRACTION, seed)
    fit, held = train.subset(fit_i), train.subset(held_i)
    assert held.tx_enu is not None
    runs: dict[tuple[float, float], tuple[FloatArray, FloatArray, FloatArray]] = {}
    for blur in PLACE_RESIDUAL_BLURS_M:
        model = _place_model(fit, blur, RssGridPosterior.temperature)
        for t, (mu, cov) in model.predict_temperatures(held, PLACE_TEMPERATURES).items():
            runs[blur, t] = (mu - held.tx_enu, cov, place_extrapolation_m(fit, mu))
    med = {k: float(np.median(np.hypot(*v[0].T))) for k, v in runs.items()}
    best = min(runs, key=lambda k: med[k])
    cal = fit_place_calibration(*runs[best])
    return (
        _place_model(train, best[0], best[1]),
        cal,
        {f"{b:g}/{t:g}": m for (b, t), m in med.items()},
    )


def evaluate_place_split(
    train_csv: str | Path,
    test_csv: str | Path | None = None,
    split: str | None = None,
    *,
    splits_json: str | Path | None = None,
    seed: int = 0,
    baselines: bool = True,
    predictions: str | Path | None = None,
) -> dict[str, Any]:
    """Fit the place model on the training rows of a split (or all but the special cases
    with ``test_csv``), predict the test rows and score it and the baselines (module notes).

    Returns a report of :func:`~heimdall.ml.powder.evaluate.evaluate_powder`'s layout;
    ``predictions`` keeps the columns ``timestamp,lat,lon,cov_ee,cov_en,cov_nn``.
    """
    train, test = train_and_test(train_csv, test_csv, split, splits_json)

    cfg = TrainConfig(seed=seed)
    kind, cell_m, matched = _holdout(
        "auto", train, test, cfg, split=split, external=test_csv is not None
    )
    model, cal, medians = fit_place_on_holdout(train, kind, cell_m, seed)
    mu, cov_raw = model.predict(test)
    cov = place_covariance(cov_raw, place_extrapolation_m(train, mu), cal)
    report: dict[str, Any] = {
        "method": "place",
        "tracking": None,
        "split": split,
        "train_csv": str(train_csv),
        "test_csv": None if test_csv is None else str(test_csv),
        "n_train": len(train),
        "n_test": len(test),
        "has_truth": test.has_truth,
        "selection": {
            "validation_median_m": medians,
            "residual_blur_m": model.residual_blur_m,
            "temperature": model.temperature,
            "margin_m": model.margin_m,
        },
        "calibration": {
            "holdout": kind,
            "cell_m": cell_m if kind == "spatial" else None,
            "holdout_time_gaps_s": matched,
            "place_cov_scale": cal[0],
            "place_cov_floor_m2": cal[1],
            "place_extrapolation_slope": cal[2],
        },
    }
    if test.tx_enu is not None:
        report.update(_metrics(mu, test.tx_enu, cov))
        report["models"] = {
            "place": _metrics(mu, test.tx_enu, cov),
            "place_uncalibrated": _coverages(mu, test.tx_enu, cov_raw),
        }
    if baselines:
        base: dict[str, dict[str, float]] = {}
        if test.tx_enu is not None:
            knn = KnnFingerprint(k=5, holdout=kind, cell_m=cell_m).fit(train)
            kmu, kcov = knn.predict(test)
            rss = RssLogDistance().fit(train)
            rmu, rcov = rss.predict(test)
            base["knn"] = {
                **_metrics(kmu, test.tx_enu, kcov),
                "cov_scale": knn.cov_scale,
                "cov_floor_m2": knn.cov_floor_m2,
            }
            rs, rf2 = rss_holdout_calibration(train, kind, seed=seed, cell_m=cell_m)
            base["rss"] = {
                **_metrics(rmu, test.tx_enu, rs * (rcov + rf2 * np.eye(2)[None])),
                "cov_scale": rs,
                "cov_floor_m2": rf2,
                **{f"uncalibrated_{k}": v for k, v in _coverages(rmu, test.tx_enu, rcov).items()},
                "exponent": rss.exponent,
                "sigma_db": rss.sigma_db,
                "failed": float(rss.n_failed),
            }
        report["baselines"] = base
    rows = prediction_rows(test, mu, cov)
    report["n_predictions"] = len(rows)
    if predictions is not None:
        write_predictions(rows, predictions)
    return report
