"""The localize stage: an observation in, a position with its covariance out.

The estimate is made in a local ENU frame centred on the receivers' centroid and converted
back to WGS84; the covariance is reported in metres² in the local east/north axes, which at
these distances are the east/north axes at the estimate to well under a degree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from heimdall.core.errors import EstimationError
from heimdall.core.geodesy import LocalFrame, latlon_of_enu
from heimdall.core.ids import new_event_id
from heimdall.ml.estimators.rss import estimate_rss
from heimdall.ml.inference import OnnxLocalizer
from heimdall.schemas.models import Localization, Observation, Position

MIN_SIGMA_DB = 0.01


def processing_latency_s(obs: Observation, now_ns: int) -> float:
    """Chunk to localization, without the window wait: the features stage's delay carried by
    the observation plus the time since the observation was published (0 when unknown)."""
    if not obs.published_ns:
        return 0.0
    return obs.upstream_latency_s + (now_ns - obs.published_ns) / 1e9


def measurement_sigma_db(obs: Observation) -> float:
    """Noise of the members' window-mean powers: the rms of ``power_std_db / sqrt(n)``.

    The estimator takes the larger of this and the fit's residual scatter as the per-receiver
    error, so the covariance is never tighter than the measurements themselves allow.
    """
    var = [m.power_std_db**2 / max(m.n_measurements, 1) for m in obs.members]
    return max(float(np.sqrt(np.mean(var))), MIN_SIGMA_DB)


def localize_rss(obs: Observation) -> Localization:
    """RSS maximum likelihood with unknown transmit power and path-loss exponent."""
    if not obs.members:
        raise EstimationError("observation has no members")
    lat = np.array([m.position.lat_deg for m in obs.members])
    lon = np.array([m.position.lon_deg for m in obs.members])
    alt = np.array([m.position.alt_m for m in obs.members])
    frame = LocalFrame(float(lat.mean()), float(lon.mean()), 0.0)
    e, n, _u = frame.to_enu(lat, lon, alt)
    power = np.array([m.power_dbm for m in obs.members])
    est = estimate_rss(np.column_stack([e, n]), power, sigma_db=measurement_sigma_db(obs))
    tx_lat, tx_lon = latlon_of_enu(frame, est.east_m, est.north_m)
    tx_alt = 0.0
    now = time.time_ns()
    latency_s = processing_latency_s(obs, now)
    return Localization(
        event_id=new_event_id(),
        observation_id=obs.event_id,
        channel_id=obs.channel_id,
        t_ns=(obs.window_start_ns + obs.window_end_ns) // 2,
        position=Position(lat_deg=float(tx_lat), lon_deg=float(tx_lon), alt_m=float(tx_alt)),
        cov_ee_m2=float(est.cov_en[0, 0]),
        cov_en_m2=float(est.cov_en[0, 1]),
        cov_nn_m2=float(est.cov_en[1, 1]),
        method="rss-ml",
        model_version=None,
        n_receivers=est.n_receivers,
        converged=bool(est.converged),
        params={
            "tx_power_dbm_1m": float(est.p0_dbm),
            "path_loss_exponent": float(est.path_loss_exponent),
            "residual_rms_db": float(est.residual_rms_db),
        },
        processing_latency_s=latency_s,
        published_ns=now,
    )


def localize_onnx(observations: Sequence[Observation], model: OnnxLocalizer) -> list[Localization]:
    """The active ONNX model's estimates for a batch of observations (one ONNX run)."""
    preds = model.predict(observations)
    now = time.time_ns()
    out = []
    for obs, pred in zip(observations, preds, strict=True):
        cov = pred.cov_m2
        out.append(
            Localization(
                observation_id=obs.event_id,
                channel_id=obs.channel_id,
                t_ns=(obs.window_start_ns + obs.window_end_ns) // 2,
                position=Position(lat_deg=pred.lat_deg, lon_deg=pred.lon_deg, alt_m=0.0),
                cov_ee_m2=float(cov[0, 0]),
                cov_en_m2=float(cov[0, 1]),
                cov_nn_m2=float(cov[1, 1]),
                method="onnx",
                model_version=model.version,
                n_receivers=len(obs.members),
                converged=True,
                params={},
                processing_latency_s=processing_latency_s(obs, now),
                published_ns=now,
            )
        )
    return out
