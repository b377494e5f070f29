r"""Score the model, the 5-NN fingerprint and the RSS estimator on a changing-network protocol.

Each case of :func:`~heimdall.ml.powder.protocols.protocol_cases` (one for ``time``, one
per seeded draw for ``churn``) is scored; the metrics are computed on the *pooled* cases
(every test row of every draw once per draw): ``median_m``, ``p95_m`` of the radial error
and the fractions ``coverage_1sigma``, ``coverage_2sigma`` of truths inside the 1σ / 2σ
ellipse (:func:`pooled_metrics`; for a calibrated 2-D Gaussian 1 − e^{−1/2} = 39.3 % and
1 − e^{−2} = 86.5 %).

Methods
-------
``model``
    ``model="place"`` (default): the RSS grid posterior
    (:class:`~heimdall.ml.powder.rss_grid.RssGridPosterior`), which uses receivers as
    places: path-loss exponent and per-receiver offsets fitted on the training rows, the
    offsets of receivers never seen in training self-calibrated from the test rows, a
    prior of places learned from the training transmitters, and optionally per-receiver
    residual fields (the training rows' departures from the law, smoothed over places);
    its temperature (:data:`PLACE_TEMPERATURES`) and field blur
    (:data:`PLACE_RESIDUAL_BLURS_M`) chosen for the smallest median and its covariance
    recalibrated as :math:`s(\Sigma + f^2 I + (a d)^2 I)` (:func:`place_covariance`, d the
    estimate's distance to the nearest training transmitter), both on the cross-day
    validation below. Its grid reaches the network's radius beyond the training
    transmitters (:func:`~heimdall.ml.powder.rss_grid.network_margin_m`).
    ``model="setnet"``: the reported
    model of ``heimdall eval powder`` (:mod:`heimdall.ml.powder.evaluate`): the SetNet
    ensemble, or its fusion with a k-NN when that wins on validation rows, with its own
    calibration (hold-out matched in time: whole cells for another day).
``knn``
    The 5-NN fingerprint (:class:`~heimdall.ml.powder.baselines.KnnFingerprint`, the
    fixed receivers that read in training, "no reading" = −101 dBm). Its covariance is the
    spread of the five neighbours' positions plus a 10 m floor, recalibrated as
    :math:`s(\Sigma + f^2 I)` (:func:`~heimdall.ml.evaluation.metrics.fit_covariance_calibration`)
    on predictions of the training rows by **leave-one-day-out cross-validation with the
    protocol imitated** (:func:`cross_day_cases`): each training day in turn is predicted by
    a fingerprint of the other days, after the same kind of churn draw as the test
    (receivers withheld from the other days and revealed, others removed). A test row is a
    day away from training; so is each cross-validation row.
``rss``
    The log-distance RSS estimator (:class:`~heimdall.ml.powder.baselines.RssLogDistance`:
    per-receiver offsets fitted on the training rows, offset 0 for a receiver never seen),
    its Gauss–Newton covariance recalibrated the same way, on every
    :data:`RSS_CV_STRIDE`-th row of the cross-validation days (the estimator costs ~4 ms a
    row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heimdall.ml.evaluation.metrics import (
    FLOOR_CANDIDATES_M,
    TARGET_COVERAGE,
    fit_covariance_calibration,
    fit_covariance_scale,
    mahalanobis2_batch,
)
from heimdall.ml.powder.baselines import KnnFingerprint, RssLogDistance
from heimdall.ml.powder.data import (
    DEFAULT_DATA_DIR,
    PowderSamples,
    load_powder_csv,
    load_splits,
)
from heimdall.ml.powder.protocols import (
    DEFAULT_REMOVED,
    DEFAULT_WITHHELD,
    ProtocolCase,
    anonymise_unseen,
    apply_churn,
    draw_churn,
    protocol_cases,
    reading_fixed_names,
    sample_days,
)
from heimdall.ml.powder.rss_grid import RssGridPosterior, network_margin_m

__all__ = [
    "MODELS",
    "PLACE_EXTRAPOLATION_SLOPES",
    "PLACE_RESIDUAL_BLURS_M",
    "PLACE_TEMPERATURES",
    "PROTOCOL_KEYS",
    "RSS_CV_STRIDE",
    "ProtocolResult",
    "cross_day_cases",
    "evaluate_protocol",
    "fit_knn_for_protocol",
    "fit_place_calibration",
    "fit_place_for_protocol",
    "fit_rss_for_protocol",
    "place_covariance",
    "place_extrapolation_m",
    "pooled_metrics",
]

FloatArray = npt.NDArray[np.float64]
#: Keys of each method's metrics in the protocol report (and its JSON), in order.
PROTOCOL_KEYS = ("median_m", "p95_m", "coverage_1sigma", "coverage_2sigma")
#: Every n-th cross-validation row is predicted by the RSS estimator for its calibration.
RSS_CV_STRIDE = 3
#: Temperatures of the place model chosen among on the cross-day validation.
PLACE_TEMPERATURES = (0.5, 1.0, 2.0, 4.0)
#: Residual-field blurs (m; 0: no fields) of the place model chosen among likewise.
PLACE_RESIDUAL_BLURS_M = (0.0, 100.0)
#: Slopes a (m of standard deviation per m from the nearest training transmitter) of the
#: place model's extrapolation term, chosen among on the cross-day validation.
PLACE_EXTRAPOLATION_SLOPES = (0.0, 0.25, 0.5, 1.0)
#: What ``model`` can be (module notes).
MODELS = ("place", "setnet")
#: A method: (train, test, progress) → (mean (n, 2) m, covariance (n, 2, 2) m²).
Method = Callable[[PowderSamples, PowderSamples, bool], tuple[FloatArray, FloatArray]]


def pooled_metrics(errors: FloatArray, q: FloatArray) -> dict[str, float]:
    """Median and P95 radial error and 1σ/2σ coverage of pooled cases.

    Parameters
    ----------
    errors : array (n, 2)
        Estimate − truth, m.
    q : array (n,)
        Squared Mahalanobis distances of the errors under their covariances.

    Returns
    -------
    dict
        :data:`PROTOCOL_KEYS`: median and 95th percentile (linear interpolation) of
        :math:`\\lVert e\rVert`, fractions of ``q ≤ 1`` and ``q ≤ 4``.
    """
    e = np.hypot(errors[:, 0], errors[:, 1])
    if e.size == 0:
        raise ValueError("no test rows to score")
    return {
        "median_m": float(np.median(e)),
        "p95_m": float(np.percentile(e, 95.0)),
        "coverage_1sigma": float(np.mean(q <= 1.0)),
        "coverage_2sigma": float(np.mean(q <= 4.0)),
    }


def cross_day_cases(
    train: PowderSamples,
    protocol: str,
    seed: int,
    *,
    n_withheld: int = DEFAULT_WITHHELD,
    n_removed: int = DEFAULT_REMOVED,
) -> list[ProtocolCase]:
    """Leave-one-day-out cases of the training rows, with the protocol imitated.

    For each training day: the other days are the fitting rows and the day the held-out
    rows; for ``churn`` a draw (seed ``seed + 1000 + fold``) withholds and removes receivers
    as at test, with as many as the two sides have in common (at most the test's numbers).
    Receivers that never read in the fitting rows are anonymised in the held-out rows.
    """
    days = sample_days(train)
    out: list[ProtocolCase] = []
    for fold, day in enumerate(sorted(set(days.tolist()))):
        fit, held = train.subset(days != day), train.subset(days == day)
        if len(fit) == 0 or len(held) == 0:
            continue
        draw = None
        if protocol == "churn":
            both = len(set(reading_fixed_names(fit)) & set(reading_fixed_names(held)))
            nw = min(n_withheld, both // 2)
            nr = min(n_removed, both - nw - 4) if both - nw > 4 else 0
            draw = draw_churn(fit, held, seed + 1000 + fold, n_withheld=nw, n_removed=nr)
            fit, held = apply_churn(fit, held, draw)
        out.append(ProtocolCase(fit, anonymise_unseen(fit, held), draw))
    return out


def _calibrate(
    cases: list[ProtocolCase], predict: Method, stride: int = 1
) -> tuple[float, float, list[dict[str, float]]]:
    """(s, f², per-fold metrics before calibration) from cross-validation cases."""
    errs, covs, folds = [], [], []
    for c in cases:
        held = c.test.subset(np.arange(0, len(c.test), stride))
        assert held.tx_enu is not None
        mu, cov = predict(c.train, held, False)
        errs.append(mu - held.tx_enu)
        covs.append(cov)
        folds.append(pooled_metrics(errs[-1], mahalanobis2_batch(errs[-1], cov)))
    if not errs:
        return 1.0, 0.0, folds
    s, f2 = fit_covariance_calibration(np.concatenate(errs), np.concatenate(covs))
    return s, f2, folds


def _knn_raw(train: PowderSamples, test: PowderSamples, _p: bool) -> tuple[FloatArray, FloatArray]:
    knn = KnnFingerprint(k=5, holdout_fraction=0.0).fit(train, reading_fixed_names(train))
    return knn.predict(test)


def _rss_raw(train: PowderSamples, test: PowderSamples, _p: bool) -> tuple[FloatArray, FloatArray]:
    return RssLogDistance().fit(train).predict(test)


def fit_knn_for_protocol(
    train: PowderSamples, protocol: str, seed: int = 0, **churn: int
) -> tuple[KnnFingerprint, list[dict[str, float]]]:
    """The 5-NN fingerprint of ``train``, calibrated by cross-day validation (module notes).

    Returns the fitted fingerprint (``cov_scale``, ``cov_floor_m2`` set) and the folds'
    metrics before calibration. ``churn``: ``n_withheld``, ``n_removed`` of
    :func:`cross_day_cases`.
    """
    s, f2, folds = _calibrate(cross_day_cases(train, protocol, seed, **churn), _knn_raw)
    knn = KnnFingerprint(k=5, holdout_fraction=0.0).fit(train, reading_fixed_names(train))
    knn.cov_scale, knn.cov_floor_m2 = s, f2
    return knn, folds


def fit_rss_for_protocol(
    train: PowderSamples, protocol: str, seed: int = 0, **churn: int
) -> tuple[RssLogDistance, tuple[float, float], list[dict[str, float]]]:
    """The RSS estimator fitted on ``train`` and its covariance calibration ``(s, f²)``."""
    cases = cross_day_cases(train, protocol, seed, **churn)
    s, f2, folds = _calibrate(cases, _rss_raw, RSS_CV_STRIDE)
    return RssLogDistance().fit(train), (s, f2), folds


def place_extrapolation_m(model_train: PowderSamples, mean: FloatArray) -> FloatArray:
    """Distance of each estimate to the nearest training transmitter of the model, m."""
    from scipy.spatial import cKDTree

    assert model_train.tx_enu is not None
    d, _ = cKDTree(model_train.tx_enu).query(mean)
    return np.asarray(d, dtype=float)


def place_covariance(
    cov: FloatArray, extrapolation_m: FloatArray, cal: tuple[float, float, float]
) -> FloatArray:
    r"""The place model's published covariance :math:`s(\Sigma + f^2 I + (a\,d)^2 I)`.

    ``cal`` is ``(s, f², a)`` of :func:`fit_place_calibration`; d the estimate's distance to
    the nearest training transmitter (:func:`place_extrapolation_m`).
    """
    s, f2, a = cal
    extra = f2 + (a * extrapolation_m) ** 2
    return s * (cov + extra[:, None, None] * np.eye(2)[None])


def fit_place_calibration(
    err: FloatArray, cov: FloatArray, extrapolation_m: FloatArray
) -> tuple[float, float, float]:
    r"""``(s, f², a)`` of :func:`place_covariance` on cross-day predictions.

    The grid posterior knows the shadowing of the places its training rows went to; where
    it extrapolates (an estimate d metres from every training transmitter) the law's
    departures there are unknown, and its error grows with d. For each floor f
    (:data:`~heimdall.ml.evaluation.metrics.FLOOR_CANDIDATES_M`) and slope a
    (:data:`PLACE_EXTRAPOLATION_SLOPES`) the scale s is fitted to the 1σ/2σ targets
    (:func:`~heimdall.ml.evaluation.metrics.fit_covariance_scale`); the triple whose
    coverages are closest (squared deviations; ties: the earlier, smaller one) wins.
    """
    best: tuple[float, float, float, float] | None = None
    eye = np.eye(2)[None]
    for a in PLACE_EXTRAPOLATION_SLOPES:
        for f in FLOOR_CANDIDATES_M:
            c = cov + (f * f + (a * extrapolation_m) ** 2)[:, None, None] * eye
            s = fit_covariance_scale(err, c)
            q = mahalanobis2_batch(err, s * c)
            obj = (np.mean(q <= 1.0) - TARGET_COVERAGE[0]) ** 2 + (
                np.mean(q <= 4.0) - TARGET_COVERAGE[1]
            ) ** 2
            if best is None or obj < best[0] - 1e-12:
                best = (float(obj), s, f * f, a)
    assert best is not None
    return best[1], best[2], best[3]


def _place_model(train: PowderSamples, blur: float, temperature: float) -> RssGridPosterior:
    """A place model whose grid reaches :func:`network_margin_m` beyond the training places."""
    return RssGridPosterior(
        residual_blur_m=blur, temperature=temperature, margin_m=network_margin_m(train)
    ).fit(train)


def fit_place_for_protocol(
    train: PowderSamples, protocol: str, seed: int = 0, **churn: int
) -> tuple[RssGridPosterior, tuple[float, float, float], dict[str, float]]:
    """The place model of ``train``: residual-field blur, temperature and calibration
    ``(s, f², a)`` (:func:`fit_place_calibration`) chosen on cross-day validation (every
    :data:`RSS_CV_STRIDE`-th row), and the validation medians per ``"blur_m/T"``."""
    keys = [(b, t) for b in PLACE_RESIDUAL_BLURS_M for t in PLACE_TEMPERATURES]
    errs: dict[tuple[float, float], list[FloatArray]] = {k: [] for k in keys}
    covs: dict[tuple[float, float], list[FloatArray]] = {k: [] for k in keys}
    dists: dict[tuple[float, float], list[FloatArray]] = {k: [] for k in keys}
    for c in cross_day_cases(train, protocol, seed, **churn):
        held = c.test.subset(np.arange(0, len(c.test), RSS_CV_STRIDE))
        assert held.tx_enu is not None
        for blur in PLACE_RESIDUAL_BLURS_M:
            fold = _place_model(c.train, blur, RssGridPosterior.temperature)
            for t, (mu, cov) in fold.predict_temperatures(held, PLACE_TEMPERATURES).items():
                errs[blur, t].append(mu - held.tx_enu)
                covs[blur, t].append(cov)
                dists[blur, t].append(place_extrapolation_m(c.train, mu))
    if not errs[keys[0]]:
        return _place_model(train, 0.0, RssGridPosterior.temperature), (1.0, 0.0, 0.0), {}
    med = {k: float(np.median(np.hypot(*np.concatenate(errs[k]).T))) for k in keys}
    best = min(keys, key=lambda k: med[k])
    cal = fit_place_calibration(
        np.concatenate(errs[best]), np.concatenate(covs[best]), np.concatenate(dists[best])
    )
    model = _place_model(train, best[0], best[1])
    return model, cal, {f"{b:g}/{t:g}": m for (b, t), m in med.items()}


def _place_method(protocol: str, seed: int, churn: dict[str, int]) -> Method:
    """The place model (module notes) as a method."""

    def run(
        train: PowderSamples, test: PowderSamples, _progress: bool
    ) -> tuple[FloatArray, FloatArray]:
        model, cal, _ = fit_place_for_protocol(train, protocol, seed, **churn)
        mu, cov = model.predict(test)
        return mu, place_covariance(cov, place_extrapolation_m(train, mu), cal)

    return run


def _model_method(config: Any) -> Method:
    """The reported model of ``eval powder`` as a method (trained once per case)."""

    def run(
        train: PowderSamples, test: PowderSamples, progress: bool
    ) -> tuple[FloatArray, FloatArray]:
        from heimdall.ml.powder.evaluate import fit_reported_model

        fixes = fit_reported_model(train, test, config, progress=progress)
        return fixes.mean, fixes.cov

    return run


@dataclass
class ProtocolResult:
    """A protocol's pooled metrics per method, and what each case was."""

    protocol: str
    model: str
    train_days: tuple[str, ...]
    test_day: str
    n_train: int
    n_test: int
    summary: dict[str, dict[str, float]]
    cases: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, dict[str, dict[str, float]]]:
        """``{protocol: {method: {median_m, p95_m, coverage_1sigma, coverage_2sigma}}}``."""
        return {
            self.protocol: {m: {k: v[k] for k in PROTOCOL_KEYS} for m, v in self.summary.items()}
        }


