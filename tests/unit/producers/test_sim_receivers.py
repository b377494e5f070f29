"""Receiver impairments against theory: LO and sample-clock errors, clocks, ADC, gain,
calibration; measured through the features stage where the brief asks for it."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest

from heimdall.producers.sim import (
    CarrierSpec,
    ChannelSpec,
    ReceiverSpec,
    Scenario,
    Simulator,
    TransmitterSpec,
    seed_network,
)
from heimdall.producers.sim.clocks import ClockSpec
from heimdall.producers.sim.propagation import SPEED_OF_LIGHT_M_S
from heimdall.producers.sim.receivers import quantize
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.streams.dsp.features import measure_channel

from .test_simulator import _xcorr_delay_s

T0_NS = 1_760_000_000_000_000_000


def _one_link(rx: ReceiverSpec, tx_power_dbm: float = 0.0, offset_hz: float = 250.0) -> Scenario:
    return Scenario(
        receivers=[rx],
        transmitters=[
            TransmitterSpec(
                source_id="cw",
                lat_deg=45.05,
                lon_deg=7.55,
                alt_m=300.0,
                channel_freq_hz=145.5e6,
                freq_offset_hz=offset_hz,
                tx_power_dbm=tx_power_dbm,
                waveform=CarrierSpec(),
            )
        ],
    )


def _rx(**kw: object) -> ReceiverSpec:
    return ReceiverSpec(receiver_id="rx", lat_deg=45.0, lon_deg=7.5, alt_m=250.0, **kw)


def _measure(sim: Simulator, n_steps: int = 10) -> list:
    gain = StreamGain()
    out = []
    for chunks, _ in sim.steps(T0_NS, n_steps):
        for c in chunks:
            ev = to_iq_chunk(c, gain)
            out.append(measure_channel(ev.iq, ev.sample_rate_hz, ev.full_scale_dbm))
    return out


def test_lo_error_appears_as_frequency_offset_in_features() -> None:
    """An LO at f_c (1 + delta) moves a carrier by -delta f_c: with delta = 2 ppm at
    145.5 MHz the features stage's freq_offset_hz moves by -291.0 Hz within 1 Hz."""
    ref = _measure(Simulator(_one_link(_rx()), seed=1))
    off = _measure(Simulator(_one_link(_rx(lo_ppm=2.0)), seed=1))
    shift = np.mean([m.freq_offset_hz for m in off]) - np.mean([m.freq_offset_hz for m in ref])
    assert shift == pytest.approx(-2e-6 * 145.5e6, abs=1.0)


@pytest.mark.parametrize("adc_bits", [None, 12])
def test_measured_snr_equals_link_budget(adc_bits: int | None) -> None:
    """SNR from the features stage = P_rx - (k T0 F fs / fs) B_eff within 1 dB, with
    P_rx = P_tx + G_ant - FSPL and B_eff the integrated channel width (|C| bins of fs/256,
    |f| <= 0.4 fs): here 8.8 dB (and the same through a 12-bit ADC whose full scale sits
    ~25 dB above the noise+signal)."""
    rx = _rx(antenna_gain_dbi=3.0, adc_bits=adc_bits, adc_full_scale_dbm=-85.0, gain_db=0.0)
    sim = Simulator(_one_link(rx, tx_power_dbm=-30.0), seed=3)
    b_eff = np.count_nonzero(np.abs(np.fft.fftfreq(256, 1 / 12_000.0)) <= 0.4 * 12_000.0 + 1e-6)
    b_eff_hz = b_eff * 12_000.0 / 256
    n0_dbm_hz = sim.noise_power_dbm[0] - 10 * np.log10(12_000.0)
    budget = sim.rx_power_dbm[0, 0] - (n0_dbm_hz + 10 * np.log10(b_eff_hz))
    assert 8.0 < budget < 25.0
    snr = np.mean([m.snr_db for m in _measure(sim, 20)])
    assert snr == pytest.approx(budget, abs=1.0)


def test_calibration_offset_is_hidden_in_reported_power() -> None:
    """A +2.5 dB calibration error makes every reported power (signal and noise floor)
    read 2.5 dB high (within 0.1 dB), the SNR unchanged."""
    a = _measure(Simulator(_one_link(_rx(), tx_power_dbm=-20.0), seed=2))
    b = _measure(Simulator(_one_link(_rx(calibration_offset_db=2.5), tx_power_dbm=-20.0), seed=2))
    dp = np.mean([m.power_dbm for m in b]) - np.mean([m.power_dbm for m in a])
    dn = np.mean([m.noise_floor_dbm_hz for m in b]) - np.mean([m.noise_floor_dbm_hz for m in a])
    assert dp == pytest.approx(2.5, abs=0.1)
    assert dn == pytest.approx(2.5, abs=0.1)


