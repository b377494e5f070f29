"""ClickHouse sink: features, observations, localizations and truth into the history tables.

One consumer reads the four topics. Each poll batch is decoded at once
(:class:`~heimdall.schemas.batch_decode.BatchDecoder`: fastavro, float arrays by numpy), its
events grouped by table and mapped column by column
(:func:`~heimdall.consumers.clickhouse_rows.build_columns`, the tables declared once in
:mod:`heimdall.consumers.clickhouse_rows`) into Arrow tables buffered per table. A flush
happens when ``batch_size`` rows are buffered or ``flush_interval_s`` has passed since the
first row of the batch; it inserts every table's buffer (``client.insert_arrow``: the fastest
form on chDB, see ``bench/bench_sink.py``), waits until the dead letters of the batch are
delivered, and only then commits, synchronously, the consumer positions the batch covers
(the quix-streams BatchingSink discipline: the commit never runs ahead of the store). The
insert runs on a writer thread, one at a time, while the consumer decodes the next batch
(chDB and the HTTP client release the GIL); the positions are committed when it is done.

* An insert that fails pauses the assigned partitions (backpressure) and is retried with
  exponential backoff until it succeeds; the consumer keeps polling (so it stays in its
  group) but receives nothing while paused. Rows are never dropped: until a flush succeeds
  nothing is committed, and after a crash the uncommitted events are read again.
* Replays and crashes write an event twice; the tables are ReplacingMergeTree ordered by
  ``(…, event_id)``, so ``FINAL`` reads see one row per event.
* An event that cannot be decoded, is not the record its topic carries, or holds a value its
  column cannot take (see :mod:`~heimdall.consumers.clickhouse_rows`) goes to the dead-letter
  topic untouched (original key, value and headers, plus the ``heimdall.dlq.*`` headers with
  stage ``clickhouse-sink`` and the reason) and the sink goes on.
* Message keys are not read: events are routed by topic and schema only.

The tables must exist (``heimdall.infra.clickhouse.apply_schema``); the sink inserts into the
client's current database (``open_clickhouse`` sets it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from heimdall.consumers.clickhouse_rows import (
    ROUTES,
    TABLE_COLUMNS,
    TableSpec,
    build_columns,
    map_event,
    route_of,
)
from heimdall.core import kafka, metrics
from heimdall.core.errors import InvalidEventError
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.batch_decode import BatchDecoder, WireDecoder
from heimdall.schemas.dlq import dlq_headers

__all__ = [
    "DEFAULT_GROUP_ID",
    "ROUTES",
    "STAGE",
    "TABLE_COLUMNS",
    "ClickHouseSink",
    "SinkStats",
    "WireDecoder",
    "map_event",
]

log = logging.getLogger(__name__)

STAGE = "clickhouse-sink"
DEFAULT_GROUP_ID = "heimdall-clickhouse-sink"

#: Insert settings: a replayed history may span many days (one partition per day).
INSERT_SETTINGS: dict[str, Any] = {"max_partitions_per_insert_block": 0}

#: How long a rebalance waits for the flush of the revoked partitions (then they are replayed).
REVOKE_FLUSH_S = 10.0


# --------------------------------------------------------------------------------------------
# The sink
# --------------------------------------------------------------------------------------------


#: Rows buffered per table: Arrow tables, one per poll batch.
Buffers = dict[str, list[pa.Table]]


@dataclass
class _Write:
    """An insert running on the writer thread, and the consumer positions it covers."""

    future: Future[None]
    tables: Buffers  # what is left to insert (what failed, if it fails)
    positions: dict[tuple[str, int], int]


@dataclass
class SinkStats:
    """Counters of a :class:`ClickHouseSink` (a snapshot when read through ``sink.stats``)."""

    rows: dict[str, int] = field(default_factory=lambda: dict.fromkeys(TABLE_COLUMNS, 0))
    consumed: int = 0
    dlq: int = 0
    flushes: int = 0
    commits: int = 0
    insert_failures: int = 0
    insert_seconds: float = 0.0

    @property
    def rows_total(self) -> int:
        return sum(self.rows.values())

    def copy(self) -> SinkStats:
        return SinkStats(
            rows=dict(self.rows), consumed=self.consumed, dlq=self.dlq, flushes=self.flushes,
            commits=self.commits, insert_failures=self.insert_failures,
            insert_seconds=self.insert_seconds,
        )  # fmt: skip


class ClickHouseSink:
    """Batching, at-least-once sink of the measurement topics into ClickHouse (see module doc).

    ``commit=False`` is a test hook that simulates a crash between the write and the commit:
    the sink writes but never commits its offsets.
    """

    def __init__(
        self,
        settings: HeimdallSettings,
        client: Any,
        serde: WireDecoder,
        group_id: str = DEFAULT_GROUP_ID,
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        *,
        commit: bool = True,
        max_backoff_s: float = 5.0,
        consumer_overrides: Mapping[str, Any] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if flush_interval_s <= 0:
            raise ValueError("flush_interval_s must be positive")
        self.settings = settings
        self.client = client
        self.serde = serde
        self._decoder = BatchDecoder(serde)
        self.group_id = group_id
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.commit_enabled = commit
        self.max_backoff_s = max_backoff_s
        self._consumer_overrides = dict(consumer_overrides or {})
        self.database: str = client.database or settings.clickhouse.database
        t = settings.topics
        self._roles: dict[str, str] = {getattr(t, role): role for role in ROUTES}
        self._routes: dict[tuple[str, str], TableSpec] = {}  # (topic, record name) -> table
        self._lock = threading.Lock()
        self._stats = SinkStats()
        self._buffers: Buffers = {table: [] for table in TABLE_COLUMNS}
        self._buffered = 0
        self._batch_started: float | None = None
        # next offset to commit per (topic, partition): every message before it is handled
        self._positions: dict[tuple[str, int], int] = {}
        self._committed: dict[tuple[str, int], int] = {}
        self._dlq_seq = 0
        self._dlq_inflight: dict[int, tuple[bytes | None, bytes | None, list[Any]]] = {}
        self._dlq_failed: list[tuple[int, str]] = []
        self._paused = False
        self._stopping = False
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._inflight: _Write | None = None

    # -- public --------------------------------------------------------------------------

    @property
    def topics(self) -> list[str]:
        return list(self._roles)

    @property
    def stats(self) -> SinkStats:
        with self._lock:
            return self._stats.copy()

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; then flush, commit what was written, and close."""
        # pyarrow imports pandas at its first conversion of Python objects (~0.3 s): do it
        # before joining the group rather than inside the first batch
        pa.array([], type=pa.int64())
        self._consumer = kafka.consumer(self.settings, self.group_id, **self._consumer_overrides)
        self._producer = kafka.producer(self.settings)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="clickhouse-sink-insert")
        try:
            self._consumer.subscribe(
                self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )  # fmt: skip
            consume_max = min(self.batch_size, 1000)
            while not stop.is_set():
                self._handle(self._consumer.consume(consume_max, timeout=self._poll_timeout()))
                done = self._inflight is not None and self._inflight.future.done()
                if done and not self._settle(0.0):
                    self._flush(stop)  # retried in this thread, with backoff and pause
                if self._flush_due():
                    self._flush(stop, background=True)
            self._flush(stop)
        finally:
            self._stopping = True  # close() revokes: the flush was just tried, do not retry
            self._close()

    # -- consuming -----------------------------------------------------------------------

    def _poll_timeout(self) -> float:
        if self._inflight is not None:
            return 0.01  # come back soon to commit what it wrote
        if self._batch_started is None:
            return 0.2
        left = self._batch_started + self.flush_interval_s - time.monotonic()
        return min(0.2, max(0.0, left))

    def _flush_due(self) -> bool:
        if self._buffered >= self.batch_size:
            return True
        return (
            self._batch_started is not None
            and time.monotonic() - self._batch_started >= self.flush_interval_s
        )

    def _handle(self, msgs: Sequence[Message]) -> None:
        """Decode, map and buffer one poll batch; its bad events go to the dead-letter topic."""
        events: list[Message] = []
        for msg in msgs:
            err = msg.error()
            if err is None:
                events.append(msg)
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("clickhouse sink: consumer error: %s", err)
        if not events:
            return
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        values = [msg.value() for msg in events]
        failed: dict[int, str] = {}  # index in events -> reason
        by_table: dict[str, tuple[TableSpec, list[int], list[dict[str, Any]]]] = {}
        routes = self._routes
        for i, decoded in enumerate(self._decoder.decode_many(v or None for v in values)):
            try:
                if not values[i]:
                    raise InvalidEventError("empty value (tombstone)")
                if isinstance(decoded, Exception):
                    raise decoded
                schema, wire = decoded
                key = (events[i].topic(), schema)
                spec = routes.get(key)  # type: ignore[arg-type]
                if spec is None:
                    spec = routes[key] = route_of(self._roles[key[0]], schema)  # type: ignore[index]
            except Exception as exc:
                failed[i] = f"{type(exc).__name__}: {exc}"
                continue
            group = by_table.get(spec.table)
            if group is None:
                group = by_table[spec.table] = (spec, [], [])
            group[1].append(i)
            group[2].append(wire)
        for table, (spec, index, wires) in by_table.items():
            data, rejected = build_columns(spec, wires)
            for k, reason in rejected.items():
                failed[index[k]] = f"InvalidEventError: {reason}"
            if data.num_rows:
                self._buffers[table].append(data)
                self._buffered += data.num_rows
        for i in sorted(failed):
            msg = events[i]
            self._dead_letter(msg, msg.topic(), msg.partition(), msg.offset(), failed[i])  # type: ignore[arg-type]
        positions = self._positions
        for msg in events:
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1  # type: ignore[index,operator]
        with self._lock:
            self._stats.consumed += len(events)
        metrics.EVENTS_IN.labels(STAGE).inc(len(events))

    def _dead_letter(
        self, msg: Message, topic: str, partition: int, offset: int, reason: str
    ) -> None:
        log.warning("clickhouse sink: %s[%d]@%d to the DLQ: %s", topic, partition, offset, reason)
        headers = list(msg.headers() or [])
        headers += dlq_headers(reason, topic=topic, partition=partition, offset=offset, stage=STAGE)
        self._dlq_seq += 1
        self._dlq_inflight[self._dlq_seq] = (msg.key(), msg.value(), headers)
        self._produce_dead_letter(self._dlq_seq)
        with self._lock:
            self._stats.dlq += 1
        metrics.DEAD_LETTERS.labels(STAGE).inc()

    def _produce_dead_letter(self, seq: int) -> None:
        assert self._producer is not None
        key, value, headers = self._dlq_inflight[seq]

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self._dlq_inflight.pop(seq, None)
            else:
                self._dlq_failed.append((seq, str(err)))

        while True:
            try:
                self._producer.produce(
                    self.settings.topics.dlq, value=value, key=key, headers=headers,
                    on_delivery=delivered,
                )  # fmt: skip
                break
            except BufferError:  # the producer queue is full: let deliveries drain it
                self._producer.poll(0.1)
        self._producer.poll(0)

    # -- writing -------------------------------------------------------------------------

    def _flush(
        self, stop: threading.Event, *, deadline: float | None = None, background: bool = False
    ) -> bool:
        """Write every buffered row, deliver the dead letters, then commit.

        The insert in flight on the writer thread (if any) is settled first. With
        ``background``, the buffered rows are then handed to the writer thread (the commit of
        their positions follows when it is done, see :meth:`_settle`) and the consumer goes on
        decoding meanwhile: the insert runs in chDB/ClickHouse without the GIL.

        Otherwise the rows are written here; on failure: pause, back off, retry. Returns False
        (nothing committed) if ``stop`` is set or the monotonic ``deadline`` passes first.
        With a deadline (inside a rebalance callback) the consumer is not polled.
        """
        if self._inflight is not None:
            timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
            settled = self._settle(timeout)
            if settled is None:
                return False  # still running at the deadline
            background = background and settled
        if background and self._buffered and not self._paused:
            self._submit()
            return True
        pending = {k: v for k, v in self._positions.items() if self._committed.get(k) != v}
        if not self._buffered and not pending and not self._dlq_inflight:
            self._batch_started = None
            return True
        backoff = 0.05
        while True:
            try:
                self._write_tables(self._buffers)
                self._deliver_dead_letters()
                break
            except Exception as exc:
                with self._lock:
                    self._stats.insert_failures += 1
                log.warning("clickhouse sink: write failed (retrying in %.2f s): %s", backoff, exc)
                if deadline is not None:
                    if time.monotonic() + backoff > deadline or stop.wait(backoff):
                        return False
                else:
                    self._pause()
                    if self._wait(stop, backoff):
                        log.warning(
                            "clickhouse sink: stopped with %d rows unwritten; they stay "
                            "uncommitted and will be read again", self._buffered,
                        )  # fmt: skip
                        return False
                backoff = min(backoff * 2, self.max_backoff_s)
        if deadline is None:
            self._resume()
        with self._lock:
            self._stats.flushes += 1
        self._batch_started = None
        self._commit()
        return True

    def _write_tables(self, tables: Buffers) -> None:
        """Insert each table's rows; a table written is emptied, so a retry skips it.

        Runs on the writer thread for a background flush (the caller's thread touches neither
        ``tables`` nor the client until the write is settled).
        """
        t_flush, written = time.perf_counter(), 0
        for table, chunks in tables.items():
            if not chunks:
                continue
            data = chunks[0] if len(chunks) == 1 else pa.concat_tables(chunks).combine_chunks()
            t0 = time.perf_counter()
            self.client.insert_arrow(table, data, database=self.database, settings=INSERT_SETTINGS)
            dt = time.perf_counter() - t0
            with self._lock:
                self._stats.rows[table] += data.num_rows
                self._stats.insert_seconds += dt
            metrics.SINK_ROWS.labels(table).inc(data.num_rows)
            written += data.num_rows
            metrics.EVENTS_OUT.labels(STAGE).inc(data.num_rows)
            tables[table] = []
            if tables is self._buffers:
                self._buffered -= data.num_rows
        if written:  # a flush of dead letters alone, or a retry after the rows went in: no time
            metrics.SINK_FLUSH_SECONDS.observe(time.perf_counter() - t_flush)

    def _submit(self) -> None:
        """Hand the buffered rows and the positions they cover to the writer thread."""
        assert self._writer is not None
        tables, self._buffers = self._buffers, {table: [] for table in TABLE_COLUMNS}
        self._buffered = 0
        self._batch_started = None
        future = self._writer.submit(self._write_tables, tables)
        self._inflight = _Write(future, tables, dict(self._positions))

    def _settle(self, timeout: float | None) -> bool | None:
        """Finish the write in flight: deliver the dead letters and commit its positions.

        Returns True when committed, None if it is still running after ``timeout`` seconds,
        False if it failed (its unwritten rows go back in front of the buffers, for the
        caller to retry with :meth:`_flush`) or the dead letters are not delivered yet.
        """
        w = self._inflight
        assert w is not None
        try:
            w.future.result(timeout)
        except TimeoutError:
            return None
        except Exception as exc:
            self._inflight = None
            for table, chunks in w.tables.items():
                self._buffers[table][:0] = chunks
                self._buffered += sum(c.num_rows for c in chunks)
            if self._batch_started is None:
                self._batch_started = time.monotonic()
            with self._lock:
                self._stats.insert_failures += 1
            log.warning("clickhouse sink: write failed (retrying): %s", exc)
            return False
        self._inflight = None
        with self._lock:
            self._stats.flushes += 1
        try:
            self._deliver_dead_letters()
        except Exception as exc:
            log.warning("clickhouse sink: %s; committing at the next flush", exc)
            if self._batch_started is None:
                self._batch_started = time.monotonic()
            return False
        self._commit(w.positions)
        return True

    def _deliver_dead_letters(self) -> None:
        assert self._producer is not None
        self._producer.flush(10.0)
        if self._dlq_failed:
            failed, self._dlq_failed = self._dlq_failed, []
            for seq, _ in failed:
                self._produce_dead_letter(seq)
            raise RuntimeError(f"{len(failed)} dead letters not delivered: {failed[0][1]}")
        if self._dlq_inflight:
            raise RuntimeError(f"{len(self._dlq_inflight)} dead letters not delivered yet")

    def _wait(self, stop: threading.Event, seconds: float) -> bool:
        """Keep the (paused) consumer polled for ``seconds``; True if ``stop`` was set."""
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            assert self._consumer is not None
            self._pause()
            # fetched before the pause took effect: keep them, in order
            self._handle(self._consumer.consume(100, timeout=min(left, 0.2)))
        return True

    def _pause(self) -> None:
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.pause(assignment)
        if not self._paused:
            log.info("clickhouse sink: paused %d partitions (backpressure)", len(assignment))
        self._paused = True

    def _resume(self) -> None:
        if not self._paused:
            return
        assert self._consumer is not None
        assignment = self._consumer.assignment()
        if assignment:
            self._consumer.resume(assignment)
        self._paused = False
        log.info("clickhouse sink: resumed")

    def _commit(self, positions: Mapping[tuple[str, int], int] | None = None) -> None:
        """Commit ``positions`` (default: every position handled) of the partitions we own."""
        if not self.commit_enabled:
            return
        if positions is None:
            positions = self._positions
        pending = {
            k: v for k, v in positions.items()
            if k in self._positions and self._committed.get(k) != v
        }  # fmt: skip
        if not pending:
            return
        assert self._consumer is not None
        offsets = [TopicPartition(t, p, o) for (t, p), o in pending.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except Exception as exc:
            # written but not committed: a restart replays these events (idempotent tables)
            log.warning("clickhouse sink: commit failed, will retry at the next flush: %s", exc)
            self._batch_started = self._batch_started or time.monotonic()
            return
        self._committed.update(pending)
        with self._lock:
            self._stats.commits += 1

    # -- rebalance -----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: Sequence[TopicPartition]) -> None:
        log.info("clickhouse sink: assigned %s", [(p.topic, p.partition) for p in partitions])

    def _on_revoke(self, consumer: Consumer, partitions: Sequence[TopicPartition]) -> None:
        """Write and commit what was read from the partitions before they go to another sink."""
        if not self._stopping:
            self._flush(threading.Event(), deadline=time.monotonic() + REVOKE_FLUSH_S)
        self._forget(partitions)

    def _on_lost(self, consumer: Consumer, partitions: Sequence[TopicPartition]) -> None:
        self._forget(partitions)

    def _forget(self, partitions: Sequence[TopicPartition]) -> None:
        # rows already buffered stay and are written later (the new owner may write them too,
        # which the idempotent tables absorb); their offsets are no longer ours to commit
        for p in partitions:
            assert p.topic is not None
            self._positions.pop((p.topic, p.partition), None)
            self._committed.pop((p.topic, p.partition), None)

    def _close(self) -> None:
        if self._writer is not None:
            self._writer.shutdown(wait=True)  # an insert still running ends (uncommitted)
            self._writer = None
            self._inflight = None
        if self._producer is not None:
            self._producer.flush(10.0)
            if self._dlq_inflight:
                log.warning(
                    "clickhouse sink: %d dead letters not delivered at close",
                    len(self._dlq_inflight),
                )
        if self._consumer is not None:
            try:
                self._consumer.close()
            except Exception as exc:  # pragma: no cover - closing a broken consumer
                log.warning("clickhouse sink: consumer close failed: %s", exc)
        self._consumer = None
        self._producer = None