def evaluate_protocol(
    protocol: str,
    data_csv: str | Path | None = None,
    *,
    splits_json: str | Path | None = None,
    draws: int = 3,
    seed: int = 0,
    n_withheld: int = DEFAULT_WITHHELD,
    n_removed: int = DEFAULT_REMOVED,
    config: Any = None,
    model: str = "place",
    methods: dict[str, Method] | None = None,
    progress: bool = True,
) -> ProtocolResult:
    """Run a protocol (module notes) and score ``model``, ``knn`` and ``rss`` on it.

    Parameters
    ----------
    protocol : {"time", "churn"}
    data_csv : str or Path, optional
        ``single_tx.csv`` (default: the shared data folder's).
    splits_json : str or Path, optional
        Default: ``splits.json`` beside the CSV, else the shared one.
    draws, seed : int
        Churn draws (seeds ``seed … seed + draws − 1``); ``seed`` is also the model's.
    n_withheld, n_removed : int
        Fixed receivers withheld from training / removed at test per churn draw.
    config : TrainConfig, optional
        The SetNet's training configuration (default: ``eval powder``'s).
    model : {"place", "setnet"}
        Which model is ``model`` (module notes).
    methods : dict, optional
        Replace or add methods (name → callable ``(train, test, progress) → (mean, cov)``);
        the default ``model`` is the reported model of ``eval powder``.
    progress : bool
        Rich progress bars.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    csv_path = Path(data_csv) if data_csv is not None else DEFAULT_DATA_DIR / "single_tx.csv"
    data = load_powder_csv(csv_path)
    sp = Path(splits_json) if splits_json is not None else csv_path.parent / "splits.json"
    if not sp.exists():
        sp = DEFAULT_DATA_DIR / "splits.json"
    splits = load_splits(sp) if sp.exists() else {}
    split, cases = protocol_cases(
        data, splits, protocol, draws=draws, seed=seed, n_withheld=n_withheld, n_removed=n_removed
    )
    churn = {"n_withheld": n_withheld, "n_removed": n_removed}

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; known: {', '.join(MODELS)}")
    if model == "setnet":
        if config is None:
            from heimdall.ml.powder.train import POWDER_EPOCHS, TrainConfig

            config = TrainConfig(epochs=POWDER_EPOCHS, seed=seed)
        todo: dict[str, Method] = {"model": _model_method(config)}
    else:
        todo = {"model": _place_method(protocol, seed, churn)}
    if methods:
        todo.update(methods)

    pooled: dict[str, tuple[list[FloatArray], list[FloatArray]]] = {
        m: ([], []) for m in (*todo, "knn", "rss")
    }
    described: list[dict[str, Any]] = []
    prog = (
        Progress(
            TextColumn("{task.description}"), BarColumn(),
            TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), transient=True,
        )
        if progress
        else None
    )  # fmt: skip
    steps_per_case = len(todo) + 2
    if prog is not None:
        prog.start()
    task = prog.add_task(f"{protocol}", total=len(cases) * steps_per_case) if prog else None
    try:
        for i, case in enumerate(cases):
            assert case.test.tx_enu is not None
            truth = case.test.tx_enu
            label = f"{protocol} case {i + 1}/{len(cases)}"
            row: dict[str, Any] = {
                "withheld": list(case.draw.withheld) if case.draw else [],
                "removed": list(case.draw.removed) if case.draw else [],
                "seed": case.draw.seed if case.draw else None,
                "metrics": {},
            }

            def step(what: str, label: str = label) -> None:
                if prog is not None and task is not None:
                    prog.update(task, description=f"{label}: {what}")

            def done() -> None:
                if prog is not None and task is not None:
                    prog.advance(task)

            step("5-NN (cross-day calibration)")
            knn, _ = fit_knn_for_protocol(case.train, protocol, seed, **churn)
            scored = {"knn": knn.predict(case.test)}
            done()
            step("RSS estimator (cross-day calibration)")
            rss, (s, f2), _ = fit_rss_for_protocol(case.train, protocol, seed, **churn)
            rmu, rcov = rss.predict(case.test)
            scored["rss"] = (rmu, s * (rcov + f2 * np.eye(2)[None]))
            done()
            for name, method in todo.items():
                step(name)
                # one live display at a time: the SetNet's training shows its own
                own = prog is not None and name == "model" and model == "setnet"
                if own and prog is not None:
                    prog.stop()
                try:
                    scored[name] = method(case.train, case.test, own)
                finally:
                    if own and prog is not None:
                        prog.start()
                done()
            for name, (mu, cov) in scored.items():
                err = mu - truth
                q = mahalanobis2_batch(err, cov)
                pooled[name][0].append(err)
                pooled[name][1].append(q)
                row["metrics"][name] = pooled_metrics(err, q)
            described.append(row)
    finally:
        if prog is not None:
            prog.stop()
    order = [*todo, "knn", "rss"]
    summary = {
        m: pooled_metrics(np.concatenate(pooled[m][0]), np.concatenate(pooled[m][1])) for m in order
    }
    return ProtocolResult(
        protocol=protocol,
        model=model,
        train_days=split.train_days,
        test_day=split.test_day,
        n_train=int(split.train_index.size),
        n_test=int(split.test_index.size),
        summary=summary,
        cases=described,
    )
