r"""Load the POWDER single-transmitter RSS data as variable-size sets of receivers.

File layout (see the data folder's README)
------------------------------------------
``single_tx.csv`` has one row per transmission: ``timestamp``; one RSS column (dBm,
uncalibrated) per fixed receiver, named after it; three columns ``bus-N_rss``, ``bus-N_x``,
``bus-N_y`` per shuttle receiver (``x`` is the *latitude* and ``y`` the *longitude*); and
``tx_x_coord``, ``tx_y_coord`` (latitude, longitude of the transmitter).

* ``-101`` in an RSS cell means *no reading* (the receiver was not part of the sample); it is
  **not** a weak signal, and it is turned into a masked-out receiver here, never into a value.
* A shuttle at ``-1, -1`` has no position: it is masked out as well (its RSS cannot be used
  by a position-aware estimator). So is one at ``0, 0`` (84 cells of ``single_tx.csv`` carry
  this GPS-less placeholder with a real RSS).
* ``location_coordinates.json`` gives the fixed receivers' (lat, lon) — shuttles are ``None``.
  It is written with Python tuple syntax and ``None``, so it is parsed with
  :func:`ast.literal_eval`, not :mod:`json`.
* ``location_indexes.json`` gives a stable identity index 0..39 per receiver name.
* ``splits.json`` lists the ``timestamp`` values of each named split.

Representation
--------------
A :class:`PowderSamples` holds N samples over the R receivers named by the CSV's columns, in
column order, as padded arrays plus a boolean ``mask``: sample ``i`` is the *set*
``{(rx_enu[i, j], rss_dbm[i, j], rx_index[i, j]) : mask[i, j]}``. Positions are metres East and
North in one fixed local tangent frame for the campus (:data:`POWDER_FRAME`, via
:mod:`heimdall.core.geodesy`), so data from other CSVs (other days, other receivers) shares the
frame. A receiver whose name is not in ``location_indexes.json`` gets ``rx_index = -1``
(the learned model maps it to a shared "unknown" embedding); a fixed receiver with no known
position is dropped with a warning (it cannot be placed in the frame).

A test CSV may lack some receivers (their columns are simply absent) or the transmitter
columns (``tx_enu`` is then ``None``).

References
----------
- F. Mitchell, N. Patwari, A. Bhaskara, S. K. Kasera, "Learning-based Techniques for
  Transmitter Localization: A Case Study on Model Robustness", IEEE SECON 2023.
- Zenodo record 7259895, "A Dataset of Outdoor RSS Measurements for Localization".
"""

from __future__ import annotations

import ast
import csv
import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from heimdall.core.geodesy import LocalFrame
from heimdall.core.shared_data import shared_data_dir

__all__ = [
    "DEFAULT_DATA_DIR",
    "MISSING_RSS_DBM",
    "POWDER_FRAME",
    "SPECIAL_SPLITS",
    "PowderSamples",
    "load_location_coordinates",
    "load_location_indexes",
    "load_powder_csv",
    "load_splits",
    "train_test_for_split",
]

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

#: Where the shared copy of the data set lives (``../shared/data/powder`` beside the clone).
DEFAULT_DATA_DIR = shared_data_dir("powder")
#: The CSV's "no reading" marker (dBm); never a measurement.
MISSING_RSS_DBM = -101.0
#: One fixed local ENU frame for the University of Utah campus (about the centroid of the
#: fixed receivers), so every CSV is expressed in the same metres.
POWDER_FRAME = LocalFrame(40.7660, -111.8420, 0.0)
#: Special test cases that are never training data for the random/grid splits.
SPECIAL_SPLITS = ("off_campus", "indoor", "stationary0", "stationary1", "stationary2")

_TX_LAT, _TX_LON = "tx_x_coord", "tx_y_coord"


def load_location_coordinates(path: str | Path) -> dict[str, tuple[float, float] | None]:
    """Fixed receivers' (lat, lon) from ``location_coordinates.json`` (Python literal syntax).

    Parameters
    ----------
    path : str or Path
        The file; its content is a Python dict literal with tuples and ``None``.

    Returns
    -------
    dict
        name → ``(lat_deg, lon_deg)``, or ``None`` for a mobile (shuttle) receiver.
    """
    raw = ast.literal_eval(Path(path).read_text())
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a dict literal")
    out: dict[str, tuple[float, float] | None] = {}
    for name, val in raw.items():
        if val is None:
            out[str(name)] = None
        else:
            lat, lon = val
            out[str(name)] = (float(lat), float(lon))
    return out


def load_location_indexes(path: str | Path) -> dict[str, int]:
    """Receiver name → stable identity index from ``location_indexes.json``."""
    return {str(k): int(v) for k, v in json.loads(Path(path).read_text()).items()}


def load_splits(path: str | Path) -> dict[str, list[str]]:
    """Split name → list of ``timestamp`` strings, from ``splits.json``."""
    return {str(k): [str(t) for t in v] for k, v in json.loads(Path(path).read_text()).items()}


