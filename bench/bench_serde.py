"""Encode/decode cost of the events on the hottest topics, both wire framings.

``Serde()`` writes Avro single-object encoding (``C3 01`` + fingerprint), ``Serde("mock://…")``
Confluent framing (``00`` + schema id) through confluent-kafka's in-memory mock registry.
"""

from __future__ import annotations

import dataclasses
import warnings

from bench.common import T0_NS, Context, fmt, table, time_per_call
from heimdall.producers.sim import Simulator, seed_network
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.schemas.models import SampleFormat
from heimdall.schemas.serde import Serde
from heimdall.streams.features import measure_chunk


def _events() -> list[tuple[str, object]]:
    sim = Simulator(seed_network(), seed=1)
    chunk = to_iq_chunk(sim.step(T0_NS).chunks[1], StreamGain())
    return [
        (f"IqChunk ci16 ({chunk.n_samples} samples)", chunk),
        (
            f"IqChunk cf32 ({chunk.n_samples} samples)",
            dataclasses.replace(chunk, sample_format=SampleFormat.CF32),
        ),
        ("Measurement (256-bin PSD)", measure_chunk(chunk)),
    ]


def run(ctx: Context) -> None:
    min_time, repeats = ctx.timing(0.25)
    with warnings.catch_warnings():
        # authlib (under the registry client) forces its deprecation notice through any filter
        warnings.showwarning = lambda *args, **kwargs: None
        framings = [
            ("single-object", Serde()),
            ("Confluent (mock registry)", Serde("mock://bench")),
        ]
    t = table(
        "serde — heimdall.schemas.serde.Serde, one event per call",
        [
            "event",
            "framing",
            "bytes",
            "encode µs",
            "decode µs",
            "decode→model µs",
            "encode+decode /s",
        ],
        f"median of {repeats} runs, each ≥ {min_time} s; 'decode' is decode_dict (wire dict, "
        "what the sink uses), 'decode→model' is decode(expect=…) building the dataclass "
        "(what the agents use); one core",
        first_left=2,
    )
    with ctx.progress() as progress:
        events = _events()
        task = progress.add_task("serde", total=len(events) * len(framings))
        for name, event in events:
            for framing, serde in framings:
                data = serde.encode(event)
                kind = type(event)
                enc = time_per_call(
                    lambda s=serde, e=event: s.encode(e), min_time_s=min_time, repeats=repeats
                )
                dec = time_per_call(
                    lambda s=serde, d=data: s.decode_dict(d), min_time_s=min_time, repeats=repeats
                )
                obj = time_per_call(
                    lambda s=serde, d=data, k=kind: s.decode(d, expect=k),
                    min_time_s=min_time,
                    repeats=repeats,
                )
                t.add_row(
                    name,
                    framing,
                    f"{len(data):,}",
                    fmt(enc.median_us),
                    fmt(dec.median_us),
                    fmt(obj.median_us),
                    fmt(1e6 / (enc.median_us + obj.median_us), 0),
                )
                progress.advance(task)
    ctx.show(t)
