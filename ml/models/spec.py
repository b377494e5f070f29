"""What a set model's ONNX graph expects and returns, without torch (the stream imports this).

:mod:`heimdall.ml.models.setnet` builds and trains the model with torch; inference in the
stream (:mod:`heimdall.ml.inference`) only needs the names and the feature normalisation, and
importing torch would add about a second to every worker's start.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FEATURES", "INPUT_NAMES", "OUTPUT_NAMES", "Normalisation"]

#: Per-receiver feature order of the ``features`` input.
FEATURES = ("east", "north", "rss", "snr", "has_snr", "tdoa", "has_tdoa")
INPUT_NAMES = ("features", "rx_id", "mask")
OUTPUT_NAMES = ("mean_enu_m", "cov_enu_m2")


@dataclass(frozen=True)
class Normalisation:
    """Constants mapping raw per-receiver quantities to the network's features.

    Attributes
    ----------
    pos_scale_m : float
        East/North are divided by this (m); also the output's scale.
    rss_mean_dbm, rss_std_db : float
        RSS feature ``(rss − mean) / std``.
    snr_mean_db, snr_std_db : float
        SNR feature ``(snr − mean) / std``.
    tdoa_scale_s : float
        TDOA feature ``tdoa / scale``.
    """

    pos_scale_m: float = 1000.0
    rss_mean_dbm: float = -75.0
    rss_std_db: float = 12.0
    snr_mean_db: float = 10.0
    snr_std_db: float = 10.0
    tdoa_scale_s: float = 1.0e-5
