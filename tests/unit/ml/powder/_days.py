"""A tiny POWDER-layout data set spread over several days (for the time/churn protocols)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from heimdall.ml.powder.data import PowderSamples

from ._tiny import write_tiny

#: The days of :func:`write_days`, in order; the last is the test day.
DAYS = ("2022-07-05", "2022-07-06", "2022-07-11")


def write_days(folder: Path, n: int = 90, seed: int = 0) -> Path:
    """:func:`~._tiny.write_tiny` rows dealt round-robin over :data:`DAYS` (row i on day i % 3);
    the ``indoor`` split (a special case) names one row of the last day."""
    path = write_tiny(folder, n=n, seed=seed)
    rows = list(csv.reader(path.open()))
    for i, row in enumerate(rows[1:]):
        row[0] = f"{DAYS[i % len(DAYS)]} 10:{i // 60:02d}:{i % 60:02d}"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    stamps = [r[0] for r in rows[1:]]
    (folder / "splits.json").write_text(json.dumps({"indoor": [stamps[2]], "random_test": []}))
    return path


def synthetic(
    days: list[str], names: list[str], reads: np.ndarray, mobile: list[bool] | None = None
) -> PowderSamples:
    """Samples with one row per entry of ``days``; ``reads[i, j]``: receiver j reads in row i."""
    n, r = reads.shape
    rng = np.random.default_rng(1)
    return PowderSamples(
        timestamps=np.array([f"{d} 12:00:{i % 60:02d}" for i, d in enumerate(days)]),
        rx_names=tuple(names),
        is_mobile=np.array(mobile or [False] * r, dtype=bool),
        rx_enu=np.where(reads[..., None], rng.normal(0.0, 300.0, (n, r, 2)), 0.0),
        rss_dbm=np.where(reads, rng.normal(-70.0, 5.0, (n, r)), np.nan),
        rx_index=np.tile(np.arange(r, dtype=np.int64), (n, 1)),
        mask=reads.astype(bool),
        tx_enu=rng.normal(0.0, 200.0, (n, 2)),
    )
