"""Tracks in the localize stage: each channel's estimates of one method, fused along time.

For every localization the stage publishes, the track of its ``(channel, method)`` is
advanced by the Kalman filter of :class:`heimdall.ml.estimators.track.KalmanTracker` and a
second localization is published with method ``<method>+track``: the filtered position and
covariance at the same time. A fixed transmitter's track converges (its ellipse shrinks as
fixes accumulate); a moving one is followed with the nearly-constant-velocity model. The
filter is causal: nothing waits for later fixes.

State lives in a changelogged table keyed ``"<channel>|<method>"`` (the localize stream is
keyed by channel, so a track stays on one partition): the tracker state plus the local
tangent frame the track is expressed in, anchored at the fix that started it (re-anchored
at every restart, so a track never drifts far from its frame's origin). A fix older than the
track's last one is not tracked (a late observation; the fix itself was still published).

The tracked covariance assumes independent fix errors; where errors persist from fix to
fix (shadowing of a fixed transmitter) it is optimistic — see the module notes of
:mod:`heimdall.ml.estimators.track`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from heimdall.core.derived_ids import derived_event_id
from heimdall.core.geodesy import LocalFrame, latlon_of_enu
from heimdall.ml.estimators.track import KalmanTracker, TrackConfig
from heimdall.schemas.models import Localization, Position

__all__ = ["STREAM_GATE", "TRACK_SUFFIX", "track_key", "track_localization"]

#: Appended to the method of the fixes a track is made of.
TRACK_SUFFIX = "+track"
#: Innovation gate of the stream's tracks: the 99.9 % point of χ² with 2 degrees of freedom.
STREAM_GATE = 13.8


def track_key(loc: Localization) -> str:
    """The table key of the track a localization belongs to."""
    return f"{loc.channel_id}|{loc.method}"


def track_localization(
    loc: Localization, state: dict[str, Any] | None, config: TrackConfig
) -> tuple[dict[str, Any] | None, Localization | None]:
    """Advance the track of ``loc`` by it; returns ``(new state, tracked localization)``.

    ``state`` is the table's value for :func:`track_key` (None or empty for a new track).
    Returns ``(state, None)`` unchanged for a fix older than the track, and for an already
    tracked localization (method ending in :data:`TRACK_SUFFIX`).
    """
    if loc.method.endswith(TRACK_SUFFIX):
        return state, None
    t_s = loc.t_ns / 1e9
    cov = np.array([[loc.cov_ee_m2, loc.cov_en_m2], [loc.cov_en_m2, loc.cov_nn_m2]])
    if state:
        if t_s < float(state["tracker"]["t_s"]):
            return state, None
        frame = LocalFrame(float(state["lat0_deg"]), float(state["lon0_deg"]), 0.0)
        trk = KalmanTracker.from_dict(state["tracker"], config)
    else:
        frame = LocalFrame(loc.position.lat_deg, loc.position.lon_deg, 0.0)
        trk = KalmanTracker(config)
    e, n, _ = frame.to_enu(loc.position.lat_deg, loc.position.lon_deg, 0.0)
    mean, p, fused = trk.update(t_s, [float(e), float(n)], cov)
    if trk.n_fixes == 1:  # a (re)started track: anchor its frame at this fix
        frame = LocalFrame(loc.position.lat_deg, loc.position.lon_deg, 0.0)
        trk.x[:2] = 0.0
        mean = np.zeros(2)
    lat, lon = latlon_of_enu(frame, float(mean[0]), float(mean[1]))
    new_state = {
        "lat0_deg": frame.lat0_deg,
        "lon0_deg": frame.lon0_deg,
        "tracker": trk.to_dict(),
    }
    tracked = Localization(
        # derived from the fix tracked: a replayed fix replaces its tracked row, not adds one
        event_id=derived_event_id("track", loc.t_ns, loc.event_id),
        observation_id=loc.observation_id,
        channel_id=loc.channel_id,
        t_ns=loc.t_ns,
        position=Position(lat_deg=float(lat), lon_deg=float(lon), alt_m=loc.position.alt_m),
        cov_ee_m2=float(p[0, 0]),
        cov_en_m2=float(p[0, 1]),
        cov_nn_m2=float(p[1, 1]),
        method=loc.method + TRACK_SUFFIX,
        model_version=loc.model_version,
        n_receivers=loc.n_receivers,
        converged=bool(fused),
        params={
            "track_fixes": float(trk.n_fixes),
            "speed_ms": float(np.hypot(trk.x[2], trk.x[3])),
            "fix_gated": 0.0 if fused else 1.0,
        },
        processing_latency_s=loc.processing_latency_s,
        published_ns=time.time_ns(),
    )
    return new_state, tracked
