"""TDOA hyperbolas of the dashboard: every drawn point satisfies |p − a| − |p − b| = c τ."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.consumers.dashboard.hyperbola import C_M_S, hyperbola_enu, tdoa_hyperbolas
from heimdall.consumers.dashboard.state import DashboardState
from heimdall.core.geodesy import LocalFrame
from heimdall.ml.estimators.ellipse import error_ellipse
from heimdall.schemas.models import (
    ClockSource,
    Localization,
    Observation,
    ObservationMember,
    Position,
    TdoaPair,
)

RX = {"a": (45.10, 7.60), "b": (45.05, 7.95), "c": (44.85, 7.70), "d": (44.95, 8.05)}
EMITTER = (45.0, 7.8)


def test_branch_points_satisfy_the_range_difference() -> None:
    rng = np.random.default_rng(11)
    for _ in range(20):
        a, b = rng.uniform(-20e3, 20e3, 2), rng.uniform(-20e3, 20e3, 2)
        two_f = float(np.hypot(*(b - a)))
        delta = rng.uniform(-0.95, 0.95) * two_f
        pts = hyperbola_enu(tuple(a), tuple(b), delta, 50e3)
        assert pts is not None and pts.shape == (64, 2)
        diff = np.hypot(*(pts - a).T) - np.hypot(*(pts - b).T)
        assert np.allclose(diff, delta, atol=1e-6 * two_f)
        assert np.max(np.hypot(*(pts - (a + b) / 2).T)) >= 50e3 * 0.99  # reaches out
    assert hyperbola_enu((0.0, 0.0), (1000.0, 0.0), 1000.0, 5e3) is None  # |Δ| = 2f
    bisector = hyperbola_enu((0.0, 0.0), (1000.0, 0.0), 0.0, 5e3)
    assert bisector is not None and np.allclose(bisector[:, 0], 500.0)


def _observation() -> Observation:
    frame = LocalFrame(*EMITTER, 0.0)
    en = {k: np.array(frame.to_enu(*v, 0.0)[:2]) for k, v in RX.items()}
    pairs = tuple(
        TdoaPair(
            receiver_a="a",
            receiver_b=b,
            tdoa_s=(np.hypot(*en["a"]) - np.hypot(*en[b])) / C_M_S,
            sigma_s=1e-7,
        )
        for b in ("b", "c", "d")
    )
    members = tuple(
        ObservationMember(
            receiver_id=k,
            position=Position(lat_deg=lat, lon_deg=lon),
            clock=ClockSource.GPS,
            t_ns=0,
            power_dbm=-90.0,
            power_std_db=1.0,
            snr_db=20.0,
            noise_floor_dbm_hz=-170.0,
            freq_offset_hz=0.0,
            n_measurements=5,
            measurement_ids=("m",),
        )
        for k, (lat, lon) in RX.items()
    )
    return Observation(
        channel_id="ch",
        channel_freq_hz=10e6,
        window_start_ns=0,
        window_end_ns=1,
        members=members,
        tdoa_pairs=pairs,
    )


def test_hyperbolas_of_an_observation_pass_through_the_emitter() -> None:
    obs = _observation()
    lines = tdoa_hyperbolas(obs, *EMITTER)
    assert len(lines) == 3
    frame = LocalFrame(*EMITTER, 0.0)
    for pair, line in zip(obs.tdoa_pairs, lines, strict=True):
        lat, lon = np.array(line).T
        e, n, _ = frame.to_enu(lat, lon, 0.0)
        pa = np.array(frame.to_enu(*RX[pair.receiver_a], 0.0)[:2])
        pb = np.array(frame.to_enu(*RX[pair.receiver_b], 0.0)[:2])
        p = np.stack([e, n], axis=1)
        diff = np.hypot(*(p - pa).T) - np.hypot(*(p - pb).T)
        # lat/lon rounded to 1e-7° (≤ 1.1 cm): the residual stays within a few cm
        assert np.allclose(diff, C_M_S * pair.tdoa_s, atol=0.05)


def test_a_tdoa_fix_carries_its_hyperbolas_an_rss_fix_does_not() -> None:
    s = DashboardState(error_ellipse)
    obs = _observation()
    s.apply(obs)
    for method in ("tdoa", "rss-ml", "tdoa+track"):
        s.apply(
            Localization(
                observation_id=obs.event_id,
                channel_id="ch",
                t_ns=1,
                position=Position(lat_deg=EMITTER[0], lon_deg=EMITTER[1]),
                cov_ee_m2=1e4,
                cov_en_m2=0.0,
                cov_nn_m2=1e4,
                method=method,
                n_receivers=4,
            )
        )
    fixes = {f["method"]: f for f in s.take_delta()["fixes"]}  # type: ignore[index]
    assert len(fixes["tdoa"]["hyperbolas"]) == 3
    assert fixes["rss-ml"]["hyperbolas"] == [] and fixes["tdoa+track"]["hyperbolas"] == []


@pytest.mark.parametrize("bad", [float("nan"), 1.0])  # 1 s: 300,000 km, beyond any baseline
def test_impossible_pairs_are_skipped(bad: float) -> None:
    obs = _observation()
    pairs = (TdoaPair(receiver_a="a", receiver_b="b", tdoa_s=bad, sigma_s=1e-7),)
    assert tdoa_hyperbolas(replace(obs, tdoa_pairs=pairs), *EMITTER) == []
