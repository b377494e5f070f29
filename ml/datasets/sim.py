"""Simulated training data: labelled measurement-level samples → :class:`SetDataset`.

``ml`` does not import the simulator (``producers``); the caller draws the samples, e.g.
``LabelledGenerator(scenario, seed).uniform_samples(n)`` (``heimdall train`` does), and passes
the batch and the receivers here. A sample becomes a set of the receivers that *detected*
the emission (``detected``: SNR ≥ 6 dB, what the associate stage keeps) with their
``power_dbm`` and ``snr_db``, labelled with the transmitter's position; samples heard by
fewer than ``min_receivers`` are dropped, as the associate stage drops such windows.

Each sample is one chunk's measurement, whereas an observation of the stream averages the
chunks of its window (``power_dbm`` is the mean of the linear powers over up to
``window / chunk`` chunks): the training inputs are slightly noisier than the stream's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from heimdall.core.geodesy import LocalFrame
from heimdall.ml.datasets.frames import centroid_frame, frame_dict
from heimdall.ml.training import SetDataset

__all__ = ["LabelledArrays", "labelled_dataset"]


class LabelledArrays(Protocol):
    """What :func:`labelled_dataset` reads of a labelled batch (the simulator's
    ``LabelledBatch`` has it): P samples over R receivers."""

    @property
    def tx_lat_deg(self) -> npt.NDArray[np.float64]: ...

    @property
    def tx_lon_deg(self) -> npt.NDArray[np.float64]: ...

    @property
    def power_dbm(self) -> npt.NDArray[np.float64]: ...

    @property
    def snr_db(self) -> npt.NDArray[np.float64]: ...

    @property
    def detected(self) -> npt.NDArray[np.bool_]: ...


def labelled_dataset(
    batch: LabelledArrays,
    receivers: Sequence[tuple[str, float, float]],
    *,
    min_receivers: int = 4,
    frame: LocalFrame | None = None,
) -> SetDataset:
    """A :class:`~heimdall.ml.training.SetDataset` of simulated labelled samples.

    Parameters
    ----------
    batch : LabelledArrays
        P samples: truth (P,), ``power_dbm``, ``snr_db``, ``detected`` (P, R).
    receivers : sequence of (receiver_id, lat_deg, lon_deg)
        The R receivers, in the batch's column order.
    min_receivers : int
        Samples detected by fewer receivers are dropped.
    frame : LocalFrame, optional
        Default: the receivers' centroid (:func:`~heimdall.ml.datasets.frames.centroid_frame`).

    Returns
    -------
    SetDataset
        Receiver identities are the receivers' order (``rx_names[id] = column``).
    """
    power = np.asarray(batch.power_dbm, dtype=np.float64)
    if power.ndim != 2 or power.shape[1] != len(receivers):
        raise ValueError(f"batch has {power.shape} powers for {len(receivers)} receivers")
    lat = np.array([r[1] for r in receivers], dtype=np.float64)
    lon = np.array([r[2] for r in receivers], dtype=np.float64)
    fr = frame if frame is not None else centroid_frame(lat, lon)
    e, n, _ = fr.to_enu(lat, lon, np.zeros_like(lat))
    rx_enu = np.column_stack([e, n])
    det = np.asarray(batch.detected, dtype=bool)
    keep = det.sum(axis=1) >= min_receivers
    det = det[keep]
    p = power.shape[0]
    k = int(keep.sum())
    tx_lat = np.asarray(batch.tx_lat_deg, dtype=np.float64)[keep]
    tx_lon = np.asarray(batch.tx_lon_deg, dtype=np.float64)[keep]
    te, tn, _ = fr.to_enu(tx_lat, tx_lon, np.zeros_like(tx_lat))
    r = len(receivers)
    if p and k == 0:
        raise ValueError(f"none of {p} samples was detected by {min_receivers} receivers")
    return SetDataset(
        enu_m=np.broadcast_to(rx_enu, (k, r, 2)).copy(),
        rss_dbm=np.where(det, power[keep], np.nan),
        snr_db=np.where(det, np.asarray(batch.snr_db, dtype=np.float64)[keep], np.nan),
        rx_id=np.where(det, np.arange(r, dtype=np.int64)[None, :], -1),
        mask=det,
        y_enu_m=np.column_stack([np.atleast_1d(te), np.atleast_1d(tn)]).astype(np.float64),
        frame=frame_dict(fr),
        rx_names={r_[0]: j for j, r_ in enumerate(receivers)},
    )
