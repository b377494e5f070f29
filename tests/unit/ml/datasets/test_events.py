"""``label_events``: decoded observations labelled by the truth topic's events, as the history
labels them (the pairing itself is tested against chDB in tests/integration/ml)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")

from heimdall.ml.datasets import label_events
from heimdall.schemas.models import ClockSource, Observation, ObservationMember, Position, Truth

S = 1_000_000_000
T0 = 1_796_371_200 * S
RX = [("a", 45.0, 7.0), ("b", 45.2, 7.3), ("c", 44.9, 7.5), ("d", 45.1, 7.9)]


def _obs(channel: str, k: int) -> Observation:
    members = tuple(
        ObservationMember(
            receiver_id=rid, position=Position(lat_deg=lat, lon_deg=lon, alt_m=0.0),
            clock=ClockSource.GPS, t_ns=T0 + k * S, power_dbm=-80.0 + j, power_std_db=0.1,
            snr_db=30.0, noise_floor_dbm_hz=-170.0, freq_offset_hz=0.0, n_measurements=5,
            measurement_ids=(),
        )
        for j, (rid, lat, lon) in enumerate(RX)
    )  # fmt: skip
    return Observation(
        channel_id=channel, channel_freq_hz=145.5e6, window_start_ns=T0 + k * S,
        window_end_ns=T0 + (k + 1) * S, members=members,
    )  # fmt: skip


def _truth(channel: str | None, k: int, lat: float, on: bool = True) -> Truth:
    return Truth(
        source_id="tx", t_ns=T0 + k * S + S // 2, position=Position(lat_deg=lat, lon_deg=7.5,
        alt_m=0.0), freq_hz=145.5e6, channel_id=channel, transmitting=on,
    )  # fmt: skip


def test_range_duplicates_and_keyed_off_truth() -> None:
    obs = [_obs("ch", k) for k in range(6)]
    obs.append(dataclasses.replace(obs[2]))  # the same event twice (archived, then a replay)
    truths = [_truth("ch", k, 45.0 + 0.01 * k, on=k != 4) for k in range(6)]
    truths.append(_truth(None, 3, 10.0))  # no channel: not a label
    data = label_events(reversed(obs), truths, since_ns=T0 + S, until_ns=T0 + 5 * S)
    # windows 1..4; 4's only truth is keyed off
    assert (data.n_observations, len(data.dataset), data.n_unmatched) == (4, 3, 1)
    e, n, _ = data.dataset.local_frame.to_enu(
        np.array([45.01, 45.02, 45.03]), np.full(3, 7.5), np.zeros(3)
    )
    np.testing.assert_allclose(data.dataset.y_enu_m, np.column_stack([e, n]), atol=1e-6)
    np.testing.assert_allclose(data.dataset.rss_dbm[0], [-80.0, -79.0, -78.0, -77.0])


def test_nothing_in_range_is_an_empty_set() -> None:
    data = label_events([_obs("ch", 0)], [_truth("ch", 0, 45.0)], since_ns=T0 + S)
    assert (data.n_observations, len(data.dataset)) == (0, 0)
