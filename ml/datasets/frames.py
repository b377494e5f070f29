"""Frames of data sets: a frame at the receivers' centroid, re-projection, combination.

Every :class:`~heimdall.ml.training.SetDataset` is in one local ENU frame: a position is
the East, North of the point at (lat, lon, altitude 0) — ``frame.to_enu(lat, lon, 0)`` with
Up dropped, as the stream's :class:`~heimdall.ml.inference.OnnxLocalizer` computes its
inputs. Going back (:func:`latlon_of_enu`) finds the point *on the ellipsoid* with that East,
North (Up is about −d²/2R: −370 m at 70 km, so ``from_enu(e, n, 0)`` would be ~20 m off).
Data sets from several sources are combined in one frame: :func:`combine_datasets`
re-projects each through WGS84 into the frame at the centroid of all their receivers and
merges their receiver identities.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from heimdall.core.geodesy import LocalFrame, latlon_of_enu
from heimdall.ml.training import SetDataset

__all__ = [
    "centroid_frame",
    "combine_datasets",
    "frame_dict",
    "latlon_of_enu",
    "receiver_positions",
    "reproject",
    "suggest_pos_scale",
]

FloatArray = npt.NDArray[np.float64]


def frame_dict(frame: LocalFrame) -> dict[str, float]:
    """``{"lat0_deg", "lon0_deg", "alt0_m"}`` of a frame (the model spec's form)."""
    return {
        "lat0_deg": float(frame.lat0_deg),
        "lon0_deg": float(frame.lon0_deg),
        "alt0_m": float(frame.alt0_m),
    }


def centroid_frame(lat_deg: npt.ArrayLike, lon_deg: npt.ArrayLike) -> LocalFrame:
    """The frame at the mean latitude/longitude of some receivers, altitude 0.

    A plain mean of the coordinates: for a network of a few hundred km it is within metres
    of the geodesic centroid, and the frame only needs to be near the middle.
    """
    lat = np.asarray(lat_deg, dtype=np.float64).reshape(-1)
    lon = np.asarray(lon_deg, dtype=np.float64).reshape(-1)
    if lat.size == 0:
        raise ValueError("a centroid needs at least one receiver")
    return LocalFrame(float(lat.mean()), float(lon.mean()), 0.0)


def receiver_positions(ds: SetDataset) -> dict[str, tuple[float, float]]:
    """Mean WGS84 (lat, lon) of every named receiver present in ``ds`` (mobile: the mean)."""
    names = {v: k for k, v in ds.rx_names.items()}
    out: dict[str, tuple[float, float]] = {}
    for idx, name in names.items():
        sel = ds.mask & (ds.rx_id == idx)
        if not sel.any():
            continue
        e = ds.enu_m[..., 0][sel].mean()
        n = ds.enu_m[..., 1][sel].mean()
        lat, lon = latlon_of_enu(ds.local_frame, e, n)
        out[name] = (float(lat), float(lon))
    return out


def reproject(ds: SetDataset, frame: LocalFrame) -> SetDataset:
    """``ds`` with receiver and transmitter positions expressed in ``frame`` (via WGS84,
    altitude 0: :func:`latlon_of_enu`)."""
    src = ds.local_frame
    if (src.lat0_deg, src.lon0_deg, src.alt0_m) == (frame.lat0_deg, frame.lon0_deg, frame.alt0_m):
        return ds

    def move(e: FloatArray, n: FloatArray) -> tuple[FloatArray, FloatArray]:
        lat, lon = latlon_of_enu(src, e, n)
        e2, n2, _ = frame.to_enu(lat, lon, np.zeros_like(e))
        return np.asarray(e2, dtype=np.float64), np.asarray(n2, dtype=np.float64)

    enu = np.zeros_like(ds.enu_m)
    m = ds.mask
    if m.any():
        e2, n2 = move(ds.enu_m[..., 0][m], ds.enu_m[..., 1][m])
        enu[..., 0][m] = e2
        enu[..., 1][m] = n2
    ye, yn = move(ds.y_enu_m[:, 0], ds.y_enu_m[:, 1])
    return SetDataset(
        enu_m=enu,
        rss_dbm=ds.rss_dbm,
        snr_db=ds.snr_db,
        rx_id=ds.rx_id,
        mask=ds.mask,
        y_enu_m=np.column_stack([ye, yn]),
        frame=frame_dict(frame),
        rx_names=dict(ds.rx_names),
    )


def _pad(a: npt.NDArray[np.generic], r: int, value: float | int | bool) -> npt.NDArray[np.generic]:
    extra = r - a.shape[1]
    if extra <= 0:
        return a
    widths = [(0, 0), (0, extra)] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, widths, constant_values=value)


