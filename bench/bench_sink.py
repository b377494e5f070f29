"""ClickHouse sink throughput into chDB, against raw ``client.insert`` of the same rows.

``rows`` Measurements are produced to ``rf.features`` on a fresh embedded broker first (keyed
by channel, as the stream keys them; the sink does not read keys); then a
:class:`~heimdall.consumers.clickhouse_sink.ClickHouseSink` (as ``heimdall up`` runs it: a
thread of this process, batch 5000, flush every 1 s) consumes them into a chDB directory. Its
rate is counted from the first event it consumed (the consumer-group join is not counted) to
the moment every row is inserted. The raw rates insert the very same rows (already decoded and
mapped) in batches of the sink's size into a second database of the same chDB, in the three
forms clickhouse-connect offers: ``client.insert`` of row tuples (the reference: "vs raw
insert"), of column lists (``column_oriented=True``), and ``client.insert_arrow`` (what the
sink uses). The decode + map step (batch decode, columns) is timed on its own.
"""

from __future__ import annotations

import dataclasses
import gc
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.common import T0_NS, Context, fmt, table
from bench.harness import broker_with_topics
from heimdall.consumers.clickhouse_rows import FEATURES, build_columns, uuid_text
from heimdall.consumers.clickhouse_sink import INSERT_SETTINGS, ClickHouseSink
from heimdall.core import kafka
from heimdall.core.ids import new_event_id
from heimdall.core.store import open_clickhouse
from heimdall.infra.clickhouse import apply_schema
from heimdall.producers.sim import Simulator, seed_network
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.schemas.batch_decode import BatchDecoder
from heimdall.schemas.models import Measurement
from heimdall.schemas.serde import Serde
from heimdall.streams.features import measure_chunk

BATCH = 5000


def measurements(n: int) -> list[Measurement]:
    """``n`` distinct Measurements: 70 real ones (5 steps of the seed network), renumbered."""
    sim = Simulator(seed_network(), seed=1)
    gain = StreamGain.for_simulator(sim)
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


def decode_and_map(serde: Serde, values: list[bytes]) -> list[pa.Table]:
    """The sink's path without I/O: batch decode, then columns, per batch of ``BATCH``."""
    decoder = BatchDecoder(serde)
    tables = []
    for i in range(0, len(values), BATCH):
        wires = []
        for r in decoder.decode_many(values[i : i + BATCH]):
            if isinstance(r, Exception):
                raise r
            wires.append(r[1])
        data, rejected = build_columns(FEATURES, wires)
        if rejected:
            raise RuntimeError(f"bench measurements refused: {rejected}")
        tables.append(data)
    return tables


def row_tuples(data: pa.Table) -> list[tuple[Any, ...]]:
    """Rows as ``client.insert`` takes them (UUIDs as ``uuid.UUID``, arrays as lists)."""
    cols = []
    for col, arr in zip(FEATURES.columns, data.columns, strict=True):
        values = arr.to_pylist()
        cols.append([uuid.UUID(v) for v in values] if col.check is uuid_text else values)
    return list(zip(*cols, strict=True))


def _settle_store(client: Any, timeout_s: float = 20.0) -> None:
    """Wait until chDB runs no background merge (the sink's parts are merged right after it
    stops), so that no timed phase competes with one; and collect Python's garbage."""
    deadline = time.monotonic() + timeout_s
    while int(client.command("SELECT count() FROM system.merges")) and time.monotonic() < deadline:
        time.sleep(0.05)
    gc.collect()


def _timed_batches(client: Any, insert: Callable[[Any], None], batches: list[Any]) -> float:
    client.command("TRUNCATE TABLE bench_raw.features")
    _settle_store(client)
    t0 = time.perf_counter()
    for b in batches:
        insert(b)
    return time.perf_counter() - t0


