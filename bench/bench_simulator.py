"""Synthesis speed of the simulated receiver network vs real time (one core), with and
without the physical effects, and the rate of the fast labelled-data path.

Run: ``.venv/bin/python -m bench simulator`` (part of the suite), or on its own
``.venv/bin/python bench/bench_simulator.py [--steps N]``.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

import numpy as np
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from bench.common import Context

from heimdall.producers.sim import (
    NbfmSpec,
    ReceiverSpec,
    Scenario,
    Simulator,
    TransmitterSpec,
    seed_network,
)
from heimdall.producers.sim.fading import FadingSpec
from heimdall.producers.sim.labelled import LabelledGenerator
from heimdall.producers.sim.library import load_scenario
from heimdall.producers.sim.pathloss import LogDistanceSpec
from heimdall.producers.sim.scenario import PropagationSpec
from heimdall.producers.sim.shadowing import ShadowingSpec

T0_NS = 1_760_000_000_000_000_000


def _large_scenario(n_rx: int = 50, n_tx: int = 6) -> Scenario:
    rng = np.random.default_rng(0)
    receivers = [
        ReceiverSpec(
            receiver_id=f"rx{i:03d}",
            lat_deg=float(rng.uniform(44.3, 45.6)),
            lon_deg=float(rng.uniform(7.2, 9.2)),
            alt_m=float(rng.uniform(50, 800)),
        )
        for i in range(n_rx)
    ]
    transmitters = [
        TransmitterSpec(
            source_id=f"tx{j}",
            lat_deg=float(rng.uniform(44.5, 45.4)),
            lon_deg=float(rng.uniform(7.5, 9.0)),
            alt_m=300.0,
            channel_freq_hz=145.2e6 + 25e3 * j,
            freq_offset_hz=float(rng.uniform(-300, 300)),
            waveform=NbfmSpec(),
        )
        for j in range(n_tx)
    ]
    return Scenario(receivers=receivers, transmitters=transmitters)


def _measure(sim: Simulator, n_steps: int) -> tuple[float, int]:
    for _ in sim.steps(T0_NS, 2):  # warm-up (grid caches)
        pass
    n_chunks = 0
    t = time.perf_counter()
    for chunks, _ in sim.steps(T0_NS, n_steps):
        n_chunks += len(chunks)
    return time.perf_counter() - t, n_chunks


def _seed_with(**prop: object) -> Scenario:
    return seed_network().model_copy(update={"propagation": PropagationSpec(**prop)})


def build_table(n_steps: int) -> Table:
    """Simulate ``n_steps`` steps of each case and tabulate the speed."""
    logd = LogDistanceSpec(exponent=3.0, ref_distance_m=1_000.0)
    cases = [
        ("seed network (7 rx x 2 ch)", Simulator(seed_network(), seed=1)),
        ("seed network, noiseless", Simulator(seed_network(), seed=1, noise=False)),
        (
            "seed + log-distance + shadowing",
            Simulator(_seed_with(model=logd, shadowing=ShadowingSpec()), seed=1),
        ),
        (
            "seed + shadowing + Rician (static)",
            Simulator(
                _seed_with(model=logd, shadowing=ShadowingSpec(), fading=FadingSpec(k_factor=4)),
                seed=1,
            ),
        ),
        (
            "seed + Rician, 5 Hz scatter Doppler",
            Simulator(_seed_with(fading=FadingSpec(scatter_doppler_hz=5.0)), seed=1),
        ),
        (
            "seed-network-rich (all effects, 3 ch)",
            Simulator(load_scenario("seed-network-rich"), seed=1),
        ),
        ("dense-urban (20 rx x 2 ch)", Simulator(load_scenario("dense-urban"), seed=1)),
        ("hf-tdoa (6 rx x 2 ch)", Simulator(load_scenario("hf-tdoa"), seed=1)),
        ("50 rx x 6 NBFM ch", Simulator(_large_scenario(), seed=1)),
    ]
    table = Table(
        title=f"simulator — heimdall.producers.sim, {n_steps} steps per case, one core",
        title_justify="left",
        caption=f"{n_steps} steps of 0.2 s per case after 2 warm-up steps; 12 kHz complex "
        "samples; 'x real time' = simulated s / wall s",
        caption_justify="left",
    )
    for col in ("case", "chunks/step", "wall s", "simulated s", "x real time", "Msamples/s"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, sim in cases:
        wall_s, n_chunks = _measure(sim, n_steps)
        sim_s = n_steps * sim.scenario.chunk_s
        n_samples = n_chunks * sim.scenario.n_samples
        table.add_row(
            name,
            str(n_chunks // n_steps),
            f"{wall_s:.3f}",
            f"{sim_s:.1f}",
            f"{sim_s / wall_s:.0f}",
            f"{n_samples / wall_s / 1e6:.1f}",
        )
    return table


def build_labelled_table(n_samples: int) -> Table:
    """Rate of the fast labelled path (measurements without IQ)."""
    table = Table(
        title=f"labelled path — heimdall.producers.sim.labelled, {n_samples} samples, one core",
        title_justify="left",
        caption="one sample = one transmitter position with every receiver's power, SNR and "
        "noise floor (and time of arrival)",
        caption_justify="left",
    )
    for col in ("case", "receivers", "wall s", "samples/s", "receiver measurements/s"):
        table.add_column(col, justify="left" if col == "case" else "right")
    for name, sc_name, kw in (
        ("uniform positions, seed-network-rich", "seed-network-rich", {}),
        ("uniform + TOA, seed-network-rich", "seed-network-rich", {"toa": True}),
        ("uniform positions, dense-urban", "dense-urban", {}),
    ):
        gen = LabelledGenerator(load_scenario(sc_name), seed=1)
        gen.uniform_samples(1_000)
        t = time.perf_counter()
        gen.uniform_samples(n_samples, **kw)  # type: ignore[arg-type]
        wall = time.perf_counter() - t
        n_rx = len(gen.scenario.receivers)
        table.add_row(
            name, str(n_rx), f"{wall:.3f}", f"{n_samples / wall:,.0f}",
            f"{n_samples * n_rx / wall:,.0f}",
        )  # fmt: skip
    return table


def run(ctx: Context) -> None:
    """The suite's entry point (``python -m bench simulator``)."""
    ctx.show(build_table(50 if ctx.quick else 150))  # suite budget: ~6 min in all
    ctx.show(build_labelled_table(50_000 if ctx.quick else 100_000))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300, help="steps per case")
    parser.add_argument("--samples", type=int, default=200_000, help="labelled samples per case")
    args = parser.parse_args()
    console = Console(width=120)
    console.print(build_table(args.steps))
    console.print(build_labelled_table(args.samples))


if __name__ == "__main__":
    main()
