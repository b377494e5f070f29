"""Event-time association: windows, watermark, lateness, the minimum receiver count."""

from __future__ import annotations

import math

import pytest

from heimdall.core.ids import new_event_id
from heimdall.schemas.models import ClockSource, Measurement, Position
from heimdall.streams.associate import (
    WindowPolicy,
    add_measurement,
    build_observation,
    close_ready,
    new_state,
)

W = 1_000_000_000  # 1 s windows
CHUNK = 200_000_000  # 0.2 s chunks
POLICY = WindowPolicy(window_ns=W, lateness_ns=0, min_receivers=4, idle_ns=10 * W)
NOW = 1_000 * W  # a wall clock, injected


def meas(rx: str, t_ns: int, power_dbm: float = -80.0) -> Measurement:
    return Measurement(
        event_id=new_event_id(),
        chunk_id=new_event_id(),
        receiver_id=rx,
        t_ns=t_ns,
        duration_s=CHUNK / 1e9,
        clock=ClockSource.GPS,
        position=Position(lat_deg=45.0, lon_deg=7.5, alt_m=100.0),
        channel_id="145.5000MHz",
        channel_freq_hz=145.5e6,
        channel_bw_hz=9600.0,
        power_dbm=power_dbm,
        noise_floor_dbm_hz=-168.0,
        snr_db=30.0,
        freq_offset_hz=12.0,
        occupied_bw_hz=100.0,
        detected=True,
        psd_dbm_hz=(),
        psd_bin_hz=0.0,
        chunk_published_ns=1,
        published_ns=2,
    )


class Clock:
    """Wall clock for the tests: 1 ms per call."""

    def __init__(self, start_ns: int) -> None:
        self.ns = start_ns

    def __call__(self) -> int:
        self.ns += 1_000_000
        return self.ns


def test_no_window_closes_while_receivers_may_still_appear() -> None:
    state = new_state()
    clock = Clock(NOW)
    for t in range(0, 5 * W, CHUNK):
        r = add_measurement(state, meas("a", t), POLICY, clock())
        state = r.state
        assert r.closed == []
    r = add_measurement(state, meas("a", 5 * W), POLICY, NOW + 1_000_000 + POLICY.idle_ns)
    assert [k for k, _ in r.closed] == [0, 1, 2, 3, 4]


def test_window_waits_for_the_slowest_receiver() -> None:
    """Receivers a, b, c run 2 s ahead of d in event time (another partition); window 0
    stays open until d's chunk ending at 1.0 s has arrived, and then holds all four."""
    state = new_state()
    state = add_measurement(state, meas("a", 0), POLICY, NOW).state
    clock = Clock(NOW + POLICY.idle_ns)  # start-up grace over
    for rx in "bcd":
        state = add_measurement(state, meas(rx, 0), POLICY, clock()).state
    closed: list[int] = []
    for t in range(CHUNK, 3 * W, CHUNK):
        for rx in "abc":
            r = add_measurement(state, meas(rx, t), POLICY, clock())
            state = r.state
            closed += [k for k, _ in r.closed]
        if t <= 2 * CHUNK:  # d keeps talking, but lags
            state = add_measurement(state, meas("d", t), POLICY, clock()).state
    assert closed == []
    for t in (3 * CHUNK, 4 * CHUNK):
        r = add_measurement(state, meas("d", t), POLICY, clock())
        state = r.state
        closed += [k for k, _ in r.closed]
    assert closed == [0]
    assert sorted(r.closed[0][1]) == list("abcd")
    assert "1" in state["windows"]


def test_idle_receiver_stops_holding_the_window() -> None:
    state = new_state()
    state = add_measurement(state, meas("a", 0), POLICY, NOW).state
    clock = Clock(NOW + POLICY.idle_ns)
    for rx in "bcde":
        state = add_measurement(state, meas(rx, 0), POLICY, clock()).state
    # e goes silent; a-d move on: window 0 waits for e ...
    for rx in "abcd":
        r = add_measurement(state, meas(rx, 5 * CHUNK), POLICY, clock())
        state = r.state
    assert r.closed == []
    # ... until e has been silent for longer than idle_ns of wall time
    r = add_measurement(state, meas("a", 6 * CHUNK), POLICY, clock.ns + POLICY.idle_ns)
    assert [k for k, _ in r.closed] == [0]
    assert sorted(r.closed[0][1]) == list("abcde")