@dataclass(frozen=True)
class PowderSamples:
    """N samples, each a masked set of receivers, in the frame :data:`POWDER_FRAME`.

    Attributes
    ----------
    timestamps : numpy.ndarray of str, shape (N,)
    rx_names : tuple of str, length R
        Receiver of each column of the per-receiver arrays.
    is_mobile : numpy.ndarray of bool, shape (R,)
        Shuttle receivers (position per sample).
    rx_enu : numpy.ndarray, shape (N, R, 2)
        Receiver East/North in metres (0 where masked).
    rss_dbm : numpy.ndarray, shape (N, R)
        RSS in dBm (NaN where masked).
    rx_index : numpy.ndarray of int64, shape (N, R)
        Identity index from ``location_indexes.json``; −1 for a receiver not listed there.
    mask : numpy.ndarray of bool, shape (N, R)
        True where the receiver has a reading *and* a position.
    tx_enu : numpy.ndarray, shape (N, 2), or None
        Transmitter East/North in metres; None when the CSV has no transmitter columns.
    frame : LocalFrame
        The local frame of every ENU coordinate here.
    """

    timestamps: npt.NDArray[np.str_]
    rx_names: tuple[str, ...]
    is_mobile: BoolArray
    rx_enu: FloatArray
    rss_dbm: FloatArray
    rx_index: IntArray
    mask: BoolArray
    tx_enu: FloatArray | None
    frame: LocalFrame = POWDER_FRAME

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def has_truth(self) -> bool:
        """The transmitter positions are known."""
        return self.tx_enu is not None

    def subset(self, idx: npt.ArrayLike) -> PowderSamples:
        """The samples at ``idx`` (integer indices or a boolean mask over N)."""
        ii = np.asarray(idx)
        return replace(
            self,
            timestamps=self.timestamps[ii],
            rx_enu=self.rx_enu[ii],
            rss_dbm=self.rss_dbm[ii],
            rx_index=self.rx_index[ii],
            mask=self.mask[ii],
            tx_enu=None if self.tx_enu is None else self.tx_enu[ii],
        )

    def indices_of(self, timestamps: Iterable[str]) -> IntArray:
        """Row indices of the given timestamps that are present (in this data's order)."""
        wanted = set(timestamps)
        return np.flatnonzero([t in wanted for t in self.timestamps]).astype(np.int64)

    def fixed_rss_matrix(
        self, names: Sequence[str], missing_dbm: float = MISSING_RSS_DBM
    ) -> FloatArray:
        """RSS of the named receivers as a dense (N, len(names)) matrix, ``missing_dbm`` if absent.

        This is the fingerprint vector of the k-NN baseline: receivers the CSV lacks and
        masked cells both read ``missing_dbm`` (the README's reference does the same).
        """
        col = {n: j for j, n in enumerate(self.rx_names)}
        out = np.full((len(self), len(names)), float(missing_dbm))
        for k, name in enumerate(names):
            j = col.get(name)
            if j is None:
                continue
            out[:, k] = np.where(self.mask[:, j], self.rss_dbm[:, j], missing_dbm)
        return out

    @property
    def fixed_names(self) -> tuple[str, ...]:
        """Names of the fixed (non-shuttle) receivers, in column order."""
        return tuple(n for n, m in zip(self.rx_names, self.is_mobile, strict=True) if not m)

    def tx_latlon(self) -> FloatArray | None:
        """Transmitter (lat, lon) in degrees, shape (N, 2), or None."""
        if self.tx_enu is None:
            return None
        lat, lon, _ = self.frame.from_enu(self.tx_enu[:, 0], self.tx_enu[:, 1], 0.0)
        return np.c_[lat, lon]


def _num(cell: str | None) -> float:
    if cell is None:
        return float("nan")
    s = cell.strip()
    if not s:
        return float("nan")
    try:
        return float(s)
    except ValueError:
        return float("nan")


