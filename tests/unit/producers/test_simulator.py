"""The simulator against the physics it promises: noise, received power, delay, continuity,
determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pyproj import Transformer

from heimdall.producers.sim import (
    SPEED_OF_LIGHT_M_S,
    CarrierSpec,
    ChannelSpec,
    ReceiverSpec,
    Scenario,
    Simulator,
    TransmitterSpec,
    seed_network,
)
from heimdall.producers.sim.simulator import SimChunk

T0_NS = 1_760_000_000_000_000_000  # an arbitrary epoch time, 2025
K_B = 1.380649e-23


def _power_dbm(x: np.ndarray) -> float:
    return float(10.0 * np.log10(np.mean(np.abs(x.astype(np.complex128)) ** 2)))


def _stream(
    sim: Simulator, receiver_id: str, center_freq_hz: float, n_steps: int, t0_ns: int = T0_NS
) -> np.ndarray:
    """Concatenate one (receiver, channel) stream over consecutive steps."""
    parts = []
    for chunks, _ in sim.steps(t0_ns, n_steps):
        (c,) = [
            c for c in chunks if c.receiver_id == receiver_id and c.center_freq_hz == center_freq_hz
        ]
        parts.append(c.iq)
    return np.concatenate(parts)


@pytest.mark.parametrize("noise_figure_db", [3.0, 6.0, 10.0])
def test_noise_power_is_ktbf(noise_figure_db: float) -> None:
    """With no transmitter, mean |x|^2 = k T0 B F (mW: x 1e3), B = fs = 12 kHz, within
    0.1 dB over 120 000 complex samples (estimator std 1/sqrt(M) = 0.3 % = 0.013 dB);
    the noise is also zero-mean and circular (E[x^2] = 0)."""
    scenario = Scenario(
        receivers=[
            ReceiverSpec(
                receiver_id="rx", lat_deg=45.0, lon_deg=7.5, noise_figure_db=noise_figure_db
            )
        ],
        channels=[ChannelSpec(freq_hz=145.5e6)],
    )
    x = _stream(Simulator(scenario, seed=11), "rx", 145.5e6, 50).astype(np.complex128)
    expected_dbm = 10 * np.log10(K_B * 290.0 * 12_000.0 * 10 ** (noise_figure_db / 10) * 1e3)
    assert _power_dbm(x) == pytest.approx(expected_dbm, abs=0.1)
    p_mw = np.mean(np.abs(x) ** 2)
    assert abs(np.mean(x)) ** 2 < 1e-3 * p_mw
    assert abs(np.mean(x**2)) < 0.02 * p_mw


def test_received_power_is_tx_minus_fspl() -> None:
    """At high SNR (> 45 dB here) 10 log10(mean |x|^2) = P_tx - 20 log10(4 pi d f / c)
    within 0.2 dB, for every receiver and both waveforms; d is recomputed here with
    PROJ's ECEF (independent of the simulator's geodesy)."""
    scenario = seed_network()
    sim = Simulator(scenario, seed=5)
    chunks, _ = sim.step(T0_NS)
    tr = Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)

    def ecef(lat: float, lon: float, alt: float) -> np.ndarray:
        return np.array(tr.transform(lon, lat, alt))

    for tx in scenario.transmitters:
        for rx in scenario.receivers:
            d_m = float(
                np.linalg.norm(
                    ecef(rx.lat_deg, rx.lon_deg, rx.alt_m) - ecef(tx.lat_deg, tx.lon_deg, tx.alt_m)
                )
            )
            fspl = 20 * np.log10(4 * np.pi * d_m * tx.freq_hz / SPEED_OF_LIGHT_M_S)
            (chunk,) = [
                c
                for c in chunks
                if c.receiver_id == rx.receiver_id and c.center_freq_hz == tx.channel_freq_hz
            ]
            assert _power_dbm(chunk.iq) + chunk.full_scale_dbm == pytest.approx(
                tx.tx_power_dbm - fspl, abs=0.2
            )


def test_carrier_offset_appears_at_positive_baseband_frequency() -> None:
    """A carrier at f_c + 250 Hz appears as exp(+j 2 pi 250 t) in the baseband of a
    receiver tuned to f_c: the FFT peak is at +250 Hz (resolution fs/N = 5 Hz)."""
    sim = Simulator(seed_network(), seed=1)
    (chunk,) = [
        c
        for c in sim.step(T0_NS).chunks
        if c.receiver_id == "torino" and c.center_freq_hz == 145.5e6
    ]
    spec = np.abs(np.fft.fft(chunk.iq))
    freqs = np.fft.fftfreq(chunk.iq.size, 1.0 / chunk.sample_rate_hz)
    assert freqs[np.argmax(spec)] == pytest.approx(250.0)


def _xcorr_delay_s(x1: np.ndarray, x2: np.ndarray, fs: float, up: int = 16) -> float:
    """Delay D such that x1(t) ~ x2(t - D): peak of |sum x1[n] x2*[n - m]|, interpolated
    by zero-padding the cross-spectrum (x up) and refined by a parabola through the
    peak and its two neighbours: delta = (y- - y+) / (2 (y- - 2 y0 + y+))."""
    n = x1.size
    cross = np.fft.fft(x1) * np.conj(np.fft.fft(x2))
    padded = np.zeros(n * up, dtype=np.complex128)
    half = n // 2
    padded[:half] = cross[:half]
    padded[-(n - half) :] = cross[half:]
    c = np.abs(np.fft.ifft(padded))
    k = int(np.argmax(c))
    y_m, y_0, y_p = c[k - 1], c[k], c[(k + 1) % c.size]
    lag = k + 0.5 * (y_m - y_p) / (y_m - 2 * y_0 + y_p)
    if lag > c.size / 2:
        lag -= c.size
    return float(lag / (up * fs))


def test_cross_correlation_recovers_tdoa() -> None:
    """For the NBFM emission, x_r(t) = A_r u(t - tau_r) e^{j phi_r} (same baseband offset
    for both receivers), so the cross-correlation of two receivers' samples peaks at
    D = tau_1 - tau_2 = (d_1 - d_2) / c; the sub-sample peak matches within 1 / (20 fs)."""
    scenario = seed_network()
    sim = Simulator(scenario, seed=2)
    fs = scenario.sample_rate_hz
    s = [t.source_id for t in scenario.transmitters].index("nbfm-145600")
    f_c = scenario.transmitters[s].channel_freq_hz
    ids = [r.receiver_id for r in scenario.receivers]
    streams = {rid: _stream(sim, rid, f_c, 5).astype(np.complex128) for rid in ids}
    for a, b in itertools.combinations(
        ["torino", "montanaro", "genova", "milano-baggio", "coazze"], 2
    ):
        ia, ib = ids.index(a), ids.index(b)
        expected = (sim.distance_m[ia, s] - sim.distance_m[ib, s]) / SPEED_OF_LIGHT_M_S
        got = _xcorr_delay_s(streams[a], streams[b], fs)
        assert got == pytest.approx(expected, abs=1.0 / (20.0 * fs)), (a, b)


def _all_iq(sim: Simulator, n_steps: int) -> list[np.ndarray]:
    return [c.iq for chunks, _ in sim.steps(T0_NS, n_steps) for c in chunks]


def test_same_seed_same_output_different_seed_different_noise() -> None:
    """Same seed -> bit-identical chunks and truth; another seed -> different noise
    w = x - x_noiseless, and the two noise realisations are uncorrelated
    (|<w1, w2>| / (|w1| |w2|) small)."""
    scenario = seed_network()
    a = _all_iq(Simulator(scenario, seed=7), 3)
    b = _all_iq(Simulator(scenario, seed=7), 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = _all_iq(Simulator(scenario, seed=8), 3)
    clean7 = _all_iq(Simulator(scenario, seed=7, noise=False), 3)
    clean8 = _all_iq(Simulator(scenario, seed=8, noise=False), 3)
    w7 = np.concatenate([x - y for x, y in zip(a, clean7, strict=True)]).astype(np.complex128)
    w8 = np.concatenate([x - y for x, y in zip(c, clean8, strict=True)]).astype(np.complex128)
    assert not np.array_equal(w7, w8)
    rho = abs(np.vdot(w7, w8)) / (np.linalg.norm(w7) * np.linalg.norm(w8))
    assert rho < 0.02
    t7 = [t for _, truths in Simulator(scenario, seed=7).steps(T0_NS, 2) for t in truths]
    t8 = [t for _, truths in Simulator(scenario, seed=8).steps(T0_NS, 2) for t in truths]
    assert t7 == t8


def test_output_does_not_depend_on_order_or_other_receivers() -> None:
    """A chunk is a function of (seed, receiver, channel, t_ns): step k computed alone
    equals step k of the iteration, and a scenario with fewer receivers gives the same
    chunks for the receivers it keeps."""
    scenario = seed_network()
    sim = Simulator(scenario, seed=3)
    it = list(sim.steps(T0_NS, 3))
    alone = Simulator(scenario, seed=3).step(T0_NS + 2 * scenario.chunk_ns, seq=2)
    for x, y in zip(it[2].chunks, alone.chunks, strict=True):
        assert np.array_equal(x.iq, y.iq)
        assert (x.seq, x.t_ns) == (y.seq, y.t_ns)
    subset = scenario.model_copy(update={"receivers": scenario.receivers[2:4]})
    sub = Simulator(subset, seed=3).step(T0_NS)
    full = {(c.receiver_id, c.center_freq_hz): c.iq for c in it[0].chunks}
    for c in sub.chunks:
        assert np.array_equal(c.iq, full[(c.receiver_id, c.center_freq_hz)])


def test_carrier_phase_is_continuous_across_chunks() -> None:
    """For a carrier offset df the sample-to-sample phase step is 2 pi df / fs everywhere,
    including between the last sample of one chunk and the first of the next (SNR ~ 60 dB,
    so the phase noise per step is ~1e-3 rad)."""
    scenario = seed_network()
    sim = Simulator(scenario, seed=4)
    tx = scenario.transmitters[0]
    x = _stream(sim, "torino", tx.channel_freq_hz, 4).astype(np.complex128)
    dphi = np.angle(x[1:] * np.conj(x[:-1]))
    expected = 2 * np.pi * tx.freq_offset_hz / scenario.sample_rate_hz
    n = scenario.n_samples
    boundaries = np.arange(1, 4) * n - 1
    np.testing.assert_allclose(dphi[boundaries], expected, atol=0.01)
    assert np.max(np.abs(dphi - expected)) < 0.02


def test_noiseless_stream_equals_analytic_signal() -> None:
    """Concatenated noiseless chunks equal the model evaluated over the whole span at once:
    x(t_n) = g A u(t_n - tau) exp(j 2 pi df t_n) exp(-j 2 pi f_s tau), t_n = t0 + n / fs."""
    scenario = seed_network()
    sim = Simulator(scenario, seed=9, noise=False)
    s, r = 1, 2  # nbfm transmitter, torino
    tx, rx = scenario.transmitters[s], scenario.receivers[r]
    x = _stream(sim, rx.receiver_id, tx.channel_freq_hz, 3).astype(np.complex128)
    fs = scenario.sample_rate_hz
    t = np.arange(x.size) / fs
    tau = sim.delay_s[r, s]
    df = tx.freq_offset_hz
    amp = 10 ** (sim.rx_power_dbm[r, s] / 20)
    u = sim.waveforms[tx.source_id].evaluate(T0_NS, t - tau)
    from fractions import Fraction

    start_cycles = float((Fraction(df) * Fraction(T0_NS, 10**9)) % 1)
    model = (
        amp
        * u
        * np.exp(2j * np.pi * (start_cycles + df * t))
        * np.exp(-2j * np.pi * ((tx.freq_hz * tau) % 1.0))
    )
    np.testing.assert_allclose(x, model, atol=1e-4 * amp, rtol=0)


def test_chunk_contract() -> None:
    """One chunk per receiver per channel per step, complex64 with N = chunk_s fs samples,
    read-only, full_scale_dbm = 0; t_ns advances by chunk_ns and seq by 1; one truth per
    transmitter per step."""
    scenario = seed_network()
    steps = list(Simulator(scenario, seed=0).steps(T0_NS, 2, first_seq=10))
    assert scenario.n_samples == 2_400
    assert scenario.chunk_ns == 200_000_000
    for k, (chunks, truths) in enumerate(steps):
        assert len(chunks) == 7 * 2
        assert len(truths) == 2
        for c in chunks:
            assert isinstance(c, SimChunk)
            assert c.iq.dtype == np.complex64
            assert c.iq.shape == (2_400,)
            assert not c.iq.flags.writeable
            assert c.full_scale_dbm == 0.0
            assert c.seq == 10 + k
            assert c.t_ns == T0_NS + k * 200_000_000
        assert {t.waveform for t in truths} == {"carrier", "nbfm"}
        assert {t.t_ns for t in truths} == {T0_NS + k * 200_000_000}


def test_scenario_validation() -> None:
    """Duplicate ids and chunks that are not a whole number of samples are rejected."""
    rx = ReceiverSpec(receiver_id="a", lat_deg=45.0, lon_deg=7.0)
    with pytest.raises(ValueError):
        Scenario(receivers=[rx, rx])
    with pytest.raises(ValueError):
        Scenario(receivers=[rx], chunk_s=0.2, sample_rate_hz=12_345.6)
    tx = TransmitterSpec(
        source_id="t", lat_deg=45.0, lon_deg=8.0, channel_freq_hz=145.5e6, waveform=CarrierSpec()
    )
    assert tx.channel_id == "145.5000MHz"
    sc = Scenario.model_validate(seed_network().model_dump())
    assert sc == seed_network()
