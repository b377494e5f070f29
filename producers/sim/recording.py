"""Simulated receivers to SigMF recordings, one per receiver and channel.

Each (receiver, channel) stream of a scenario is written with
:class:`heimdall.producers.recordings.sigmf_io.SigmfWriter` as
``<dir>/<receiver_id>_<channel_id>.sigmf-{meta,data}`` (ci16, the same wire samples
:func:`.stream.to_iq_chunk` publishes; a receiver tuned to one channel therefore gets one
recording). The output is a pure function of (scenario, seed, start time, duration).
"""

from __future__ import annotations

import re
from pathlib import Path

from heimdall.producers.recordings.sigmf_io import SigmfWriter
from heimdall.producers.sim.scenario import Scenario
from heimdall.producers.sim.simulator import Simulator
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk

__all__ = ["write_simulation_sigmf"]


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)


def write_simulation_sigmf(
    scenario: Scenario,
    out_dir: str | Path,
    *,
    duration_s: float,
    seed: int = 1,
    start_t_ns: int,
    overwrite: bool = False,
) -> list[Path]:
    """Simulate ``duration_s`` from ``start_t_ns`` and write the SigMF recordings.

    Returns
    -------
    list of Path
        The ``.sigmf-meta`` files written, in (receiver, channel) order.
    """
    sim = Simulator(scenario, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    desc = f"heimdall simulator: scenario {scenario.name or '(unnamed)'}, seed {seed}"
    writers = {
        (rx.receiver_id, ch.freq_hz): SigmfWriter(
            out / f"{_safe(rx.receiver_id)}_{_safe(ch.channel_id)}",
            overwrite=overwrite,
            description=desc,
        )
        for rx in scenario.receivers
        for ch in sim.channels
    }
    gain = StreamGain.for_simulator(sim)
    n_steps = max(1, round(duration_s * 1e9 / scenario.chunk_ns))
    try:
        for step in sim.steps(int(start_t_ns), n_steps):
            for c in step.chunks:
                ev = to_iq_chunk(c, gain)
                writers[(c.receiver_id, c.center_freq_hz)].add(ev)
    except BaseException:
        for w in writers.values():
            w.abort()
        raise
    return [w.close() for w in writers.values()]