def test_quantizer_sqnr_and_clipping() -> None:
    """N-bit quantiser: a complex tone at -3 dBFS has SQNR = 6.02 N + 1.76 - 3 dB within
    0.5 dB (uniform error Delta^2/12 per component), values are exact ci16, and a signal
    above full scale is clipped to [-1, 1 - 2^-(N-1)]."""
    n = np.arange(100_000)
    x = (10 ** (-3 / 20) * np.exp(2j * np.pi * 0.01234 * n)).astype(np.complex64)
    for bits in (8, 12):
        q = quantize(x, bits)
        sqnr = 10 * np.log10(np.mean(np.abs(x) ** 2) / np.mean(np.abs(q - x) ** 2))
        assert sqnr == pytest.approx(6.02 * bits + 1.76 - 3.0, abs=0.5)
        v = q.view(np.float32) * 32768
        np.testing.assert_array_equal(v, np.round(v))
    big = quantize((4 * x).astype(np.complex64), 8).view(np.float32)
    assert big.max() == pytest.approx(1 - 2**-7) and big.min() == -1.0


def test_sample_clock_error_resamples() -> None:
    """Samples are taken at T + n / (fs (1 + eps)): a carrier at df advances by
    2 pi df / (fs (1 + eps)) per sample, across chunk boundaries too (eps = 200 ppm,
    noiseless; the chunk also starts at T = t_ref + (t - t_ref)/(1 + eps))."""
    eps = 200e-6
    sim = Simulator(_one_link(_rx(sample_clock_ppm=200.0)), seed=1, noise=False, epoch_ns=T0_NS)
    x = np.concatenate([s.chunks[0].iq for s in sim.steps(T0_NS + 10**10, 3)]).astype(np.complex128)
    dphi = np.angle(x[1:] * np.conj(x[:-1]))
    np.testing.assert_allclose(dphi, 2 * np.pi * 250.0 / (12_000.0 * (1 + eps)), atol=1e-5)
    st = sim.step(T0_NS + 10**10)
    offset = sim._true_offsets_s(T0_NS + 10**10)[0]
    assert offset == pytest.approx(-10.0 * eps / (1 + eps), rel=1e-9)
    # ideal clock: it reports the true start
    assert st.chunks[0].t_ns == T0_NS + 10**10 + round(offset * 1e9)


def test_clock_models() -> None:
    """GPS: reported - true ~ N(0, 30 ns); NTP: ms offsets that wander slowly (RMS of the
    wander within a factor 2 of 1 ms, changes over 1 s < 10 % of it: periods >= 100 s); free: the
    belief drifts from the truth at eps (t - t_ref) exactly (eps = 5 ppm)."""
    t = T0_NS + np.arange(0, 600) * 10**9

    def offsets(spec: ClockSpec, ppm: float = 0.0) -> np.ndarray:
        sim = Simulator(_one_link(_rx(clock=spec, sample_clock_ppm=ppm)), seed=9, epoch_ns=T0_NS)
        (clk,) = sim.clocks(T0_NS)
        return np.array(
            [clk.reported_ns(int(k)) - clk.true_start_ns(int(k)) for k in t], dtype=float
        )

    gps = offsets(ClockSpec(kind="gps", jitter_ns=30.0))
    assert np.std(gps) == pytest.approx(30.0, rel=0.15)
    assert abs(np.mean(gps)) < 5.0
    ntp = offsets(ClockSpec(kind="ntp", offset_ms=2.0, wander_ms=1.0, wander_period_s=300.0))
    wander = ntp - ntp.mean()
    assert 0.5e6 < np.std(wander) < 2e6
    assert np.max(np.abs(np.diff(ntp))) < 0.1 * np.std(wander)
    free = offsets(ClockSpec(kind="free", offset_ms=0.0), ppm=5.0)
    slope = np.polyfit((t - T0_NS) * 1e-9, free, 1)[0]  # ns per s
    assert slope == pytest.approx(5e-6 * 1e9 / (1 + 5e-6), rel=1e-3)


