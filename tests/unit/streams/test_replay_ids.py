"""A replayed input gives the same output ids (what makes the history tables idempotent)."""

from __future__ import annotations

import numpy as np

from heimdall.schemas.models import Observation
from heimdall.streams.associate import add_measurement, build_observation, close_ready, new_state
from heimdall.streams.features import measure_chunk, measure_chunks, measurement_id
from heimdall.streams.localize import _localization
from tests.unit.schemas.examples import iq_chunk
from tests.unit.streams.test_associate import NOW, POLICY, meas


def test_measurement_id_is_derived_from_the_chunk() -> None:
    chunk = iq_chunk()
    other = iq_chunk(seed=8)  # a different chunk (its own event id)
    first = measure_chunk(chunk)
    assert measure_chunk(chunk).event_id == first.event_id == measurement_id(chunk)
    batch = measure_chunks([chunk, other])
    assert [m.event_id for m in batch] == [first.event_id, measurement_id(other)]  # type: ignore[union-attr]
    assert measurement_id(other) != first.event_id


def observation() -> Observation:
    state = new_state()
    for rx in "abcd":
        state = add_measurement(state, meas(rx, 100), POLICY, NOW).state
    obs = build_observation("145.5000MHz", 0, state["windows"]["0"], POLICY)
    assert obs is not None
    return obs


def test_observation_and_localization_ids_repeat_on_replay() -> None:
    a, b = observation(), observation()
    assert a.event_id == b.event_id
    fixes = [
        _localization(o, 52.0, 4.3, np.eye(2), method=m, n_receivers=4, converged=True,
                      params={}, now_ns=NOW)
        for o in (a, b) for m in ("rss", "tdoa")
    ]  # fmt: skip
    assert fixes[0].event_id == fixes[2].event_id and fixes[1].event_id == fixes[3].event_id
    assert fixes[0].event_id != fixes[1].event_id  # one id per method


def test_tracked_fix_id_is_derived_from_the_fix() -> None:
    """A fix replayed into the track (same fix, the state before it) gets the same tracked id."""
    from heimdall.ml.estimators.track import TrackConfig
    from heimdall.streams.track import track_localization
    from tests.unit.streams.test_track import _fix

    cfg = TrackConfig()
    state, first = track_localization(_fix(0.0, 0.0, 10.0), None, cfg)
    fix = _fix(10.0, 0.0, 20.0)
    _, a = track_localization(fix, state, cfg)
    _, b = track_localization(fix, state, cfg)
    assert first is not None and a is not None and b is not None
    assert a.event_id == b.event_id != first.event_id
    assert a.event_id != fix.event_id  # a result of its own


def test_backlog_after_a_silent_channel_waits_for_every_receiver() -> None:
    """The worker was down (every source silent > idle_ns): the backlog of receiver a comes
    first; window 0 must still wait for b's backlog instead of refusing it as late."""
    from tests.unit.streams.test_associate import CHUNK, W

    state = new_state()
    for rx in "abcd":
        state = add_measurement(state, meas(rx, 0), POLICY, NOW).state
    restart_ns = NOW + 3 * POLICY.idle_ns  # the restarted worker reads the backlog
    for rx in "acd":
        for t in range(CHUNK, 3 * W, CHUNK):
            r = add_measurement(state, meas(rx, t), POLICY, restart_ns)
            state = r.state
            assert r.closed == []  # b, known to the channel, holds the windows
    r = add_measurement(state, meas("b", CHUNK), POLICY, restart_ns + 1)
    assert not r.late and r.closed == []
    state = r.state
    for t in range(2 * CHUNK, 3 * W, CHUNK):
        state = add_measurement(state, meas("b", t), POLICY, restart_ns + 2).state
    # the startup grace again, then the windows every receiver has passed close, complete
    closed = close_ready(state, POLICY, restart_ns + POLICY.startup_grace_ns)
    assert [k for k, _ in closed] == [0, 1, 2]
    assert all(sorted(members) == list("abcd") for _, members in closed)


def test_a_tdoa_block_and_a_window_with_the_same_start_have_different_ids() -> None:
    from heimdall.schemas.models import TdoaPair
    from heimdall.streams.associate import observation_of

    state = new_state()
    for rx in "abcd":
        state = add_measurement(state, meas(rx, 100), POLICY, NOW).state
    members = state["windows"]["0"]
    pair = TdoaPair(receiver_a="a", receiver_b="b", tdoa_s=1e-6, sigma_s=1e-7, method="gcc")
    rss = observation_of("145.5000MHz", 0, POLICY.window_ns, members)
    tdoa = observation_of("145.5000MHz", 0, POLICY.window_ns, members, (pair,))
    assert rss.event_id != tdoa.event_id
    assert (
        tdoa.event_id
        == observation_of("145.5000MHz", 0, POLICY.window_ns, members, (pair,)).event_id
    )