def run(ctx: Context) -> None:
    n_rows = int(ctx.options.get("sink_rows") or (10_000 if ctx.quick else 50_000))
    serde = Serde()
    t = table(
        f"ClickHouse sink — {n_rows:,} Measurements into chDB (features table)",
        ["path", "rows/s", "time s", "vs raw insert", "notes"],
        f"batch {BATCH} rows (the sink's default), flush interval 1 s, 3 partitions; rows of "
        "256-bin PSD Measurements (~1.3 kB on the wire); chDB in a temporary directory; "
        "sink time from its first consumed event to its last inserted row; raw inserts of the "
        "same rows into a second database, in batches of the same size",
    )
    t.columns[-1].justify = "left"
    with ctx.progress() as progress:
        task = progress.add_task("sink: building and encoding measurements", total=None)
        ms = measurements(n_rows)
        values = [(m.channel_id.encode(), serde.encode(m)) for m in ms]
        decode_and_map(serde, [v for _, v in values[:100]])  # imports, schema parsing
        t_map = time.perf_counter()
        tables = decode_and_map(serde, [v for _, v in values])
        map_s = time.perf_counter() - t_map
        rows = [r for data in tables for r in row_tuples(data)]
        row_batches = [rows[i : i + BATCH] for i in range(0, n_rows, BATCH)]
        cols = list(FEATURES.names)
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
                _settle_store(client)
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
                stored = int(client.command("SELECT count() FROM bench_sink.features"))
                progress.update(task, description="sink: raw inserts", total=None)
                kw = {"database": "bench_raw", "settings": INSERT_SETTINGS}
                raw_s = _timed_batches(
                    client, lambda b: client.insert("features", b, column_names=cols, **kw),
                    row_batches,
                )  # fmt: skip
                col_batches = [[list(c) for c in zip(*b, strict=True)] for b in row_batches]
                columns_s = _timed_batches(
                    client, lambda b: client.insert("features", b, column_names=cols,
                                                    column_oriented=True, **kw),
                    col_batches,
                )  # fmt: skip
                del col_batches
                arrow_s = _timed_batches(
                    client, lambda b: client.insert_arrow("features", b, **kw), tables
                )  # fmt: skip
                one_s = _timed_batches(
                    client, lambda b: client.insert("features", b, column_names=cols, **kw),
                    [rows],
                )  # fmt: skip
            finally:
                client.close()
    raw_rate = n_rows / raw_s
    sink_rate = n_rows / sink_s

    def vs_raw(seconds: float) -> str:
        return f"{n_rows / seconds / raw_rate:.2f}×"

    t.add_row(
        "ClickHouseSink (consume, decode, map, insert, commit)",
        fmt(sink_rate, 0), fmt(sink_s, 2), vs_raw(sink_s),
        f"{sink_rate / (n_rows / arrow_s):.2f}× raw insert_arrow; {st.flushes} flushes, "
        f"{st.commits} commits; inserts {st.insert_seconds:.2f} s on the writer thread; "
        f"{stored:,} rows stored",
    )  # fmt: skip
    t.add_row(f"raw client.insert, batches of {BATCH}", fmt(raw_rate, 0), fmt(raw_s, 2),
              "1.00×", "same rows, already mapped (row tuples)")  # fmt: skip
    t.add_row(
        f"raw client.insert column_oriented, batches of {BATCH}", fmt(n_rows / columns_s, 0),
        fmt(columns_s, 2), vs_raw(columns_s), "column lists",
    )  # fmt: skip
    t.add_row(
        f"raw client.insert_arrow, batches of {BATCH}", fmt(n_rows / arrow_s, 0),
        fmt(arrow_s, 2), vs_raw(arrow_s), "Arrow tables, the sink's insert form",
    )  # fmt: skip
    t.add_row(
        f"raw client.insert, one batch of {n_rows:,}", fmt(n_rows / one_s, 0), fmt(one_s, 2),
        vs_raw(one_s), "",
    )  # fmt: skip
    t.add_row(
        "batch decode + columns only (no I/O)", fmt(n_rows / map_s, 0), fmt(map_s, 2),
        vs_raw(map_s), f"{map_s / n_rows * 1e6:.1f} µs per row",
    )  # fmt: skip
    t.add_row("producing them to the broker", fmt(n_rows / produce_s, 0), fmt(produce_s, 2), "–",
              "confluent-kafka producer, zstd")  # fmt: skip
    ctx.show(t)
