"""Per-receiver features of the set models: one function for training and for the stream.

A model sees each receiver as the row of :data:`heimdall.ml.models.setnet.FEATURES`::

    east / pos_scale_m, north / pos_scale_m,
    (rss_dbm - rss_mean_dbm) / rss_std_db,
    (snr_db - snr_mean_db) / snr_std_db, has_snr,
    tdoa_s / tdoa_scale_s, has_tdoa

with absent optional values as 0 and their flag 0, and padded receivers all 0 (``mask``
False). Training (``ml/powder``, simulator data) and inline inference (``ml/inference``)
both build their inputs here, so a model never sees features computed two ways.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from heimdall.ml.models.spec import FEATURES, Normalisation

FloatArray = npt.NDArray[np.float64]


def featurize(
    enu_m: npt.ArrayLike,
    rss_dbm: npt.ArrayLike,
    mask: npt.ArrayLike,
    norm: Normalisation,
    snr_db: npt.ArrayLike | None = None,
    tdoa_s: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float32]:
    """Features ``(B, R, len(FEATURES))`` float32 from padded ``(B, R, …)`` arrays.

    Parameters
    ----------
    enu_m : array (B, R, 2)
        Receiver East, North in the model's frame, m.
    rss_dbm : array (B, R)
        Received power, dBm (NaN where absent).
    mask : array (B, R) of bool
        True for a real receiver.
    norm : Normalisation
        The model's constants.
    snr_db, tdoa_s : array (B, R), optional
        Optional features; NaN where absent.
    """
    enu = np.asarray(enu_m, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    b, r = m.shape
    out = np.zeros((b, r, len(FEATURES)), dtype=np.float32)
    out[..., 0] = np.where(m, enu[..., 0] / norm.pos_scale_m, 0.0)
    out[..., 1] = np.where(m, enu[..., 1] / norm.pos_scale_m, 0.0)
    rss = np.asarray(rss_dbm, dtype=np.float64)
    out[..., 2] = np.where(m, (np.nan_to_num(rss) - norm.rss_mean_dbm) / norm.rss_std_db, 0.0)
    for value, scale_col, flag_col, shift, scale in (
        (snr_db, 3, 4, norm.snr_mean_db, norm.snr_std_db),
        (tdoa_s, 5, 6, 0.0, norm.tdoa_scale_s),
    ):
        if value is None:
            continue
        v = np.asarray(value, dtype=np.float64)
        present = m & np.isfinite(v)
        out[..., scale_col] = np.where(present, (np.nan_to_num(v) - shift) / scale, 0.0)
        out[..., flag_col] = present.astype(np.float32)
    return out