def test_late_measurement_is_refused() -> None:
    state = new_state()
    state = add_measurement(state, meas("a", 0), POLICY, NOW).state
    for t in range(CHUNK, 2 * W, CHUNK):
        state = add_measurement(state, meas("a", t), POLICY, NOW + POLICY.idle_ns).state
    assert state["closed_before"] == 2
    r = add_measurement(state, meas("b", 300_000_000), POLICY, NOW)
    assert r.late and r.closed == []


def test_observation_needs_min_receivers_and_averages_linear_power() -> None:
    """Mean of linear powers: -80 and -70 dBm average to 10 log10((1e-8 + 1e-7)/2) dBm."""
    state = new_state()
    for rx in "abc":
        state = add_measurement(state, meas(rx, 100), POLICY, NOW).state
    members = state["windows"]["0"]
    assert build_observation("145.5000MHz", 0, members, POLICY) is None
    state = add_measurement(state, meas("d", 100, -80.0), POLICY, NOW).state
    state = add_measurement(state, meas("d", 300_000_000, -70.0), POLICY, NOW).state
    obs = build_observation("145.5000MHz", 0, state["windows"]["0"], POLICY)
    assert obs is not None
    assert [m.receiver_id for m in obs.members] == ["a", "b", "c", "d"]
    d = obs.members[3]
    assert d.n_measurements == 2
    assert d.power_dbm == pytest.approx(10 * math.log10((1e-8 + 1e-7) / 2))
    assert d.power_std_db == pytest.approx(5.0)
    assert obs.window_start_ns == 0 and obs.window_end_ns == W


def test_state_is_json_serialisable() -> None:
    """The state lives in a changelogged Faust table: it must survive a JSON round trip."""
    import json

    state = new_state()
    for rx in "abcd":
        state = add_measurement(state, meas(rx, 10), POLICY, NOW).state
    again = json.loads(json.dumps(state))
    late = NOW + POLICY.idle_ns + 1  # grace over, b, c, d idle: a alone moves the watermark
    r1 = add_measurement(state, meas("a", 5 * W), POLICY, late)
    r2 = add_measurement(again, meas("a", 5 * W), POLICY, late)
    assert [k for k, _ in r1.closed] == [k for k, _ in r2.closed] == [0]


def test_all_sources_idle_closes_the_open_windows() -> None:
    """A finite input (a replay, a fast simulation) ends: once every source of the channel is
    idle, the watermark is the furthest progress and the windows still open close on a tick."""
    state = new_state()
    t0 = 100 * W
    for rx in ("a", "b", "c", "d"):
        for i in range(10):  # 2 s of chunks each, delivered at once
            add_measurement(state, meas(rx, t0 + i * CHUNK), POLICY, now_ns=NOW)
    assert close_ready(state, POLICY, now_ns=NOW + POLICY.idle_ns // 2) == []  # not idle yet
    closed = close_ready(state, POLICY, now_ns=NOW + POLICY.idle_ns + 1)
    assert [k for k, _ in closed] == [100, 101]
    assert all(set(members) == {"a", "b", "c", "d"} for _, members in closed)
    assert state["windows"] == {} and state["closed_before"] == 102
    assert close_ready(state, POLICY, now_ns=NOW + 2 * POLICY.idle_ns) == []


def test_startup_grace_shorter_than_idle_time() -> None:
    """With a 2 s grace, windows may close 2 s after the channel was first seen, while a
    receiver stays active (holding the watermark) for the longer idle time."""
    policy = WindowPolicy(
        window_ns=W, lateness_ns=0, min_receivers=1, idle_ns=10 * W, grace_ns=2 * W
    )
    state = new_state()
    for t in range(0, 3 * W, CHUNK):
        assert add_measurement(state, meas("a", t), policy, NOW).closed == []
    assert close_ready(state, policy, now_ns=NOW + 2 * W - 1) == []
    assert [k for k, _ in close_ready(state, policy, now_ns=NOW + 2 * W)] == [0, 1, 2]
