"""Transmitters against theory: Doppler of a moving transmitter, CW keying, FSK tones,
on/off schedules, NBFM at 5 kHz deviation."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Transformer

from heimdall.producers.sim import (
    CarrierSpec,
    NbfmSpec,
    ReceiverSpec,
    Scenario,
    Simulator,
    TransmitterSpec,
)
from heimdall.producers.sim.motion import ScheduleSpec, TrajectorySpec, Waypoint
from heimdall.producers.sim.propagation import SPEED_OF_LIGHT_M_S
from heimdall.producers.sim.waveforms import CwSpec, FskSpec, morse_key_intervals

T0_NS = 1_760_000_000_000_000_000


def _ecef(lat: float, lon: float, alt: float) -> np.ndarray:
    tr = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
    return np.array(tr.transform(lon, lat, alt))


def _tone_hz(x: np.ndarray, fs: float) -> float:
    """Frequency of the strongest tone: FFT peak (zero-padded x8) refined by a parabola on
    the log magnitude (Hann window)."""
    n = x.size
    spec = np.abs(np.fft.fft(x * np.hanning(n), 8 * n))
    k = int(np.argmax(spec))
    a, b, c = np.log(spec[k - 1]), np.log(spec[k]), np.log(spec[(k + 1) % spec.size])
    delta = 0.5 * (a - c) / (a - 2 * b + c)
    f = (k + delta) * fs / (8 * n)
    return float(f - fs if f > fs / 2 else f)


def test_doppler_of_a_moving_transmitter() -> None:
    """A transmitter driving at v = 30 m/s shifts its carrier at each receiver by
    f_D = v cos(theta) / lambda (theta between the velocity and the line to the receiver):
    the FFT peak of 5 s of carrier (0.2 Hz bins, interpolated) minus the carrier offset
    equals f_D within 1 Hz at three receivers (approaching, receding, abeam)."""
    wps = [Waypoint(lat_deg=45.0, lon_deg=7.50, alt_m=300.0),
           Waypoint(lat_deg=45.0, lon_deg=7.80, alt_m=300.0)]  # fmt: skip
    traj = TrajectorySpec(waypoints=wps, speed_mps=30.0)
    rxs = [
        ReceiverSpec(receiver_id="east", lat_deg=45.0, lon_deg=7.9, alt_m=300.0),
        ReceiverSpec(receiver_id="west", lat_deg=45.0, lon_deg=7.4, alt_m=300.0),
        ReceiverSpec(receiver_id="north", lat_deg=45.08, lon_deg=7.55, alt_m=300.0),
    ]
    tx = TransmitterSpec(
        source_id="car", lat_deg=45.0, lon_deg=7.5, alt_m=300.0, channel_freq_hz=145.5e6,
        freq_offset_hz=100.0, tx_power_dbm=30.0, waveform=CarrierSpec(), trajectory=traj,
    )  # fmt: skip
    sc = Scenario(receivers=rxs, transmitters=[tx])
    sim = Simulator(sc, seed=1)
    period = sim._trajectories[0].period_ns  # type: ignore[union-attr]
    t0 = (T0_NS // period) * period + 100 * 10**9  # 3 km along the first leg, heading east
    steps = list(sim.steps(t0, 25))
    t_mid = t0 + 25 * sc.chunk_ns // 2
    pos, vel = sim.tx_state(t_mid)
    lam = SPEED_OF_LIGHT_M_S / tx.freq_hz
    for r, rx in enumerate(rxs):
        x = np.concatenate([st.chunks[r].iq for st in steps]).astype(np.complex128)
        los = _ecef(rx.lat_deg, rx.lon_deg, rx.alt_m) - pos[0]
        cos_theta = float(np.dot(vel[0], los) / (np.linalg.norm(vel[0]) * np.linalg.norm(los)))
        f_d = 30.0 * cos_theta / lam
        assert _tone_hz(x, sc.sample_rate_hz) - 100.0 == pytest.approx(f_d, abs=1.0), rx
    truth = steps[0].truths[0]
    assert truth.velocity_enu_mps[0] == pytest.approx(30.0, abs=0.05)  # heading east
    assert truth.lat_deg == pytest.approx(45.0, abs=0.002)


def test_trajectory_ping_pong_is_continuous() -> None:
    """The route is travelled back and forth at constant speed: |dp/dt| = v everywhere."""
    wps = [Waypoint(lat_deg=45.0, lon_deg=7.5), Waypoint(lat_deg=45.01, lon_deg=7.5),
           Waypoint(lat_deg=45.01, lon_deg=7.52)]  # fmt: skip
    from heimdall.producers.sim.motion import Trajectory

    tr = Trajectory(TrajectorySpec(waypoints=wps, speed_mps=10.0))
    t = T0_NS + np.arange(0, tr.period_ns * 2, 10**8)
    p, v = tr.state(t)
    speed = np.linalg.norm(np.diff(p, axis=0), axis=1) / 0.1
    assert np.all(speed <= 10.0 + 1e-6)
    assert np.median(speed) == pytest.approx(10.0, abs=1e-6)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 10.0)


def test_cw_keying_timing() -> None:
    """PARIS at 20 wpm: 50 dot units of 60 ms (3.000 s period), 22 units key-down in 14
    elements; with raised-cosine edges of t_r = 5 ms the envelope exceeds 1/2 for
    (22 * 60 - 14 * 5) ms per 3 s."""
    starts, ends, period = morse_key_intervals("PARIS")
    assert period == 50 and np.sum(ends - starts) == 22 and starts.size == 14
    wf = CwSpec(message="PARIS", wpm=20.0, rise_s=0.005).build(np.random.SeedSequence(1))
    t = np.arange(0, 3.0, 1e-5)
    env = np.abs(wf.evaluate(T0_NS - T0_NS % wf.period_ns, t))
    assert np.mean(env > 0.5) == pytest.approx((22 * 0.060 - 14 * 0.005) / 3.0, abs=1e-3)
    assert env.max() == pytest.approx(1.0)


@pytest.mark.parametrize("levels", [2, 4])
def test_fsk_tones(levels: int) -> None:
    """M-FSK: the instantaneous frequency sits on the tones D{-1, 1} or D{-1, -1/3, 1/3, 1}
    except at symbol boundaries, all tones are used, and |u| = 1."""
    spec = FskSpec(levels=levels, symbol_rate_hz=4_800.0, deviation_hz=1_944.0)
    wf = spec.build(np.random.SeedSequence(3))
    fs = 480_000.0
    u = wf.evaluate(T0_NS, np.arange(48_000) / fs)
    np.testing.assert_allclose(np.abs(u), 1.0, atol=1e-12)
    inst = np.angle(u[1:] * np.conj(u[:-1])) * fs / (2 * np.pi)
    tones = wf.tones_hz
    near = np.min(np.abs(inst[:, None] - tones[None, :]), axis=1) < 1.0
    assert np.mean(near) > 0.97
    used = {int(np.argmin(np.abs(f - tones))) for f in inst[near]}
    assert used == set(range(levels))


def test_schedule_keys_signal_and_truth() -> None:
    """A transmitter on 0.6 s every 2 s: chunks entirely in the off time carry no signal
    (noiseless: all zero), chunks in the on time carry P_rx; truth.transmitting agrees.

    The key has raised-cosine edges of t_r = 5 ms inside the on time (r = sin^2(pi x / 2),
    mean r^2 = 3/8 over an edge), so the chunk ending with the burst carries
    P_rx (1 - (5/8) t_r / T_chunk)."""
    tx = TransmitterSpec(
        source_id="b", lat_deg=45.02, lon_deg=7.52, channel_freq_hz=446e6,
        waveform=NbfmSpec(), schedule=ScheduleSpec(period_s=2.0, on_s=0.6),
    )  # fmt: skip
    sc = Scenario(receivers=[ReceiverSpec(receiver_id="r", lat_deg=45.0, lon_deg=7.5)],
                  transmitters=[tx])  # fmt: skip
    sim = Simulator(sc, seed=1, noise=False)
    t0 = (T0_NS // 2_000_000_000) * 2_000_000_000
    for k, st in enumerate(sim.steps(t0, 10)):
        p = np.mean(np.abs(st.chunks[0].iq) ** 2)
        on = (k * 0.2) % 2.0 < 0.6 - 1e-9
        assert st.truths[0].transmitting == on
        if on and k % 10 not in (0,):  # skip the first chunk: edge delayed by tau
            loss = 1.0 - 5 / 8 * 0.005 / 0.2 if k % 10 == 2 else 1.0
            expected_dbm = sim.rx_power_dbm[0, 0] + 10 * np.log10(loss)
            assert 10 * np.log10(p) == pytest.approx(expected_dbm, abs=0.01)
        if not on and (k * 0.2) % 2.0 > 0.6 + 1e-3:
            assert p == 0.0


def test_schedule_envelope_edges() -> None:
    """g(p) = r(p / t_r) r((on - p) / t_r), r(x) = sin^2(pi x / 2): 0 at the key edges, 1/2 at
    t_r / 2 inside them, 1 between, 0 off; its energy per burst is on - (5/4) t_r."""
    sch = ScheduleSpec(period_s=2.0, on_s=0.6, rise_s=0.01)
    t0 = (T0_NS // 2_000_000_000) * 2_000_000_000
    g = sch.envelope(t0, np.array([0.0, 0.005, 0.01, 0.3, 0.595, 0.6, 1.0, 1.999]))
    np.testing.assert_allclose(g, [0.0, 0.5, 1.0, 1.0, 0.5, 0.0, 0.0, 0.0], atol=1e-12)
    dt = 1e-6
    energy = np.sum(sch.envelope(t0, np.arange(0.0, 2.0, dt)) ** 2) * dt
    assert energy == pytest.approx(0.6 - 1.25 * 0.01, abs=1e-5)
    hard = ScheduleSpec(period_s=2.0, on_s=0.6, rise_s=0.0)
    np.testing.assert_array_equal(hard.envelope(t0, [0.0, 0.5999, 0.6]), [1.0, 1.0, 0.0])
    with pytest.raises(ValueError, match="rise_s"):
        ScheduleSpec(period_s=2.0, on_s=0.006, rise_s=0.005)


def test_fsk_phase_is_continuous_across_frames() -> None:
    """2FSK in 1 s frames of independent symbols: the glide over each frame's last symbol
    closes the phase gap, so no sample-to-sample phase step exceeds the largest tone's
    2 pi D / fs plus the glide's pi^2 R_s / (2 fs) (fs = 48 kHz, D = 85 Hz, R_s = 50 Bd)."""
    spec = FskSpec(levels=2, symbol_rate_hz=50.0, deviation_hz=85.0, frame_symbols=50)
    wf = spec.build(np.random.SeedSequence(5))
    fs = 48_000.0
    t0 = T0_NS - T0_NS % 1_000_000_000
    u = wf.evaluate(t0, np.arange(int(3.5 * fs)) / fs)
    step = np.abs(np.angle(u[1:] * np.conj(u[:-1])))
    bound = 2 * np.pi * 85.0 / fs + np.pi**2 * 50.0 / (2 * fs)
    assert step.max() <= bound
    # and away from the last symbol the tones are untouched
    inst = np.angle(u[1:] * np.conj(u[:-1])) * fs / (2 * np.pi)
    pos = (np.arange(inst.size) / fs) % 1.0
    body = pos < 0.98 - 1 / fs
    edge = np.abs(pos - np.round(pos * 50) / 50) > 2 / fs
    assert np.all(np.abs(np.abs(inst[body & edge]) - 85.0) < 1e-6)


def test_nbfm_5khz_deviation() -> None:
    """NBFM at 5 kHz peak deviation (25 kHz channels): instantaneous frequency = 5000 m(t)."""
    wf = NbfmSpec(deviation_hz=5_000.0).build(np.random.SeedSequence(2))
    fs = 2e6
    t = np.arange(100_000) / fs
    u = wf.evaluate(T0_NS, t)
    inst = np.angle(u[1:] * np.conj(u[:-1])) * fs / (2 * np.pi)
    np.testing.assert_allclose(inst, 5_000.0 * wf.audio(T0_NS, (t[1:] + t[:-1]) / 2), atol=1.0)
