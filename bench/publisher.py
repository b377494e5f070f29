"""The benchmark's receiver network as a process of its own: N receivers, pre-synthesised IQ.

Simulating the IQ of a thousand receivers live costs far more than the stream it feeds, so
each receiver's chunks for ``POOL_STEPS`` steps are synthesised once by the simulator
(:class:`~heimdall.producers.sim.Simulator`, free space, the receivers grouped by channel as
:func:`network_groups` says) and then published again and again with fresh event ids, event
times, sequence numbers and publication times: the stream sees the same signal every
``POOL_STEPS × 0.2`` s, which changes nothing for throughput or latency. The samples are
encoded once (ci16); each publication encodes the Avro record around them.

Run by :mod:`bench.bench_pipeline` as ``multiprocessing`` ``spawn`` target :func:`run`; the
count of chunks published so far is shared through ``published`` (a ``multiprocessing.Value``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from bench.scenarios import receivers
from heimdall.core.ids import new_event_id
from heimdall.core.settings import load_settings
from heimdall.producers.publisher import Publisher
from heimdall.producers.sim import CarrierSpec, NbfmSpec, Scenario, Simulator, TransmitterSpec
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.schemas.models import IqChunk

POOL_STEPS = 5
RECEIVERS_PER_CHANNEL = 25
CHUNK_NS = 200_000_000
CHANNEL_BASE_HZ = 144.0e6
CHANNEL_STEP_HZ = 25e3


@dataclass(frozen=True)
class Plan:
    """What the publisher publishes."""

    n_receivers: int
    channels_per_receiver: int = 1
    realtime: bool = True
    steps: int | None = None  # None: until stopped
    seed: int = 1
    nbfm: bool = False
    """NBFM voice transmitters (a lag to correlate: TDOA) instead of carriers."""


def network_groups(
    n: int, channels_per_receiver: int = 1, seed: int = 1, nbfm: bool = False
) -> list[Scenario]:
    """``ceil(n / 25)`` transmitters spread over the region, each receiver tuned to the
    channel(s) of the transmitter nearest to it: every channel is heard by ~25 receivers.

    With ``channels_per_receiver=2`` every group has a second transmitter on the next channel
    (the seed network's shape: each receiver tuned to two channels).
    """
    rx = receivers(n)
    g = max(1, math.ceil(n / RECEIVERS_PER_CHANNEL))
    rng = np.random.default_rng(seed)
    lat = np.array([r.lat_deg for r in rx])
    lon = np.array([r.lon_deg for r in rx])
    pick = rng.choice(n, size=g, replace=False)
    tx_lat = lat[pick] + rng.normal(0, 0.02, g)
    tx_lon = lon[pick] + rng.normal(0, 0.02, g)
    d2 = (lat[:, None] - tx_lat) ** 2 + ((lon[:, None] - tx_lon) * math.cos(math.radians(45))) ** 2
    nearest = np.argmin(d2, axis=1)
    groups = []
    for k in range(g):
        members = [rx[i] for i in np.flatnonzero(nearest == k)]
        if not members:
            continue
        txs = [
            TransmitterSpec(
                source_id=f"bench-tx-{k:03d}-{c}",
                lat_deg=float(tx_lat[k]),
                lon_deg=float(tx_lon[k]),
                alt_m=300.0,
                channel_freq_hz=CHANNEL_BASE_HZ + (channels_per_receiver * k + c) * CHANNEL_STEP_HZ,
                freq_offset_hz=200.0,
                tx_power_dbm=40.0,
                waveform=NbfmSpec() if nbfm else CarrierSpec(),
            )
            for c in range(channels_per_receiver)
        ]
        groups.append(Scenario(receivers=members, transmitters=txs))
    return groups


def synthesise(plan: Plan) -> list[list[tuple[bytes, dict[str, Any]]]]:
    """Per pool step, every (key, wire dict) of that step's chunks."""
    pool: list[list[tuple[bytes, dict[str, Any]]]] = [[] for _ in range(POOL_STEPS)]
    t0 = 1_800_000_000_000_000_000
    for sc in network_groups(plan.n_receivers, plan.channels_per_receiver, plan.seed, plan.nbfm):
        sim = Simulator(sc, seed=plan.seed)
        gain = StreamGain.for_simulator(sim)
        for s in range(POOL_STEPS):
            for c in sim.step(t0 + s * CHUNK_NS).chunks:
                chunk = to_iq_chunk(c, gain)
                pool[s].append((chunk.receiver_id.encode(), chunk.to_dict()))
    return pool


def run(bootstrap: str, topic: str, plan: Plan, published: Any, ready: Any, stop: Any) -> None:
    """Synthesise, set ``ready``, then publish until ``stop`` is set or ``plan.steps`` are out."""
    settings = load_settings(kafka={"bootstrap_servers": bootstrap})
    pool = synthesise(plan)
    pub = Publisher(settings)
    ready.set()
    t0_ns = (time.time_ns() // CHUNK_NS) * CHUNK_NS - 3_600 * 10**9  # an hour ago: event time
    start = time.monotonic()
    step = 0
    while not stop.is_set() and (plan.steps is None or step < plan.steps):
        if plan.realtime:
            delay = start + step * CHUNK_NS / 1e9 - time.monotonic()
            if delay > 0:
                stop.wait(delay)
        t_ns = t0_ns + step * CHUNK_NS if not plan.realtime else time.time_ns()
        t_ns -= t_ns % CHUNK_NS
        for key, base in pool[step % POOL_STEPS]:
            record = dict(base)
            record["event_id"] = new_event_id()
            record["t_ns"] = t_ns
            record["seq"] = step
            record["published_ns"] = time.time_ns()
            pub.publish_raw(
                topic, key, pub.serde.encode_dict(IqChunk.SCHEMA, record), t_ns // 10**6
            )
        with published.get_lock():
            published.value += len(pool[step % POOL_STEPS])
        step += 1
    pub.flush(60.0)
