"""ClickHouse sink throughput into chDB, against raw ``client.insert`` of the same rows.

``rows`` Measurements are produced to ``rf.features`` on a fresh embedded broker first; then a
:class:`~heimdall.consumers.clickhouse_sink.ClickHouseSink` (as ``heimdall up`` runs it: a
thread of this process, batch 5000, flush every 1 s) consumes them into a chDB directory. Its
rate is counted from the first event it consumed (the consumer-group join is not counted) to
the moment every row is inserted. The raw rate inserts the very same rows (already decoded and
mapped) with ``client.insert`` in batches of the sink's size, into a second database of the
same chDB; the decode + map step is timed on its own.
"""

from __future__ import annotations

import dataclasses
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import T0_NS, Context, fmt, table
from bench.harness import broker_with_topics
from heimdall.consumers.clickhouse_sink import TABLE_COLUMNS, ClickHouseSink, map_event
from heimdall.core import kafka
from heimdall.core.ids import new_event_id
from heimdall.core.store import open_clickhouse
from heimdall.infra.clickhouse import apply_schema
from heimdall.producers.sim import Simulator, seed_network
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.schemas.models import Measurement
from heimdall.schemas.serde import Serde
from heimdall.streams.features import measure_chunk

BATCH = 5000


def measurements(n: int) -> list[Measurement]:
    """``n`` distinct Measurements: 70 real ones (5 steps of the seed network), renumbered."""
    sim = Simulator(seed_network(), seed=1)
    gain = StreamGain()
    base = [measure_chunk(to_iq_chunk(c, gain)) for s in sim.steps(T0_NS, 5) for c in s.chunks]
    step_ns = 5 * sim.scenario.chunk_ns
    return [
        dataclasses.replace(
            base[i % len(base)],
            event_id=new_event_id(),
            t_ns=base[i % len(base)].t_ns + (i // len(base)) * step_ns,
        )
        for i in range(n)
    ]


def _produce(settings: Any, values: list[tuple[bytes, bytes]]) -> float:
    p = kafka.producer(settings)
    topic = settings.topics.features
    t0 = time.perf_counter()
    for key, value in values:
        while True:
            try:
                p.produce(topic, key=key, value=value)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(60.0)
    if left:
        raise RuntimeError(f"{left} measurements were not delivered")
    return time.perf_counter() - t0


def run(ctx: Context) -> None:
    n_rows = int(ctx.options.get("sink_rows") or (10_000 if ctx.quick else 50_000))
    serde = Serde()
    t = table(
        f"sink — {n_rows:,} Measurements into chDB (features table)",
        ["path", "rows/s", "time s", "vs raw insert", "notes"],
        f"batch {BATCH} rows (the sink's default), flush interval 1 s, 3 partitions; rows of "
        "256-bin PSD Measurements (~1.3 kB on the wire); chDB in a temporary directory; "
        "sink time from its first consumed event to its last inserted row",
    )
    t.columns[-1].justify = "left"
    with ctx.progress() as progress:
        task = progress.add_task("sink: building and encoding measurements", total=None)
        ms = measurements(n_rows)
        values = [(m.receiver_id.encode(), serde.encode(m)) for m in ms]
        t_map = time.perf_counter()
        rows = [map_event("features", *serde.decode_dict(v))[1] for _, v in values]
        map_s = time.perf_counter() - t_map
        with (
            tempfile.TemporaryDirectory(prefix="heimdall-bench-sink-") as tmp,
            broker_with_topics(Path(tmp)) as pipe,
        ):
            progress.update(task, description="sink: producing to rf.features")
            produce_s = _produce(pipe.settings, values)
            settings = pipe.settings.model_copy(
                update={"clickhouse": pipe.settings.clickhouse.model_copy(
                    update={"database": "bench_sink"})}
            )  # fmt: skip
            client = open_clickhouse(settings)
            try:
                apply_schema(client, "bench_sink")
                apply_schema(client, "bench_raw")
                progress.update(task, description="sink: ClickHouseSink", total=n_rows)
                sink = ClickHouseSink(settings, client, serde, group_id="bench-sink",
                                      batch_size=BATCH)  # fmt: skip
                stop = threading.Event()
                err: list[BaseException] = []

                def target() -> None:
                    try:
                        sink.run(stop)
                    except BaseException as exc:
                        err.append(exc)

                th = threading.Thread(target=target, name="bench-sink", daemon=True)
                th.start()
                t_first = None
                try:
                    deadline = time.monotonic() + 120.0
                    while True:
                        st = sink.stats
                        now = time.perf_counter()
                        if t_first is None and st.consumed:
                            t_first = now
                        if st.rows["features"] >= n_rows:
                            break
                        if err or time.monotonic() > deadline:
                            raise RuntimeError(f"sink stalled at {st}: {err}")
                        progress.update(task, completed=st.rows["features"])
                        time.sleep(0.01)
                    sink_s = now - (t_first or now)
                finally:
                    stop.set()
                    th.join(60.0)
                st = sink.stats
                progress.update(task, description="sink: raw client.insert", total=None)
                cols = list(TABLE_COLUMNS["features"])
                t_raw = time.perf_counter()
                for i in range(0, n_rows, BATCH):
                    client.insert("features", rows[i : i + BATCH], column_names=cols,
                                  database="bench_raw")  # fmt: skip
                raw_s = time.perf_counter() - t_raw
                client.command("TRUNCATE TABLE bench_raw.features")
                t_one = time.perf_counter()
                client.insert("features", rows, column_names=cols, database="bench_raw")
                one_s = time.perf_counter() - t_one
                stored = int(client.command("SELECT count() FROM bench_sink.features"))
            finally:
                client.close()
    raw_rate = n_rows / raw_s
    t.add_row(
        "ClickHouseSink (consume, decode, map, insert, commit)",
        fmt(n_rows / sink_s, 0), fmt(sink_s, 2), f"{n_rows / sink_s / raw_rate:.2f}×",
        f"{st.flushes} flushes, {st.commits} commits, insert share "
        f"{st.insert_seconds / sink_s:.0%}; {stored:,} rows stored",
    )  # fmt: skip
    t.add_row("raw client.insert, batches of 5000", fmt(raw_rate, 0), fmt(raw_s, 2), "1.00×",
              "same rows, already mapped")  # fmt: skip
    t.add_row(
        f"raw client.insert, one batch of {n_rows:,}", fmt(n_rows / one_s, 0), fmt(one_s, 2),
        f"{n_rows / one_s / raw_rate:.2f}×", "",
    )  # fmt: skip
    t.add_row(
        "decode_dict + map_event only (no I/O)", fmt(n_rows / map_s, 0), fmt(map_s, 2),
        f"{n_rows / map_s / raw_rate:.2f}×", f"{map_s / n_rows * 1e6:.1f} µs per row",
    )  # fmt: skip
    t.add_row("producing them to the broker", fmt(n_rows / produce_s, 0), fmt(produce_s, 2), "–",
              "confluent-kafka producer, zstd")  # fmt: skip
    ctx.show(t)
