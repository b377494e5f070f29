"""The localize stage: an observation in, a position with its covariance out.

The estimate is made in a local ENU frame centred on the receivers' centroid and converted
back to WGS84; the covariance is reported in metres² in the local east/north axes, which at
these distances are the east/north axes at the estimate to well under a degree.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from heimdall.core.derived_ids import derived_event_id
from heimdall.core.errors import EstimationError
from heimdall.core.geodesy import AzimuthalFrame, LocalFrame, latlon_of_enu
from heimdall.ml.estimators.hybrid import estimate_hybrid
from heimdall.ml.estimators.rss import estimate_rss
from heimdall.ml.inference import OnnxLocalizer
from heimdall.ml.tdoa.calibration import PooledVariance
from heimdall.ml.tdoa.fix import CHI2_ALPHA, arrival_sigmas, fix_from_lags, pair_covariance
from heimdall.ml.tdoa.lags import PairLag
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


def _localization(
    obs: Observation,
    lat_deg: float,
    lon_deg: float,
    cov_en: np.ndarray,
    *,
    method: str,
    n_receivers: int,
    converged: bool,
    params: dict[str, float],
    now_ns: int,
    model_version: str | None = None,
) -> Localization:
    """A fix of ``obs``: at the window's middle, the covariance's east/north terms in m²."""
    cov = np.asarray(cov_en, dtype=float)
    return Localization(
        event_id=derived_event_id(
            "localization", (obs.window_start_ns + obs.window_end_ns) // 2, obs.event_id, method
        ),
        observation_id=obs.event_id,
        channel_id=obs.channel_id,
        t_ns=(obs.window_start_ns + obs.window_end_ns) // 2,
        position=Position(lat_deg=float(lat_deg), lon_deg=float(lon_deg), alt_m=0.0),
        cov_ee_m2=float(cov[0, 0]),
        cov_en_m2=float(cov[0, 1]),
        cov_nn_m2=float(cov[1, 1]),
        method=method,
        model_version=model_version,
        n_receivers=n_receivers,
        converged=converged,
        params=params,
        processing_latency_s=processing_latency_s(obs, now_ns),
        published_ns=now_ns,
    )


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
    return _localization(
        obs,
        float(tx_lat),
        float(tx_lon),
        est.cov_en,
        method="rss-ml",
        n_receivers=est.n_receivers,
        converged=bool(est.converged),
        params={
            "tx_power_dbm_1m": float(est.p0_dbm),
            "path_loss_exponent": float(est.path_loss_exponent),
            "residual_rms_db": float(est.residual_rms_db),
        },
        now_ns=time.time_ns(),
    )


def localize_tdoa(obs: Observation, variance: PooledVariance | None = None) -> Localization:
    """The TDOA fix of an observation with ``tdoa_pairs`` (method ``tdoa``).

    The lags, their sigmas (statistical and systematic in quadrature) and the receivers'
    positions go to :func:`heimdall.ml.tdoa.fix.fix_from_lags` with the pairs' statistical
    variances decomposed into per-receiver arrival sigmas (``shared_receivers``: the pairs
    of N receivers hold N − 1 independent differences) and, with four receivers or more, the
    covariance scaled by the fit's reduced χ² when the χ² test rejects the lags' sigmas at
    :data:`~heimdall.ml.tdoa.fix.CHI2_ALPHA` (``scale_by_chi2``: per-receiver delays that no
    pair statistic sees show up only in the redundancy of four receivers or more), the same
    fix as ``heimdall eval tdoa`` makes from recordings (azimuthal-equidistant frame re-centred on
    the fix, so that ranges of hundreds of km are exact geodesics); the covariance is in the
    east/north axes at the fix.

    With ``variance`` (the stream keeps one per channel) the lags' covariance is first
    multiplied by the pooled a-posteriori variance factor of the channel's earlier fixes
    (:class:`~heimdall.ml.tdoa.calibration.PooledVariance`: the sigmas calibrated from the
    fits' redundancy, both ways), and this fix's χ² is added to it afterwards.
    """
    if len(obs.tdoa_pairs) < 2:
        raise EstimationError(f"{len(obs.tdoa_pairs)} TDOA pairs: a 2-D fix needs 2 or more")
    receivers = {m.receiver_id: (m.position.lat_deg, m.position.lon_deg) for m in obs.members}
    pairs = _pair_lags(obs)
    # cross-correlation lags share their receivers' noise: per-receiver arrival sigmas
    # (:func:`~heimdall.ml.tdoa.fix.arrival_sigmas`), as ``heimdall eval tdoa`` does
    # with more receivers than unknowns the residual shows per-receiver delays that no pair
    # statistic sees: the covariance is scaled by the reduced χ² when the χ² test rejects
    # the sigmas (as ``heimdall eval tdoa``)
    fix = fix_from_lags(
        receivers,
        pairs,
        shared_receivers=True,
        scale_by_chi2=True,
        chi2_alpha=CHI2_ALPHA,
        variance_factor=1.0 if variance is None else variance.factor,
    )
    if variance is not None:
        variance.update(fix.chi2, fix.dof)
    return _localization(
        obs,
        fix.lat_deg,
        fix.lon_deg,
        fix.cov_en_m2,
        method="tdoa",
        n_receivers=len({r for p in obs.tdoa_pairs for r in (p.receiver_a, p.receiver_b)}),
        converged=True,
        params={
            "n_pairs": float(len(obs.tdoa_pairs)),
            "sigma_sys_max_us": max(p.sigma_sys_s for p in obs.tdoa_pairs) * 1e6,
            "ambiguous": float(bool(fix.ambiguous)),
            "variance_factor": fix.variance_factor,
            "chi2": fix.chi2,
            "dof": float(fix.dof),
        },
        now_ns=time.time_ns(),
    )


def _pair_lags(obs: Observation) -> list[PairLag]:
    """The observation's TDOA pairs as :class:`~heimdall.ml.tdoa.lags.PairLag` (t_b − t_a)."""
    return [
        PairLag(
            p.receiver_a,
            p.receiver_b,
            -p.tdoa_s,  # Observation: t_a − t_b; PairLag: t_b − t_a
            p.sigma_s,
            p.quality,
            sigma_sys_s=p.sigma_sys_s,
        )
        for p in obs.tdoa_pairs
    ]


#: RSS over a TDOA block is usable with this many receivers (position, P0 and n unknown).
MIN_HYBRID_RSS = 4


def localize_hybrid(obs: Observation, tdoa_fix: Localization) -> Localization:
    """Joint RSS + TDOA fix of a TDOA block (method ``hybrid``), started at its TDOA fix.

    Works in the azimuthal-equidistant frame centred on the TDOA fix (exact geodesic ranges
    from the transmitter, as for the TDOA fix itself). The RSS noise is the larger of the
    members' measurement noise and the RSS-only fit's residual scatter (as the RSS stage
    does); RSS is used only with :data:`MIN_HYBRID_RSS` receivers or more. The lags'
    covariance is the TDOA fix's: per-receiver arrival sigmas (the N(N − 1)/2 pairs of N
    receivers hold N − 1 independent differences, :func:`~heimdall.ml.tdoa.fix.arrival_sigmas`)
    times the variance factor the TDOA fix used (its ``variance_factor`` param).

    Raises
    ------
    EstimationError
        Too few receivers for RSS, or the joint fit fails.
    """
    members = obs.members
    if len(members) < MIN_HYBRID_RSS:
        raise EstimationError(f"{len(members)} receivers: RSS needs {MIN_HYBRID_RSS} or more")
    frame = AzimuthalFrame(tdoa_fix.position.lat_deg, tdoa_fix.position.lon_deg)
    e, n = frame.to_en([m.position.lat_deg for m in members], [m.position.lon_deg for m in members])
    rx = np.column_stack([e, n])
    power = np.array([m.power_dbm for m in members])
    sigma_db = measurement_sigma_db(obs)
    rss = estimate_rss(rx, power, sigma_db=sigma_db)
    sigma_db = max(sigma_db, float(rss.residual_rms_db))
    idx = {m.receiver_id: i for i, m in enumerate(members)}
    toa, widened = arrival_sigmas(_pair_lags(obs))
    factor = float(tdoa_fix.params.get("variance_factor", 1.0))
    est = estimate_hybrid(
        rx,
        power,
        [p.lag_s for p in widened],  # t_b − t_a
        pairs=[(idx[p.b], idx[p.a]) for p in widened],
        cov_s2=pair_covariance(widened, toa, 0.0) * factor,
        sigma_db=sigma_db,
    )
    lat, lon = frame.from_en(est.east_m, est.north_m)
    return _localization(
        obs,
        lat,
        lon,
        est.cov_en,
        method="hybrid",
        n_receivers=len(members),
        converged=bool(est.converged),
        params={
            "tx_power_dbm_1m": float(est.p0_dbm),
            "path_loss_exponent": float(est.path_loss_exponent),
            "residual_rms_db": float(est.residual_rms_db),
            "residual_rms_m": float(est.residual_rms_m),
        },
        now_ns=time.time_ns(),
    )


def localize_onnx(observations: Sequence[Observation], model: OnnxLocalizer) -> list[Localization]:
    """The active ONNX model's estimates for a batch of observations (one ONNX run)."""
    preds = model.predict(observations)
    now = time.time_ns()
    return [
        _localization(
            obs,
            pred.lat_deg,
            pred.lon_deg,
            pred.cov_m2,
            method="onnx",
            n_receivers=len(obs.members),
            converged=True,
            params={},
            now_ns=now,
            model_version=model.version,
        )
        for obs, pred in zip(observations, preds, strict=True)
    ]
