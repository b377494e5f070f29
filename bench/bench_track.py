"""Tracker speed: fixes per second through the Kalman filter and the RTS smoother, one core.

The tracker is a per-fix Python loop over 4×4 matrices (``ml/estimators/track.py``); this
shows what a stream consumer or an evaluation can push through it.
"""

from __future__ import annotations

import numpy as np

from bench.common import Context, fmt, table, time_per_call
from heimdall.ml.estimators.track import TrackConfig, track_positions

TRACK_LENGTHS = (100, 1000)


def _fixes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A walk at ~1.4 m/s sampled every 4 s with 50 m fix noise (POWDER-like)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n) * 4.0
    heading = np.cumsum(rng.normal(0.0, 0.2, n))
    truth = np.cumsum(5.6 * np.c_[np.cos(heading), np.sin(heading)], axis=0)
    cov = np.repeat(np.eye(2)[None] * 2500.0, n, axis=0)
    return t, truth + rng.normal(0.0, 50.0, (n, 2)), cov


def run(ctx: Context) -> None:
    min_time, repeats = ctx.timing(0.5)
    t = table(
        "track — Kalman filter / RTS smoother over position fixes, one core",
        ["fixes", "mode", "ms per track", "fixes/s"],
        f"median of {repeats} runs, each ≥ {min_time} s; nearly-constant-velocity model, "
        "q = 0.3 m²/s³, a fix every 4 s",
        first_left=2,
    )
    for n in TRACK_LENGTHS:
        tt, z, r = _fixes(n)
        for smooth in (False, True):
            cfg = TrackConfig(accel_psd_m2_s3=0.3, smooth=smooth)
            dt = time_per_call(
                lambda tt=tt, z=z, r=r, cfg=cfg: track_positions(tt, z, r, cfg),
                min_time_s=min_time,
                repeats=repeats,
            )
            ms = dt.median_us / 1000
            t.add_row(
                str(n), "filter + RTS" if smooth else "filter", fmt(ms, 2), fmt(n / ms * 1e3, 0)
            )
    ctx.show(t)
