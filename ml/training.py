r"""Train, calibrate and apply :class:`~heimdall.ml.models.setnet.SetNet` on labelled set arrays.

A :class:`SetDataset` is N labelled samples, each a padded, masked set of receivers (East,
North in one local frame, RSS, optional SNR, identity index) with the transmitter's East,
North as the label. Every data source (POWDER, the simulator, the ClickHouse history,
:mod:`heimdall.ml.datasets`) produces one, and :func:`train_set_model` trains on it.
Features are built by :func:`heimdall.ml.models.featurize.featurize`, the function inline
inference uses, so training and the stream never compute them two ways.

Procedure of :func:`train_set_model`
------------------------------------
1. Hold out a validation part of the rows: ``"random"`` (rows drawn at random) or
   ``"spatial"`` (whole ``cell_m`` × ``cell_m`` cells of transmitter positions: unseen
   places).
2. Normalisation constants (RSS and, when present, SNR mean/std) from the fitting rows only;
   the position scale is the configuration's (``config.model.norm.pos_scale_m``).
3. Train ``members`` networks (seeds ``seed, seed+1, …``) with AdamW and a one-cycle cosine
   learning rate: ``warmup_epochs`` of MSE on the mean, then the Gaussian NLL
   (:func:`~heimdall.ml.models.setnet.gaussian_nll`). Augmentation: each receiver of a
   training set is dropped with probability ``rx_dropout`` (keeping at least four), and its
   identity is replaced by "unknown" with probability ``id_dropout`` (so the unknown
   embedding is trained and the network does not rely on identities alone).
4. Combine the members (moment-matched mixture), and recalibrate the covariance as
   ``s(Σ + f² I)`` on the validation part so the 1σ/2σ ellipses cover 39.3 %/86.5 % there
   (:func:`~heimdall.ml.evaluation.metrics.fit_covariance_calibration`); the coverage before
   and after is recorded.

Everything is seeded (``torch.manual_seed``, NumPy generators) and runs on CPU with
``torch.set_num_threads(threads)``. With several members and ``parallel_members``, the
members train at once in ``min(members, threads)`` spawned processes with
``threads // processes`` threads each: this small network's operations do not keep two
threads busy, and two one-thread processes finished two members ~17 % sooner than one
two-thread process training them in turn (15 epochs each on POWDER: 16.2 s vs 19.4 s).
Each member depends only on its seed, so the result does not depend on the choice beyond
floating-point summation order.

References
----------
- I. Loshchilov, F. Hutter, "Decoupled Weight Decay Regularization", ICLR 2019 (AdamW);
  "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017 (cosine schedule).
- N. Srivastava et al., "Dropout", JMLR 15, 2014 (here applied to whole set elements).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from queue import Empty
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from heimdall.core.geodesy import LocalFrame
from heimdall.ml.evaluation.metrics import fit_covariance_calibration, localization_metrics
from heimdall.ml.models.featurize import featurize
from heimdall.ml.models.setnet import (
    Normalisation,
    SetNet,
    SetNetConfig,
    SetNetEnsemble,
    gaussian_nll,
)

# The hold-out draws live with the POWDER baselines (which use them too); they are generic.
from heimdall.ml.powder.baselines import random_holdout, spatial_holdout

__all__ = [
    "SetDataset",
    "TrainConfig",
    "TrainedSetNet",
    "describe",
    "fit_normalisation",
    "pack_inputs",
    "predict_arrays",
    "predict_set_model",
    "random_holdout",
    "spatial_holdout",
    "train_set_model",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
Holdout = Literal["random", "spatial"]
Inputs = tuple[npt.NDArray[np.float32], IntArray, BoolArray]


@dataclass(frozen=True)
class SetDataset:
    """N labelled samples, each a masked set of up to R receivers, in one local ENU frame.

    Attributes
    ----------
    enu_m : numpy.ndarray, shape (N, R, 2)
        Receiver East, North in the frame, m (any value where masked).
    rss_dbm : numpy.ndarray, shape (N, R)
        Received power, dBm (NaN where masked).
    snr_db : numpy.ndarray, shape (N, R), or None
        SNR, dB (NaN where absent); None when the source has no SNR.
    rx_id : numpy.ndarray of int64, shape (N, R)
        Receiver identity index (``rx_names`` values); −1 for an unknown receiver.
    mask : numpy.ndarray of bool, shape (N, R)
        True for a real receiver, False for padding.
    y_enu_m : numpy.ndarray, shape (N, 2)
        Transmitter East, North in the frame, m.
    frame : dict
        The frame origin ``{"lat0_deg", "lon0_deg", "alt0_m"}`` (as in the model spec).
    rx_names : dict
        Receiver name → identity index.
    """

    enu_m: FloatArray
    rss_dbm: FloatArray
    snr_db: FloatArray | None
    rx_id: IntArray
    mask: BoolArray
    y_enu_m: FloatArray
    frame: dict[str, float]
    rx_names: dict[str, int]

    def __post_init__(self) -> None:
        n, r = self.mask.shape
        checks = {
            "enu_m": (self.enu_m.shape, (n, r, 2)),
            "rss_dbm": (self.rss_dbm.shape, (n, r)),
            "rx_id": (self.rx_id.shape, (n, r)),
            "y_enu_m": (self.y_enu_m.shape, (n, 2)),
        }
        if self.snr_db is not None:
            checks["snr_db"] = (self.snr_db.shape, (n, r))
        for name, (got, want) in checks.items():
            if tuple(got) != want:
                raise ValueError(f"SetDataset.{name} has shape {tuple(got)}, expected {want}")
        if not {"lat0_deg", "lon0_deg"} <= set(self.frame):
            raise ValueError("SetDataset.frame needs lat0_deg and lon0_deg")

    def __len__(self) -> int:
        return int(self.mask.shape[0])

    @property
    def local_frame(self) -> LocalFrame:
        """The frame as a :class:`~heimdall.core.geodesy.LocalFrame`."""
        f = self.frame
        return LocalFrame(float(f["lat0_deg"]), float(f["lon0_deg"]), float(f.get("alt0_m", 0.0)))

    def subset(self, idx: npt.ArrayLike) -> SetDataset:
        """The samples at ``idx`` (integer indices or a boolean mask over N)."""
        ii = np.asarray(idx)
        return replace(
            self,
            enu_m=self.enu_m[ii],
            rss_dbm=self.rss_dbm[ii],
            snr_db=None if self.snr_db is None else self.snr_db[ii],
            rx_id=self.rx_id[ii],
            mask=self.mask[ii],
            y_enu_m=self.y_enu_m[ii],
        )

    def content_hash(self) -> str:
        """SHA-256 of the data as a model sees it (masked cells zeroed), the frame and names."""
        h = hashlib.sha256()
        m = self.mask
        h.update(np.ascontiguousarray(m).tobytes())
        h.update(np.ascontiguousarray(np.where(m[..., None], self.enu_m, 0.0)).tobytes())
        h.update(np.ascontiguousarray(np.where(m, self.rss_dbm, 0.0)).tobytes())
        if self.snr_db is not None:
            h.update(np.ascontiguousarray(np.where(m, self.snr_db, 0.0)).tobytes())
        h.update(np.ascontiguousarray(np.where(m, self.rx_id, -1)).tobytes())
        h.update(np.ascontiguousarray(self.y_enu_m).tobytes())
        meta = {"frame": self.frame, "rx_names": self.rx_names}
        h.update(json.dumps(meta, sort_keys=True).encode())
        return h.hexdigest()


@dataclass(frozen=True)
class TrainConfig:
    """Training hyper-parameters (defaults: POWDER on 2 CPU cores in well under 5 min).

    ``model.norm.pos_scale_m`` is the position scale of the features and of the output (the
    other normalisation constants are fitted); ``model.n_ids`` is raised to cover every
    identity of the data set.
    """

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
    parallel_members: bool = True
    model: SetNetConfig = field(default_factory=SetNetConfig)

    @property
    def member_seeds(self) -> list[int]:
        """The seed of each ensemble member: ``seed``, ``seed + 1``, …."""
        return [self.seed + k for k in range(self.members)]


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


def fit_normalisation(
    rss_dbm: npt.ArrayLike,
    mask: npt.ArrayLike,
    snr_db: npt.ArrayLike | None = None,
    pos_scale_m: float = 1000.0,
) -> Normalisation:
    """RSS (and SNR, when given) mean/std over every present reading; other constants default.

    Parameters
    ----------
    rss_dbm, snr_db : array (N, R)
        Readings (NaN where absent).
    mask : array (N, R) of bool
        Real receivers.
    pos_scale_m : float
        Position scale of the features and the output, m.
    """
    m = np.asarray(mask, dtype=bool)
    r = np.asarray(rss_dbm, dtype=np.float64)[m]
    out = Normalisation(
        pos_scale_m=pos_scale_m,
        rss_mean_dbm=float(np.mean(r)),
        rss_std_db=max(float(np.std(r)), 1e-3),
    )
    if snr_db is not None:
        s = np.asarray(snr_db, dtype=np.float64)[m]
        s = s[np.isfinite(s)]
        if s.size:
            out = replace(
                out, snr_mean_db=float(np.mean(s)), snr_std_db=max(float(np.std(s)), 1e-3)
            )
    return out


def pack_inputs(
    enu_m: npt.ArrayLike,
    rss_dbm: npt.ArrayLike,
    rx_id: npt.ArrayLike,
    mask: npt.ArrayLike,
    norm: Normalisation,
    snr_db: npt.ArrayLike | None = None,
    max_receivers: int | None = None,
) -> Inputs:
    """The model's ``features``, ``rx_id``, ``mask`` inputs, present receivers packed first.

    Features come from :func:`~heimdall.ml.models.featurize.featurize` (the stream's
    function). Returns arrays of shape (N, R', F), (N, R'), (N, R') with R' the largest set
    size (or ``max_receivers``); padding has ``rx_id`` −1 and zero features.
    """
    m_in = np.asarray(mask, dtype=bool)
    n = m_in.shape[0]
    counts = m_in.sum(axis=1)
    rp = int(max_receivers if max_receivers is not None else max(int(counts.max(initial=0)), 1))
    order = np.argsort(~m_in, axis=1, kind="stable")[:, :rp]  # present first
    rows = np.arange(n)[:, None]
    m = m_in[rows, order]
    if m.shape[1] < rp:  # fewer columns than asked: pad
        pad = rp - m.shape[1]
        m = np.pad(m, ((0, 0), (0, pad)))
    enu = np.asarray(enu_m, dtype=np.float64)[rows, order]
    rss = np.asarray(rss_dbm, dtype=np.float64)[rows, order]
    ids = np.asarray(rx_id, dtype=np.int64)[rows, order]
    snr = None if snr_db is None else np.asarray(snr_db, dtype=np.float64)[rows, order]
    if enu.shape[1] < rp:
        pad = rp - enu.shape[1]
        enu = np.pad(enu, ((0, 0), (0, pad), (0, 0)))
        rss = np.pad(rss, ((0, 0), (0, pad)))
        ids = np.pad(ids, ((0, 0), (0, pad)), constant_values=-1)
        snr = None if snr is None else np.pad(snr, ((0, 0), (0, pad)))
    feats = featurize(enu, rss, m, norm, snr_db=snr)
    return feats, np.where(m, ids, -1).astype(np.int64), m


def predict_arrays(
    model: torch.nn.Module, inputs: Inputs, batch_size: int = 512
) -> tuple[FloatArray, FloatArray]:
    """Mean (N, 2) in m and covariance (N, 2, 2) in m² from packed inputs (:func:`pack_inputs`)."""
    feats, ids, mask = inputs
    model.eval()
    mus, covs = [], []
    with torch.no_grad():
        for s in range(0, feats.shape[0], batch_size):
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


def dataset_inputs(ds: SetDataset, norm: Normalisation) -> Inputs:
    """:func:`pack_inputs` of a data set."""
    return pack_inputs(ds.enu_m, ds.rss_dbm, ds.rx_id, ds.mask, norm, snr_db=ds.snr_db)


def predict_set_model(
    model: torch.nn.Module, ds: SetDataset, norm: Normalisation, batch_size: int = 512
) -> tuple[FloatArray, FloatArray]:
    """Mean (N, 2) in m and covariance (N, 2, 2) in m² for every sample of ``ds``."""
    return predict_arrays(model, dataset_inputs(ds, norm), batch_size)


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
    on_epoch: Callable[[int, float], None] | None = None,
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
        if on_epoch is not None:
            on_epoch(epoch, tot / n)
    net.eval()
    return net


_EPOCH_QUEUE: Any = None


def _init_member_process(queue: Any) -> None:
    """Pool initializer: keep the queue the members report their epochs on."""
    global _EPOCH_QUEUE
    _EPOCH_QUEUE = queue


def _train_member_process(
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    model_cfg: SetNetConfig,
    seed: int,
    threads: int,
) -> dict[str, torch.Tensor]:
    """One member in a spawned process; returns its weights (epochs go to the queue)."""
    torch.set_num_threads(threads)
    queue = _EPOCH_QUEUE

    def report(epoch: int, loss: float) -> None:
        if queue is not None:
            queue.put((seed, epoch, loss))

    with _keep_environment():
        net = _train_member(*tensors, cfg, model_cfg, seed, report)
    return net.state_dict()


def _train_members(
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    model_cfg: SetNetConfig,
    on_epoch: Callable[[int, int, float], None],
) -> list[SetNet]:
    """Train every member, in turn or in parallel processes (module notes)."""
    seeds = cfg.member_seeds
    workers = min(cfg.members, cfg.threads)
    if not cfg.parallel_members or workers < 2:
        members = []
        for sd in seeds:

            def report(epoch: int, loss: float, sd: int = sd) -> None:
                on_epoch(sd, epoch, loss)

            members.append(_train_member(*tensors, cfg, model_cfg, sd, report))
        return members
    try:
        return _train_members_parallel(tensors, cfg, model_cfg, on_epoch, seeds, workers)
    except BrokenProcessPool as exc:
        # e.g. a script without an ``if __name__ == "__main__":`` guard: spawned children
        # cannot import it. Train in this process instead of failing.
        log.warning("parallel training failed (%s); training the members in turn", exc)
        return _train_members(tensors, replace(cfg, parallel_members=False), model_cfg, on_epoch)


def _train_members_parallel(
    tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    cfg: TrainConfig,
    model_cfg: SetNetConfig,
    on_epoch: Callable[[int, int, float], None],
    seeds: list[int],
    workers: int,
) -> list[SetNet]:
    """The members in ``workers`` spawned processes; epochs reported through a queue."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()

    def drain() -> None:
        while True:
            try:
                sd, e, loss = queue.get_nowait()
            except Empty:
                return
            on_epoch(sd, e, loss)

    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=ctx,
        initializer=_init_member_process,
        initargs=(queue,),
    ) as pool:
        futures = [
            pool.submit(
                _train_member_process, tensors, cfg, model_cfg, sd, max(1, cfg.threads // workers)
            )
            for sd in seeds
        ]
        while not all(f.done() for f in futures):
            drain()
            wait(futures, timeout=0.2)
        drain()
        states = [f.result() for f in futures]
    queue.close()
    queue.join_thread()
    members = []
    for state in states:
        net = SetNet(model_cfg)
        net.load_state_dict(state)
        members.append(net.eval())
    return members


def train_set_model(
    ds: SetDataset, config: TrainConfig | None = None, *, progress: bool = True
) -> TrainedSetNet:
    """Train and calibrate a SetNet ensemble on a labelled data set (module notes).

    Parameters
    ----------
    ds : SetDataset
        Training rows; a validation part is held out of them for the calibration.
    config : TrainConfig, optional
    progress : bool
        Show a rich progress bar (one task per member).

    Returns
    -------
    TrainedSetNet
        ``fit_index`` / ``val_index`` are rows of ``ds``.
    """
    cfg = config or TrainConfig()
    if len(ds) == 0:
        raise ValueError("training needs at least one labelled sample")
    torch.set_num_threads(cfg.threads)
    if cfg.holdout == "spatial":
        fit_i, val_i = spatial_holdout(ds.y_enu_m, cfg.val_fraction, cfg.seed, cfg.cell_m)
    else:
        fit_i, val_i = random_holdout(len(ds), cfg.val_fraction, cfg.seed)
    fit_s, val_s = ds.subset(fit_i), ds.subset(val_i)
    norm = fit_normalisation(fit_s.rss_dbm, fit_s.mask, fit_s.snr_db, cfg.model.norm.pos_scale_m)
    n_ids = max(cfg.model.n_ids, max(ds.rx_names.values(), default=-1) + 1)
    model_cfg = replace(cfg.model, norm=norm, n_ids=n_ids)
    f, i, m = dataset_inputs(fit_s, norm)
    feats, ids, mask = torch.from_numpy(f), torch.from_numpy(i), torch.from_numpy(m)
    y = torch.from_numpy((fit_s.y_enu_m / norm.pos_scale_m).astype(np.float32))

    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
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
    tasks = (
        {sd: prog.add_task(f"member seed {sd}", total=cfg.epochs) for sd in cfg.member_seeds}
        if prog is not None
        else {}
    )

    def on_epoch(seed: int, epoch: int, loss: float) -> None:
        history.append({"seed": float(seed), "epoch": float(epoch), "loss": loss})
        if prog is not None:
            prog.update(tasks[seed], advance=1, description=f"member seed {seed} loss {loss:.3f}")

    with _keep_environment():
        try:
            members = _train_members((feats, ids, mask, y), cfg, model_cfg, on_epoch)
        finally:
            if prog is not None:
                prog.stop()
    train_seconds = time.perf_counter() - t0

    ens = SetNetEnsemble(members).eval()
    val_before: dict[str, float] = {}
    val_after: dict[str, float] = {}
    scale, floor = 1.0, 0.0
    if len(val_s):
        mu, cov = predict_set_model(ens, val_s, norm)
        val_before = localization_metrics(mu, val_s.y_enu_m, cov)
        scale, floor = fit_covariance_calibration(mu - val_s.y_enu_m, cov)
        ens.cov_scale.fill_(scale)
        ens.cov_floor_m2.fill_(floor)
        val_after = localization_metrics(mu, val_s.y_enu_m, scale * (cov + floor * np.eye(2)))
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
