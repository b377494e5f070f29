r"""Train, calibrate and apply :class:`~heimdall.ml.models.setnet.SetNet` on POWDER samples.

Procedure
---------
1. Hold out a validation part of the training rows: ``"random"`` (rows drawn at random,
   like ``random_test``) or ``"spatial"`` (whole 200 m × 200 m cells of transmitter
   positions, like ``grid_test``: unseen places).
2. Normalisation constants (RSS mean/std) from the fitting rows only.
3. Train ``members`` networks (seeds ``seed, seed+1, …``) with AdamW and a cosine learning
   rate: ``warmup_epochs`` of MSE on the mean, then the Gaussian NLL
   (:func:`~heimdall.ml.models.setnet.gaussian_nll`). Augmentation: each receiver of a
   training set is dropped with probability ``rx_dropout`` (keeping at least four), and its
   identity is replaced by "unknown" with probability ``id_dropout`` (so the unknown
   embedding is trained and the network does not rely on identities alone).
4. Combine the members (moment-matched mixture), and recalibrate the covariance as
   ``s(Σ + f² I)`` on the validation part so the 1σ/2σ ellipses cover 39.3 %/86.5 % there
   (:func:`~heimdall.ml.evaluation.metrics.fit_covariance_calibration`); the coverage before
   and after is recorded.

Everything is seeded (``torch.manual_seed``, NumPy generators) and runs on CPU with
``torch.set_num_threads(threads)``.

References
----------
- I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW);
  "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017 (cosine schedule).
- N. Srivastava et al., "Dropout", JMLR 15, 2014 (here applied to whole set elements).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from heimdall.ml.evaluation.metrics import fit_covariance_calibration, localization_metrics
from heimdall.ml.models.setnet import (
    FEATURES,
    Normalisation,
    SetNet,
    SetNetConfig,
    SetNetEnsemble,
    gaussian_nll,
)
from heimdall.ml.powder.baselines import random_holdout, spatial_holdout
from heimdall.ml.powder.data import PowderSamples

__all__ = [
    "TrainConfig",
    "TrainedSetNet",
    "fit_normalisation",
    "predict_setnet",
    "samples_to_arrays",
    "spatial_holdout",
    "train_setnet",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Holdout = Literal["random", "spatial"]


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (defaults: POWDER on 2 CPU cores in well under 5 min)."""

    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 5
    rx_dropout: float = 0.15
    id_dropout: float = 0.05
    members: int = 2
    seed: int = 0
    val_fraction: float = 0.15
    holdout: Holdout = "random"
    cell_m: float = 200.0
    threads: int = 2
    model: SetNetConfig = field(default_factory=SetNetConfig)


@dataclass
class TrainedSetNet:
    """A trained, calibrated ensemble and what was measured while making it.

    Attributes
    ----------
    model : SetNetEnsemble
        Calibrated (``model.cov_scale``) ensemble, eval mode.
    norm : Normalisation
        The feature constants the model expects.
    val_before, val_after : dict
        Validation metrics before / after the covariance inflation.
    cov_scale : float
        The fitted inflation s.
    cov_floor_m2 : float
        The fitted isotropic floor f² (m²): calibrated Σ = s(Σ̄ + f² I).
    train_seconds : float
        Wall time of training (all members), s.
    history : list of dict
        Per member and epoch: training loss.
    fit_index, val_index : numpy.ndarray
        Rows of the training samples used to fit / held out for calibration.
    """

    model: SetNetEnsemble
    norm: Normalisation
    val_before: dict[str, float]
    val_after: dict[str, float]
    cov_scale: float
    cov_floor_m2: float
    train_seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    fit_index: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    val_index: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