def test_gps_clocked_receivers_recover_tdoa() -> None:
    """With GPS-disciplined clocks (30 ns jitter), the cross-correlation lag of two
    receivers' NBFM streams plus the difference of their reported start times equals the
    geometric (d_1 - d_2) / c within 1 / (20 fs)."""
    base = seed_network()
    gps = ClockSpec(kind="gps", jitter_ns=30.0)
    scenario = base.model_copy(
        update={"receivers": [r.model_copy(update={"clock": gps}) for r in base.receivers]}
    )
    sim = Simulator(scenario, seed=2)
    fs = scenario.sample_rate_hz
    s = 1
    f_c = scenario.transmitters[s].channel_freq_hz
    ids = [r.receiver_id for r in scenario.receivers]
    steps = list(sim.steps(T0_NS, 5))
    streams, t_first = {}, {}
    for rid in ids:
        cs = [
            c for st in steps for c in st.chunks if c.receiver_id == rid and c.center_freq_hz == f_c
        ]
        streams[rid] = np.concatenate([c.iq for c in cs]).astype(np.complex128)
        t_first[rid] = cs[0].t_ns
    assert len(set(t_first.values())) > 1  # the jitter is there
    for a, b in itertools.combinations(["torino", "montanaro", "genova", "milano-baggio"], 2):
        ia, ib = ids.index(a), ids.index(b)
        expected = (sim.distance_m[ia, s] - sim.distance_m[ib, s]) / SPEED_OF_LIGHT_M_S
        got = _xcorr_delay_s(streams[a], streams[b], fs) + (t_first[a] - t_first[b]) * 1e-9
        assert got == pytest.approx(expected, abs=1.0 / (20.0 * fs)), (a, b)


def test_adc_chunks_publish_as_exact_ci16() -> None:
    """A receiver with an ADC publishes its quantised samples unchanged as ci16, at the
    ADC's full scale referred to the antenna port (adc_full_scale_dbm - gain_db)."""
    rx = _rx(adc_bits=10, adc_full_scale_dbm=-40.0, gain_db=20.0)
    sim = Simulator(_one_link(rx, tx_power_dbm=-10.0), seed=1)
    (c,) = sim.step(T0_NS).chunks
    ev = to_iq_chunk(c, StreamGain())
    assert ev.full_scale_dbm == pytest.approx(-60.0)
    assert ev.gain_db == 20.0
    np.testing.assert_array_equal(ev.iq, c.iq)
    v = c.iq.view(np.float32) * 512
    np.testing.assert_array_equal(v, np.round(v))


def test_channel_spec_unchanged_for_noise_only_receiver() -> None:
    """A receiver with every impairment but no transmitter still has the k T0 B F floor
    (0.1 dB), i.e. the impairments do not touch the noise path."""
    rx = _rx(lo_ppm=3.0, sample_clock_ppm=2.0, clock=ClockSpec(kind="ntp"))
    sc = Scenario(receivers=[rx], channels=[ChannelSpec(freq_hz=145.5e6)])
    x = np.concatenate([s.chunks[0].iq for s in Simulator(sc, seed=1).steps(T0_NS, 20)])
    p = 10 * np.log10(np.mean(np.abs(x.astype(np.complex128)) ** 2))
    expected = 10 * np.log10(1.380649e-23 * 290 * 12_000 * 10**0.6 * 1e3)
    assert p == pytest.approx(expected, abs=0.1)


def test_stream_gain_leaves_room_for_a_later_burst() -> None:
    """``StreamGain.for_simulator``: full scale 12 dB above the strongest expected signal, so a
    scheduled 2FSK burst that starts after a noise-only first chunk is not clipped (its
    constant envelope |u| = sqrt(P_rx) peaks per component at ≤ 10^(-12/20) = 0.25 FS plus
    noise); the first-chunk gain alone puts it above full scale."""
    from heimdall.producers.sim.library import load_scenario
    from heimdall.producers.sim.simulator import Simulator

    sc = load_scenario("hf-tdoa")
    t_quiet = 1_700_000_000_000_000_000 + 9_000_000_000  # the burst starts at +10 s

    def fsk(chunks: Any) -> Any:
        return next(c for c in chunks if c.center_freq_hz == 7.04e6)

    def burst_peak(gain_of: Any) -> float:
        sim = Simulator(sc, seed=0)
        gain = gain_of(sim)
        to_iq_chunk(fsk(sim.step(t_quiet).chunks), gain)  # sets the gain on noise
        ev = to_iq_chunk(fsk(sim.step(t_quiet + 2_000_000_000).chunks), gain)
        x = np.asarray(ev.iq)
        return float(np.max(np.abs(np.r_[x.real, x.imag])))

    assert burst_peak(StreamGain.for_simulator) < 0.3
    assert burst_peak(lambda sim: StreamGain()) >= 1.0 - 1e-4  # clipped