def combine_datasets(
    datasets: Sequence[SetDataset], frame: LocalFrame | Mapping[str, float] | None = None
) -> SetDataset:
    """One data set of several: one frame, one identity per receiver name, padded to one R.

    Parameters
    ----------
    datasets : sequence of SetDataset
        Parts to concatenate (in order).
    frame : LocalFrame or dict, optional
        The frame of the result; default: the centroid of the union of the parts'
        receivers (:func:`centroid_frame`).

    Returns
    -------
    SetDataset
        Receiver names sorted, indexed ``0..K-1``; a receiver without a name keeps −1. SNR
        is kept when any part has it (NaN for the parts without).
    """
    if not datasets:
        raise ValueError("nothing to combine")
    if frame is None:
        pos: dict[str, tuple[float, float]] = {}
        for d in datasets:
            for name, latlon in receiver_positions(d).items():
                pos.setdefault(name, latlon)
        if not pos:
            raise ValueError("the data sets have no named receivers to place a frame")
        target = centroid_frame([q[0] for q in pos.values()], [q[1] for q in pos.values()])
    elif isinstance(frame, LocalFrame):
        target = frame
    else:
        target = LocalFrame(
            float(frame["lat0_deg"]), float(frame["lon0_deg"]), float(frame.get("alt0_m", 0.0))
        )
    names = sorted({n for d in datasets for n in d.rx_names})
    index = {n: i for i, n in enumerate(names)}
    r = max(d.mask.shape[1] for d in datasets)
    any_snr = any(d.snr_db is not None for d in datasets)
    parts = []
    for d in datasets:
        p = reproject(d, target)
        remap = np.full(max(d.rx_names.values(), default=-1) + 2, -1, dtype=np.int64)
        for n, i in d.rx_names.items():
            remap[i] = index[n]
        ids = np.where((p.rx_id >= 0) & (p.rx_id < remap.size - 1), p.rx_id, -1)
        snr = p.snr_db if p.snr_db is not None else np.full(p.mask.shape, np.nan)
        parts.append(
            (
                _pad(p.enu_m, r, 0.0),
                _pad(p.rss_dbm, r, np.nan),
                _pad(snr, r, np.nan),
                _pad(remap[ids], r, -1),
                _pad(p.mask, r, False),
                p.y_enu_m,
            )
        )
    return SetDataset(
        enu_m=np.concatenate([q[0] for q in parts]).astype(np.float64),
        rss_dbm=np.concatenate([q[1] for q in parts]).astype(np.float64),
        snr_db=np.concatenate([q[2] for q in parts]).astype(np.float64) if any_snr else None,
        rx_id=np.concatenate([q[3] for q in parts]).astype(np.int64),
        mask=np.concatenate([q[4] for q in parts]).astype(bool),
        y_enu_m=np.concatenate([q[5] for q in parts]).astype(np.float64),
        frame=frame_dict(target),
        rx_names=index,
    )


def suggest_pos_scale(ds: SetDataset) -> float:
    """A position scale for the model: the RMS distance of the receivers from the frame
    origin, rounded to the nearest (in log) of 1, 2, 5 × 10^k m, at least 100 m.

    So that East/North features and the output are of order one (the network's default of
    1 km suits a campus such as POWDER's; the seed network spans ~150 km).
    """
    m = ds.mask
    if not m.any():
        return 1000.0
    d2 = (ds.enu_m[m] ** 2).sum(axis=-1)
    rms = max(float(np.sqrt(d2.mean())), 100.0)
    k = np.floor(np.log10(rms))
    steps = np.array([1.0, 2.0, 5.0, 10.0]) * 10.0**k
    return float(steps[np.argmin(np.abs(np.log(steps / rms)))])
