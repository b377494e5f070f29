"""Ensemble members trained in parallel processes (heimdall.ml.training, module notes)."""

from __future__ import annotations

import multiprocessing as mp
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")

from heimdall.ml.powder.data import load_powder_csv
from heimdall.ml.powder.train import TrainConfig, predict_setnet, train_setnet

from ._tiny import write_tiny


def test_parallel_members_match_the_sequential_ones(tmp_path: Path) -> None:
    """Each member depends only on its seed: trained in two spawned one-thread processes or
    in turn in this one, the ensembles agree up to floating-point summation order (the
    one-thread and two-thread kernels add in different orders), and no process is left."""
    s = load_powder_csv(write_tiny(tmp_path, n=60))
    cfg = TrainConfig(epochs=3, members=2, threads=2, val_fraction=0.2)
    seq = train_setnet(s, replace(cfg, parallel_members=False), progress=False)
    par = train_setnet(s, cfg, progress=False)
    assert not mp.active_children()
    assert len(par.model.members) == 2
    assert sorted({h["seed"] for h in par.history}) == [0.0, 1.0]
    assert len(par.history) == len(seq.history) == 6
    mu_s, _ = predict_setnet(seq.model, s, seq.norm)
    mu_p, cov_p = predict_setnet(par.model, s, par.norm)
    np.testing.assert_allclose(mu_p, mu_s, atol=1.0)  # metres, on a 600 m square
    loss_s = sorted(h["loss"] for h in seq.history)
    loss_p = sorted(h["loss"] for h in par.history)
    assert loss_p == pytest.approx(loss_s, rel=1e-3)
    assert np.all(np.isfinite(cov_p))
