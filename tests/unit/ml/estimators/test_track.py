"""Kalman filter / RTS smoother over position fixes (heimdall.ml.estimators.track)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from heimdall.ml.estimators.track import (
    KalmanTracker,
    TrackConfig,
    track_positions,
)


def _random_covs(rng: np.random.Generator, n: int, lo_m: float, hi_m: float) -> np.ndarray:
    """SPD 2×2 covariances with standard deviations in [lo_m, hi_m] and random orientation."""
    sd = rng.uniform(lo_m, hi_m, size=(n, 2))
    th = rng.uniform(0, np.pi, size=n)
    c, s = np.cos(th), np.sin(th)
    rot = np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)
    return np.einsum("nij,nj,nkj->nik", rot, sd**2, rot)


def test_stationary_target_is_the_information_weighted_mean() -> None:
    r"""With no motion (v0 → 0, q → 0) the model is a constant position x observed N times.

    The causal estimate after k fixes is then the information-weighted mean
    :math:`\hat x_k = (\sum_{i\le k} R_i^{-1})^{-1} \sum_{i\le k} R_i^{-1} z_i` with covariance
    :math:`(\sum_{i\le k} R_i^{-1})^{-1}`, and the smoothed estimate at every k is that of all
    N fixes (Bar-Shalom et al. 2001, §5.2: the KF is recursive weighted least squares).
    """
    rng = np.random.default_rng(1)
    n = 30
    r = _random_covs(rng, n, 5.0, 40.0)
    z = np.array([100.0, -50.0]) + np.einsum(
        "nij,nj->ni", np.linalg.cholesky(r), rng.standard_normal((n, 2))
    )
    t = np.arange(n) * 4.0
    cfg = TrackConfig(accel_psd_m2_s3=1e-12, v0_ms=1e-9, smooth=False)
    mf, pf = track_positions(t, z, r, cfg)
    info = np.linalg.inv(r)
    cum_info = np.cumsum(info, axis=0)
    cum_iz = np.cumsum(np.einsum("nij,nj->ni", info, z), axis=0)
    expect_p = np.linalg.inv(cum_info)
    expect_m = np.einsum("nij,nj->ni", expect_p, cum_iz)
    np.testing.assert_allclose(mf, expect_m, atol=1e-4)
    np.testing.assert_allclose(pf, expect_p, rtol=1e-5, atol=1e-6)
    ms, ps = track_positions(t, z, r, TrackConfig(accel_psd_m2_s3=1e-12, v0_ms=1e-9))
    np.testing.assert_allclose(ms, np.repeat(expect_m[-1:], n, axis=0), atol=1e-4)
    np.testing.assert_allclose(ps, np.repeat(expect_p[-1:], n, axis=0), rtol=1e-5, atol=1e-6)


def _simulate(rng: np.random.Generator, n: int, dt: float, q: float) -> tuple[np.ndarray, ...]:
    """A nearly-constant-velocity track with white acceleration of PSD q, and noisy fixes."""
    x = np.array([0.0, 0.0, 1.0, -0.5])
    eye = np.eye(2)
    f = np.block([[eye, dt * eye], [np.zeros((2, 2)), eye]])
    qm = q * np.block([[dt**3 / 3 * eye, dt**2 / 2 * eye], [dt**2 / 2 * eye, dt * eye]])
    lq = np.linalg.cholesky(qm)
    truth = np.zeros((n, 2))
    for k in range(n):
        if k:
            x = f @ x + lq @ rng.standard_normal(4)
        truth[k] = x[:2]
    r = _random_covs(rng, n, 10.0, 60.0)
    z = truth + np.einsum("nij,nj->ni", np.linalg.cholesky(r), rng.standard_normal((n, 2)))
    return np.arange(n) * dt, truth, z, r


def test_covariance_is_consistent_and_smoothing_helps() -> None:
    r"""Under the model, the normalised estimation error squared is χ²₂: E[NEES] = 2.

    NEES_k = (x̂_k − x_k)ᵀ P_k⁻¹ (x̂_k − x_k) at one time index over M independent runs has
    mean 2 and standard deviation 2/√M (Bar-Shalom et al. 2001, §5.4.2); averaged over
    M = 400 runs at three indices (1200 values, nearly independent) the standard deviation is
    2/√1200 ≈ 0.058, and the bound ±0.25 is about 4σ. The smoother's
    covariance is never larger than the filter's, so its RMSE is lower; both beat raw fixes.
    """
    rng = np.random.default_rng(7)
    q, dt, n, runs = 0.2, 4.0, 60, 400
    cfg_f = TrackConfig(accel_psd_m2_s3=q, v0_ms=2.0, smooth=False)
    cfg_s = TrackConfig(accel_psd_m2_s3=q, v0_ms=2.0, smooth=True)
    idx = [20, 40, 59]
    nees_f, nees_s = [], []
    se_raw = se_f = se_s = 0.0
    for _ in range(runs):
        t, truth, z, r = _simulate(rng, n, dt, q)
        # the simulated initial velocity (1, −0.5) m/s lies well inside v0 = 2 m/s
        mf, pf = track_positions(t, z, r, cfg_f)
        ms, ps = track_positions(t, z, r, cfg_s)
        ef, es = mf - truth, ms - truth
        nees_f.append([ef[i] @ np.linalg.solve(pf[i], ef[i]) for i in idx])
        nees_s.append([es[i] @ np.linalg.solve(ps[i], es[i]) for i in idx])
        se_raw += float(np.sum((z - truth) ** 2))
        se_f += float(np.sum(ef**2))
        se_s += float(np.sum(es**2))
    assert abs(np.mean(nees_f) - 2.0) < 0.25
    assert abs(np.mean(nees_s) - 2.0) < 0.25
    assert se_s < se_f < se_raw


def test_a_long_gap_starts_a_new_track() -> None:
    """After a gap > max_gap_s the causal estimate is the new fix itself (re-initialised)."""
    t = np.array([0.0, 4.0, 8.0, 500.0, 504.0])
    z = np.array([[0.0, 0.0], [5.0, 0.0], [10.0, 0.0], [2000.0, 2000.0], [2004.0, 2000.0]])
    r = np.repeat(np.eye(2)[None] * 100.0, 5, axis=0)
    mf, pf = track_positions(t, z, r, TrackConfig(smooth=False))
    np.testing.assert_allclose(mf[3], z[3])
    np.testing.assert_allclose(pf[3], r[3])
    ms, _ = track_positions(t, z, r, TrackConfig(smooth=True))
    assert np.all(np.hypot(*(ms[3:] - z[3:]).T) < 10.0)  # nothing leaks across the gap
    assert np.all(np.hypot(*(ms[:3] - z[:3]).T) < 10.0)


def test_gate_rejects_a_wild_fix() -> None:
    """A fix 1 km off a stationary track (σ = 10 m) has νᵀS⁻¹ν ≫ 13.8 and is not fused."""
    t = np.arange(6) * 4.0
    z = np.zeros((6, 2))
    z[3] = [1000.0, 0.0]
    r = np.repeat(np.eye(2)[None] * 100.0, 6, axis=0)
    gated, _ = track_positions(t, z, r, TrackConfig(gate=13.8, smooth=False))
    open_, _ = track_positions(t, z, r, TrackConfig(smooth=False))
    assert abs(gated[3, 0]) < 1.0
    assert open_[3, 0] > 100.0


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        track_positions([0.0, 2.0, 1.0], np.zeros((3, 2)), np.repeat(np.eye(2)[None], 3, axis=0))
    with pytest.raises(ValueError, match="lengths differ"):
        track_positions([0.0, 1.0], np.zeros((3, 2)), np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match="accel_psd"):
        TrackConfig(accel_psd_m2_s3=0.0)


def test_streaming_tracker_equals_the_batch_filter_and_survives_a_round_trip() -> None:
    """Fix by fix (with the state serialised and restored half-way) = the batch filter."""
    rng = np.random.default_rng(3)
    t, _truth, z, r = _simulate(rng, 40, 4.0, 0.2)
    t[20:] += 100.0  # a gap: a new track
    cfg = TrackConfig(accel_psd_m2_s3=0.2, smooth=False)
    ref_m, ref_c = track_positions(t, z, r, cfg)
    trk = KalmanTracker(cfg)
    for k in range(40):
        if k == 25:
            trk = KalmanTracker.from_dict(json.loads(json.dumps(trk.to_dict())), cfg)
        m, c, fused = trk.update(t[k], z[k], r[k])
        assert fused
        np.testing.assert_allclose(m, ref_m[k], atol=1e-9)
        np.testing.assert_allclose(c, ref_c[k], atol=1e-9)
    with pytest.raises(ValueError, match="older"):
        trk.update(t[10], z[10], r[10])
    trk.reset()
    assert trk.t_s is None and trk.n_fixes == 0


def test_a_track_that_only_rejects_restarts() -> None:
    """Three gated fixes in a row (the transmitter moved 2 km) restart the track there."""
    trk = KalmanTracker(TrackConfig(gate=13.8), max_gated=3)
    r = np.eye(2) * 100.0
    for k in range(5):
        trk.update(4.0 * k, [0.0, 0.0], r)
    fused = [trk.update(20.0 + 4.0 * k, [2000.0, 0.0], r)[2] for k in range(3)]
    assert fused == [False, False, True]
    assert trk.n_fixes == 1 and np.allclose(trk.x[:2], [2000.0, 0.0])


def test_moving_model_without_process_noise_is_a_straight_line_fit() -> None:
    r"""With q → 0 and no velocity prior (v0 → ∞) the filter is least squares on a line.

    For N fixes at equal steps with variance σ² per axis, the variance of the fitted line at
    the last fix is :math:`σ^2\,2(2N-1)/(N(N+1))` (the prediction variance of simple linear
    regression at the end of the design), and the estimate is the fitted line's end point.
    """
    n, sd = 25, 30.0
    t = np.arange(n) * 2.0
    rng = np.random.default_rng(11)
    z = np.c_[3.0 * t, -1.0 * t] + rng.normal(0.0, sd, size=(n, 2))
    r = np.repeat(np.eye(2)[None] * sd**2, n, axis=0)
    cfg = TrackConfig(accel_psd_m2_s3=1e-12, v0_ms=1e6, smooth=False)
    mf, pf = track_positions(t, z, r, cfg)
    expect = sd**2 * 2 * (2 * n - 1) / (n * (n + 1))
    np.testing.assert_allclose(pf[-1], np.eye(2) * expect, rtol=1e-4, atol=1e-6)
    for axis in range(2):
        slope, icpt = np.polyfit(t, z[:, axis], 1)
        assert mf[-1, axis] == pytest.approx(slope * t[-1] + icpt, abs=1e-3)
