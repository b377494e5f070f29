"""A tiny POWDER-layout data set written to a temporary folder (shared by the tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from heimdall.ml.powder.data import POWDER_FRAME

FIXED = ("rx-a", "rx-b", "rx-c", "rx-d", "rx-e")
# ENU positions (m) of the fixed receivers: a 600 m square and its centre
FIXED_ENU = np.array(
    [[-300.0, -300.0], [300.0, -300.0], [300.0, 300.0], [-300.0, 300.0], [0.0, 0.0]]
)


def latlon(e: float, n: float) -> tuple[float, float]:
    lat, lon, _ = POWDER_FRAME.from_enu(e, n, 0.0)
    return float(lat), float(lon)


def write_tiny(folder: Path, n: int = 60, seed: int = 0, with_truth: bool = True) -> Path:
    """Write ``single_tx.csv``, ``location_coordinates.json`` (Python literal),
    ``location_indexes.json`` and ``splits.json``; RSS from a log-distance law."""
    rng = np.random.default_rng(seed)
    coords = {name: latlon(*FIXED_ENU[i]) for i, name in enumerate(FIXED)}
    text = "{\n" + "".join(f'  "{k}": {v!r},\n' for k, v in coords.items())
    text += '  "bus-1": None,\n}\n'
    (folder / "location_coordinates.json").write_text(text)
    (folder / "location_indexes.json").write_text(
        json.dumps({**{k: i for i, k in enumerate(FIXED)}, "bus-1": 5})
    )
    header = ["timestamp", *FIXED, "bus-1_rss", "bus-1_x", "bus-1_y"]
    if with_truth:
        header += ["tx_x_coord", "tx_y_coord"]
    lines = [",".join(header)]
    stamps = []
    for i in range(n):
        tx = rng.uniform(-250.0, 250.0, size=2)
        d = np.linalg.norm(FIXED_ENU - tx, axis=1)
        rss = -30.0 - 25.0 * np.log10(np.maximum(d, 1.0)) + rng.normal(0.0, 2.0, size=d.size)
        cells = [f"{v:.3f}" for v in rss]
        if i % 7 == 3:
            cells[1] = "-101"  # no reading
        if i % 2:
            bpos = rng.uniform(-200.0, 200.0, size=2)
            blat, blon = latlon(*bpos)
            bd = np.linalg.norm(bpos - tx)
            brss = -30.0 - 25.0 * np.log10(max(float(bd), 1.0))
            bus = [f"{brss:.3f}", f"{blat:.7f}", f"{blon:.7f}"]
        else:
            bus = ["-101", "-1", "-1"]
        ts = f"2022-04-25 14:{i // 60:02d}:{i % 60:02d}"
        stamps.append(ts)
        row = [ts, *cells, *bus]
        if with_truth:
            tlat, tlon = latlon(*tx)
            row += [f"{tlat:.8f}", f"{tlon:.8f}"]
        lines.append(",".join(row))
    (folder / "single_tx.csv").write_text("\n".join(lines) + "\n")
    (folder / "splits.json").write_text(
        json.dumps({"random_test": stamps[::5], "indoor": stamps[1:2]})
    )
    return folder / "single_tx.csv"
