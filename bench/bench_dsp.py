"""The CPU cost inside the agents: features DSP per chunk, RSS localization per observation."""

from __future__ import annotations

import numpy as np

from bench.common import T0_NS, Context, fmt, table, time_per_call
from bench.scenarios import describe_region, network
from heimdall.producers.sim import Scenario, Simulator, seed_network
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.schemas.models import ClockSource, Observation, ObservationMember, Position
from heimdall.streams.dsp.features import measure_channel
from heimdall.streams.features import measure_chunk
from heimdall.streams.localize import localize_rss

LOCALIZE_SIZES = (7, 25, 50)


def run_features(ctx: Context) -> None:
    min_time, repeats = ctx.timing(0.25)
    sim = Simulator(seed_network(), seed=1)
    gain = StreamGain.for_simulator(sim)
    chunks = [to_iq_chunk(c, gain) for c in sim.step(T0_NS).chunks]
    by_channel = {}
    for c in chunks:  # the first receiver's chunk of each channel
        by_channel.setdefault(c.center_freq_hz, c)
    cases = [
        (f"{f / 1e6:.3f} MHz ({'carrier' if i == 0 else 'NBFM'})", c)
        for i, (f, c) in enumerate(by_channel.items())
    ]
    seed = seed_network()
    quiet = Scenario(receivers=seed.receivers, channels=seed.tuned_channels())
    cases.append(("noise only", to_iq_chunk(Simulator(quiet).step(T0_NS).chunks[0], StreamGain())))
    n = cases[0][1].n_samples
    t = table(
        f"features — µs per {n}-sample chunk (12 kHz, 0.2 s), one core",
        ["chunk", "measure_channel µs", "measure_chunk µs", "chunks/s (measure_chunk)"],
        f"median of {repeats} runs, each ≥ {min_time} s; measure_channel is the DSP "
        "(Welch PSD, noise floor, channel power, offset, occupied bandwidth), measure_chunk adds "
        "building the Measurement event; chunks from the seed-network simulator, ci16 on the wire",
    )
    for name, chunk in cases:
        dsp = time_per_call(
            lambda c=chunk: measure_channel(
                c.iq, sample_rate_hz=c.sample_rate_hz, full_scale_dbm=c.full_scale_dbm
            ),
            min_time_s=min_time,
            repeats=repeats,
        )
        full = time_per_call(lambda c=chunk: measure_chunk(c), min_time_s=min_time, repeats=repeats)
        t.add_row(name, fmt(dsp.median_us), fmt(full.median_us), fmt(full.per_s, 0))
    ctx.show(t)


def observation(n_receivers: int, source: int = 0, seed: int = 0) -> Observation:
    """An observation of transmitter ``source`` by every receiver of ``network(n)``.

    Powers are the simulator's received powers plus 2 dB of log-normal shadowing, as a window
    mean of 5 chunks with a 0.5 dB spread.
    """
    sc = network(n_receivers)
    sim = Simulator(sc, seed=1, noise=False)
    rng = np.random.default_rng(seed)
    power = sim.rx_power_dbm[:, source] + rng.normal(0.0, 2.0, n_receivers)
    members = tuple(
        ObservationMember(
            receiver_id=r.receiver_id,
            position=Position(lat_deg=r.lat_deg, lon_deg=r.lon_deg, alt_m=r.alt_m),
            clock=ClockSource.GPS,
            t_ns=T0_NS,
            power_dbm=float(p),
            power_std_db=0.5,
            snr_db=30.0,
            noise_floor_dbm_hz=-170.0,
            freq_offset_hz=0.0,
            n_measurements=5,
            measurement_ids=(),
        )
        for r, p in zip(sc.receivers, power, strict=True)
    )
    tx = sc.transmitters[source]
    return Observation(
        channel_id=tx.channel_id,
        channel_freq_hz=tx.channel_freq_hz,
        window_start_ns=T0_NS,
        window_end_ns=T0_NS + 1_000_000_000,
        members=members,
    )


def run_localize(ctx: Context) -> None:
    min_time, repeats = ctx.timing(0.5)
    t = table(
        "localize — ms per localize_rss (RSS maximum likelihood, unknown P0 and n), one core",
        ["receivers", "transmitter", "localize_rss ms", "localizations/s"],
        f"median of {repeats} runs, each ≥ {min_time} s; powers = simulator received power + "
        f"N(0, 2 dB) shadowing; networks: the seed receivers, then {describe_region()}",
        first_left=2,
    )
    for n in LOCALIZE_SIZES:
        for source, name in enumerate(("rpt-145500", "nbfm-145600")):
            obs = observation(n, source)
            dt = time_per_call(lambda o=obs: localize_rss(o), min_time_s=min_time, repeats=repeats)
            t.add_row(str(n), name, fmt(dt.median_us / 1000, 2), fmt(dt.per_s, 0))
    ctx.show(t)