@contextmanager
def _keep_environment() -> Iterator[None]:
    """Undo environment variables torch sets as a side effect (its first optimizer step sets
    ``TORCHINDUCTOR_CACHE_DIR``): a library call should not change the process environment."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for k in set(os.environ) - set(before):
            os.environ.pop(k, None)
        for k, v in before.items():
            if os.environ.get(k) != v:
                os.environ[k] = v


def fit_normalisation(samples: PowderSamples, pos_scale_m: float = 1000.0) -> Normalisation:
    """RSS mean/std over every reading of ``samples``; other constants at their defaults."""
    r = samples.rss_dbm[samples.mask]
    return Normalisation(
        pos_scale_m=pos_scale_m,
        rss_mean_dbm=float(np.mean(r)),
        rss_std_db=max(float(np.std(r)), 1e-3),
    )


def samples_to_arrays(
    samples: PowderSamples, norm: Normalisation, max_receivers: int | None = None
) -> tuple[npt.NDArray[np.float32], IntArray, npt.NDArray[np.bool_]]:
    """Pack each sample's receivers to the front: ``features``, ``rx_id``, ``mask`` arrays.

    Returns arrays of shape (N, R', F), (N, R'), (N, R') with R' the largest set size (or
    ``max_receivers``), features in :data:`~heimdall.ml.models.setnet.FEATURES` order. POWDER
    has no SNR or TDOA, so those features and their flags are 0.
    """
    n = len(samples)
    counts = samples.mask.sum(axis=1)
    rp = int(max_receivers if max_receivers is not None else max(int(counts.max(initial=0)), 1))
    feats = np.zeros((n, rp, len(FEATURES)), dtype=np.float32)
    ids = np.full((n, rp), -1, dtype=np.int64)
    mask = np.zeros((n, rp), dtype=bool)
    order = np.argsort(~samples.mask, axis=1, kind="stable")[:, :rp]  # present first
    rows = np.arange(n)[:, None]
    m = samples.mask[rows, order]
    enu = samples.rx_enu[rows, order]
    rss = samples.rss_dbm[rows, order]
    feats[..., 0] = np.where(m, enu[..., 0] / norm.pos_scale_m, 0.0)
    feats[..., 1] = np.where(m, enu[..., 1] / norm.pos_scale_m, 0.0)
    feats[..., 2] = np.where(m, (np.nan_to_num(rss) - norm.rss_mean_dbm) / norm.rss_std_db, 0.0)
    ids[:] = np.where(m, samples.rx_index[rows, order], -1)
    mask[:] = m
    return feats, ids, mask


def _augment(
    feats: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor, cfg: TrainConfig, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    drop = torch.rand(mask.shape, generator=g) < cfg.rx_dropout
    new = mask & ~drop
    ok = new.sum(dim=1, keepdim=True) >= 4
    mask = torch.where(ok, new, mask)
    unk = torch.rand(ids.shape, generator=g) < cfg.id_dropout
    ids = torch.where(unk, torch.full_like(ids, -1), ids)
    return ids, mask


def _train_member(
    feats: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    y: torch.Tensor,
    cfg: TrainConfig,
    model_cfg: SetNetConfig,
    seed: int,
    progress: Progress | None,
    history: list[dict[str, float]],
) -> SetNet:
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    net = SetNet(model_cfg)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = feats.shape[0]
    steps_per_epoch = max(1, math.ceil(n / cfg.batch_size))
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1, anneal_strategy="cos"
    )
    task = progress.add_task(f"member seed {seed}", total=cfg.epochs) if progress else None
    net.train()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        tot = 0.0
        for s in range(0, n, cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            bid, bmask = _augment(feats[b], ids[b], mask[b], cfg, g)
            mu, chol = net.raw(feats[b], bid, bmask)
            if epoch < cfg.warmup_epochs:
                loss = ((mu - y[b]) ** 2).sum(dim=1).mean() + gaussian_nll(mu.detach(), chol, y[b])
            else:
                loss = gaussian_nll(mu, chol, y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 5.0)
            opt.step()
            sched.step()
            tot += float(loss.detach()) * b.numel()
        history.append({"seed": float(seed), "epoch": float(epoch), "loss": tot / n})
        if progress is not None and task is not None:
            progress.update(task, advance=1, description=f"member seed {seed} loss {tot / n:.3f}")
    net.eval()
    return net


def predict_setnet(
    model: torch.nn.Module, samples: PowderSamples, norm: Normalisation, batch_size: int = 512
) -> tuple[FloatArray, FloatArray]:
    """Mean (N, 2) in m and covariance (N, 2, 2) in m² for every sample."""
    feats, ids, mask = samples_to_arrays(samples, norm)
    model.eval()
    mus, covs = [], []
    with torch.no_grad():
        for s in range(0, len(samples), batch_size):
            mu, cov = model(
                torch.from_numpy(feats[s : s + batch_size]),
                torch.from_numpy(ids[s : s + batch_size]),
                torch.from_numpy(mask[s : s + batch_size]),
            )
            mus.append(mu.double().numpy())
            covs.append(cov.double().numpy())
    if not mus:
        return np.zeros((0, 2)), np.zeros((0, 2, 2))
    return np.concatenate(mus), np.concatenate(covs)


def train_setnet(
    samples: PowderSamples, config: TrainConfig | None = None, *, progress: bool = True
) -> TrainedSetNet:
    """Train and calibrate a SetNet ensemble on labelled samples (module notes).

    Parameters
    ----------
    samples : PowderSamples
        Training rows (with truth); a validation part is held out of them.
    config : TrainConfig, optional
    progress : bool
        Show a rich progress bar.

    Returns
    -------
    TrainedSetNet
    """
    cfg = config or TrainConfig()
    if samples.tx_enu is None:
        raise ValueError("training needs labelled samples")
    torch.set_num_threads(cfg.threads)
    if cfg.holdout == "spatial":
        fit_i, val_i = spatial_holdout(samples.tx_enu, cfg.val_fraction, cfg.seed, cfg.cell_m)
    else:
        fit_i, val_i = random_holdout(len(samples), cfg.val_fraction, cfg.seed)
    fit_s, val_s = samples.subset(fit_i), samples.subset(val_i)
    norm = fit_normalisation(fit_s, cfg.model.norm.pos_scale_m)
    model_cfg = SetNetConfig(**{**cfg.model.__dict__, "norm": norm})
    f, i, m = samples_to_arrays(fit_s, norm)
    feats, ids, mask = torch.from_numpy(f), torch.from_numpy(i), torch.from_numpy(m)
    assert fit_s.tx_enu is not None
    y = torch.from_numpy((fit_s.tx_enu / norm.pos_scale_m).astype(np.float32))

    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    members: list[SetNet] = []
    prog = (
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            transient=True,
        )
        if progress
        else None
    )
    if prog is not None:
        prog.start()
    with _keep_environment():
        try:
            for k in range(cfg.members):
                members.append(
                    _train_member(feats, ids, mask, y, cfg, model_cfg, cfg.seed + k, prog, history)
                )
        finally:
            if prog is not None:
                prog.stop()
    train_seconds = time.perf_counter() - t0

    ens = SetNetEnsemble(members).eval()
    val_before: dict[str, float] = {}
    val_after: dict[str, float] = {}
    scale, floor = 1.0, 0.0
    if len(val_s) and val_s.tx_enu is not None:
        mu, cov = predict_setnet(ens, val_s, norm)
        val_before = localization_metrics(mu, val_s.tx_enu, cov)
        scale, floor = fit_covariance_calibration(mu - val_s.tx_enu, cov)
        ens.cov_scale.fill_(scale)
        ens.cov_floor_m2.fill_(floor)
        val_after = localization_metrics(mu, val_s.tx_enu, scale * (cov + floor * np.eye(2)))
    return TrainedSetNet(
        model=ens,
        norm=norm,
        val_before=val_before,
        val_after=val_after,
        cov_scale=scale,
        cov_floor_m2=floor,
        train_seconds=train_seconds,
        history=history,
        fit_index=fit_i,
        val_index=val_i,
    )


def describe(trained: TrainedSetNet) -> dict[str, Any]:
    """Small JSON-able summary of a training run (for reports and the model spec)."""
    return {
        "train_seconds": trained.train_seconds,
        "cov_scale": trained.cov_scale,
        "cov_floor_m2": trained.cov_floor_m2,
        "val_before_calibration": trained.val_before,
        "val_after_calibration": trained.val_after,
        "members": len(trained.model.members),
    }
