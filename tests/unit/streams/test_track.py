"""Tracks of the localize stage (heimdall.streams.track)."""

from __future__ import annotations

import json

import numpy as np

from heimdall.core.geodesy import LocalFrame, latlon_of_enu
from heimdall.ml.estimators.track import TrackConfig, track_positions
from heimdall.schemas.models import Localization, Position
from heimdall.streams.track import TRACK_SUFFIX, track_key, track_localization

FRAME = LocalFrame(50.0, 8.0, 0.0)
T0_NS = 1_760_000_000_000_000_000


def _fix(
    e: float, n: float, t_s: float, sd_m: float = 50.0, method: str = "rss-ml"
) -> Localization:
    lat, lon = latlon_of_enu(FRAME, e, n)
    return Localization(
        observation_id=f"obs-{t_s}",
        channel_id="ch-145500",
        t_ns=T0_NS + int(t_s * 1e9),
        position=Position(lat_deg=float(lat), lon_deg=float(lon), alt_m=0.0),
        cov_ee_m2=sd_m**2,
        cov_en_m2=0.0,
        cov_nn_m2=sd_m**2,
        method=method,
        n_receivers=7,
    )


def _run(fixes: list[Localization], cfg: TrackConfig) -> list[Localization]:
    state: dict | None = None
    out = []
    for loc in fixes:
        state, tracked = track_localization(loc, state, cfg)
        state = json.loads(json.dumps(state))  # the table stores JSON
        assert tracked is not None
        out.append(tracked)
    return out


def test_a_fixed_transmitter_track_is_the_batch_filter_and_converges() -> None:
    r"""The stream's track of a fixed transmitter equals the batch filter on the same fixes.

    The frame is anchored at the first fix, a few tens of metres from the others, so the
    tangent-plane positions agree with ``FRAME``'s to well under a millimetre after removing
    that offset. The tracker estimates a velocity too, so as q → 0 its position after N
    fixes of variance σ² per axis is the end point of a least-squares straight-line fit,
    with variance σ²·2(2N − 1)/(N(N + 1)) (≈ 4σ²/N, not σ²/N); the white acceleration
    (q = 0.1 m²/s³) adds to it, the weak velocity prior (5 m/s) takes a little off.
    """
    rng = np.random.default_rng(5)
    n, sd = 40, 50.0
    z = rng.normal(0.0, sd, size=(n, 2)) + np.array([300.0, -200.0])
    t = np.arange(n, dtype=float)
    cfg = TrackConfig(accel_psd_m2_s3=0.1, gate=13.8)
    tracked = _run([_fix(e, nn, ts) for (e, nn), ts in zip(z, t, strict=True)], cfg)
    assert all(loc.method == "rss-ml" + TRACK_SUFFIX for loc in tracked)
    assert tracked[-1].observation_id == f"obs-{t[-1]}"
    lat = np.array([loc.position.lat_deg for loc in tracked])
    lon = np.array([loc.position.lon_deg for loc in tracked])
    e, nn, _ = FRAME.to_enu(lat, lon, 0.0)
    causal = TrackConfig(accel_psd_m2_s3=0.1, gate=13.8, smooth=False)
    ref_m, ref_c = track_positions(t, z, np.repeat(np.eye(2)[None] * sd**2, n, 0), causal)
    np.testing.assert_allclose(np.c_[e, nn], ref_m, atol=0.05)
    np.testing.assert_allclose(tracked[-1].cov_ee_m2, ref_c[-1, 0, 0], rtol=1e-9)
    line_fit = sd**2 * 2 * (2 * n - 1) / (n * (n + 1))
    assert 0.8 * line_fit <= tracked[-1].cov_ee_m2 <= 1.5 * line_fit
    assert tracked[-1].params["track_fixes"] == n


def test_late_and_tracked_fixes_are_not_tracked() -> None:
    cfg = TrackConfig()
    state, first = track_localization(_fix(0.0, 0.0, 10.0), None, cfg)
    assert first is not None
    same, none = track_localization(_fix(0.0, 0.0, 5.0), state, cfg)
    assert none is None and same is state
    again, none = track_localization(first, state, cfg)
    assert none is None and again is state


def test_tracks_are_per_channel_and_method() -> None:
    a, b = _fix(0.0, 0.0, 1.0), _fix(0.0, 0.0, 1.0, method="onnx")
    assert track_key(a) != track_key(b)


def test_a_jump_restarts_the_track_in_a_new_frame() -> None:
    """After three gated fixes 5 km away the track restarts there, anchored at that fix."""
    cfg = TrackConfig(gate=13.8)
    fixes = [_fix(0.0, 0.0, float(k), sd_m=20.0) for k in range(5)]
    fixes += [_fix(5000.0, 0.0, 5.0 + k, sd_m=20.0) for k in range(3)]
    out = _run(fixes, cfg)
    gated = [loc.params["fix_gated"] for loc in out[5:]]
    assert gated == [1.0, 1.0, 0.0]
    e, n, _ = FRAME.to_enu(out[-1].position.lat_deg, out[-1].position.lon_deg, 0.0)
    assert abs(float(e) - 5000.0) < 0.01 and abs(float(n)) < 0.01
    assert out[-1].params["track_fixes"] == 1