def load_powder_csv(
    csv_path: str | Path,
    *,
    coordinates: Mapping[str, tuple[float, float] | None] | str | Path | None = None,
    indexes: Mapping[str, int] | str | Path | None = None,
    frame: LocalFrame = POWDER_FRAME,
    include_mobile: bool = True,
) -> PowderSamples:
    """Read a POWDER-layout CSV (``single_tx.csv`` or a test file of the same layout).

    Parameters
    ----------
    csv_path : str or Path
        The CSV.
    coordinates : mapping or path, optional
        Fixed receivers' positions, or the path of ``location_coordinates.json``; default: the
        file next to the CSV, else the one in :data:`DEFAULT_DATA_DIR`.
    indexes : mapping or path, optional
        Receiver identity indexes, or the path of ``location_indexes.json`` (same default).
    frame : LocalFrame
        The local frame of the output (default :data:`POWDER_FRAME`).
    include_mobile : bool
        Keep the shuttle receivers (``bus-N_rss/_x/_y``).

    Returns
    -------
    PowderSamples

    Notes
    -----
    RSS cells equal to −101 (or empty / non-numeric) are *no reading* and masked out; a
    shuttle with position (−1, −1), (0, 0) or a non-finite one is masked out. A column that is
    neither a shuttle triple, the timestamp, a transmitter column, nor a receiver with a known
    position is ignored with a warning.
    """
    csv_path = Path(csv_path)
    coords = _resolve(coordinates, csv_path, "location_coordinates.json", load_location_coordinates)
    idx_map = _resolve(indexes, csv_path, "location_indexes.json", load_location_indexes)

    with csv_path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader)]
        rows = [r for r in reader if r and any(c.strip() for c in r)]
    col = {h: j for j, h in enumerate(header)}
    if "timestamp" not in col:
        raise ValueError(f"{csv_path}: no 'timestamp' column")

    buses = [h[: -len("_rss")] for h in header if h.endswith("_rss")]
    buses = [b for b in buses if f"{b}_x" in col and f"{b}_y" in col]
    bus_cols = {f"{b}{s}" for b in buses for s in ("_rss", "_x", "_y")}
    fixed: list[str] = []
    for h in header:
        if h in ("timestamp", _TX_LAT, _TX_LON) or h in bus_cols:
            continue
        pos = coords.get(h)
        if pos is None:
            log.warning("receiver column %r has no known position: ignored", h)
            continue
        fixed.append(h)
    if not include_mobile:
        buses = []

    n = len(rows)
    names = tuple(fixed + buses)
    r = len(names)
    data = np.array([[_num(c) for c in row] for row in rows], dtype=float).reshape(n, len(header))

    rss = np.full((n, r), np.nan)
    lat = np.full((n, r), np.nan)
    lon = np.full((n, r), np.nan)
    for j, name in enumerate(fixed):
        rss[:, j] = data[:, col[name]]
        pos = coords[name]
        assert pos is not None
        lat[:, j], lon[:, j] = pos
    for k, b in enumerate(buses):
        j = len(fixed) + k
        rss[:, j] = data[:, col[f"{b}_rss"]]
        bx, by = data[:, col[f"{b}_x"]], data[:, col[f"{b}_y"]]
        bad = (bx == -1.0) | (by == -1.0) | ~np.isfinite(bx) | ~np.isfinite(by)
        bad |= ((bx == 0.0) & (by == 0.0)) | (np.abs(bx) > 90.0) | (np.abs(by) > 180.0)
        lat[:, j] = np.where(bad, np.nan, bx)
        lon[:, j] = np.where(bad, np.nan, by)

    mask = np.isfinite(rss) & (rss != MISSING_RSS_DBM) & np.isfinite(lat) & np.isfinite(lon)
    e, nn, _ = frame.to_enu(
        np.where(mask, lat, frame.lat0_deg), np.where(mask, lon, frame.lon0_deg)
    )
    rx_enu = np.where(mask[..., None], np.stack([e, nn], axis=-1), 0.0)
    rss = np.where(mask, rss, np.nan)
    rx_index = np.array([idx_map.get(nm, -1) for nm in names], dtype=np.int64)
    rx_index = np.broadcast_to(rx_index, (n, r)).copy()

    tx_enu: FloatArray | None = None
    if _TX_LAT in col and _TX_LON in col:
        tlat, tlon = data[:, col[_TX_LAT]], data[:, col[_TX_LON]]
        if np.all(np.isfinite(tlat)) and np.all(np.isfinite(tlon)):
            te, tn, _ = frame.to_enu(tlat, tlon, 0.0)
            tx_enu = np.c_[te, tn]
        else:
            log.warning("%s: transmitter columns incomplete: treated as unlabelled", csv_path)

    timestamps = np.array([row[col["timestamp"]].strip() for row in rows], dtype=str)
    return PowderSamples(
        timestamps=timestamps,
        rx_names=names,
        is_mobile=np.array([False] * len(fixed) + [True] * len(buses), dtype=bool),
        rx_enu=rx_enu,
        rss_dbm=rss,
        rx_index=rx_index,
        mask=mask,
        tx_enu=tx_enu,
        frame=frame,
    )


def _resolve(
    given: Mapping[str, Any] | str | Path | None,
    csv_path: Path,
    filename: str,
    loader: Callable[[Path], dict[str, Any]],
) -> dict[str, Any]:
    if isinstance(given, Mapping):
        return dict(given)
    if given is None:
        near = csv_path.parent / filename
        given = near if near.exists() else DEFAULT_DATA_DIR / filename
    return loader(Path(given))


def train_test_for_split(
    samples: PowderSamples,
    splits: Mapping[str, Sequence[str]],
    split: str,
    *,
    exclude: Sequence[str] = SPECIAL_SPLITS,
) -> tuple[IntArray, IntArray]:
    """Row indices (train, test) of a named split, the dataset authors' protocol.

    Test: the split's rows. Train: every other row except the special test cases
    (``off_campus``, ``indoor``, ``stationary*``).
    """
    if split not in splits:
        raise KeyError(f"unknown split {split!r}; known: {sorted(splits)}")
    test = samples.indices_of(splits[split])
    banned = set(splits[split])
    for name in exclude:
        banned.update(splits.get(name, ()))
    train = np.flatnonzero([t not in banned for t in samples.timestamps]).astype(np.int64)
    return train, test
