"""ClickHouse sink: features, observations, localizations and truth into the history tables.

One consumer reads the four topics; each value is decoded to its wire dict
(``Serde.decode_dict``), mapped to a row of its table (:func:`map_event`) and buffered per
table. A flush happens when ``batch_size`` rows are buffered or ``flush_interval_s`` has
passed since the first row of the batch; it inserts every table's buffer, waits until the
dead letters of the batch are delivered, and only then commits, synchronously, the consumer
positions the batch covers (the quix-streams BatchingSink discipline: the commit never runs
ahead of the store).

* An insert that fails pauses the assigned partitions (backpressure) and is retried with
  exponential backoff until it succeeds; the consumer keeps polling (so it stays in its
  group) but receives nothing while paused. Rows are never dropped: until a flush succeeds
  nothing is committed, and after a crash the uncommitted events are read again.
* Replays and crashes write an event twice; the tables are ReplacingMergeTree ordered by
  ``(…, event_id)``, so ``FINAL`` reads see one row per event.
* An event that cannot be decoded or mapped goes to the dead-letter topic untouched (original
  key, value and headers, plus the ``heimdall.dlq.*`` headers with stage ``clickhouse-sink``)
  and the sink goes on.

The tables must exist (``heimdall.infra.clickhouse.apply_schema``); the sink inserts into the
client's current database (``open_clickhouse`` sets it).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from heimdall.core import kafka
from heimdall.core.errors import InvalidEventError
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.dlq import dlq_headers

log = logging.getLogger(__name__)

STAGE = "clickhouse-sink"
DEFAULT_GROUP_ID = "heimdall-clickhouse-sink"

#: Insert settings: a replayed history may span many days (one partition per day).
INSERT_SETTINGS: dict[str, Any] = {"max_partitions_per_insert_block": 0}

#: How long a rebalance waits for the flush of the revoked partitions (then they are replayed).
REVOKE_FLUSH_S = 10.0


class WireDecoder(Protocol):
    """What the sink needs of ``heimdall.schemas.serde.Serde``."""

    def decode_dict(self, data: bytes) -> tuple[str, dict[str, Any]]: ...


# --------------------------------------------------------------------------------------------
# Row mapping: wire dict (avsc field names) -> row of the table (columns of schema.sql)
# --------------------------------------------------------------------------------------------

UINT16_MAX = 0xFFFF
UINT32_MAX = 0xFFFF_FFFF
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1

FEATURES_COLUMNS: tuple[str, ...] = (
    "event_id", "chunk_id", "receiver_id", "t_ns", "duration_s", "clock",
    "lat_deg", "lon_deg", "alt_m", "channel_id", "channel_freq_hz", "channel_bw_hz",
    "power_dbm", "noise_floor_dbm_hz", "snr_db", "freq_offset_hz", "occupied_bw_hz",
    "detected", "psd_dbm_hz", "psd_bin_hz", "chunk_published_ns", "published_ns",
)  # fmt: skip

_MEMBER_FIELDS: tuple[str, ...] = (
    "receiver_id", "lat_deg", "lon_deg", "alt_m", "clock", "t_ns", "power_dbm",
    "power_std_db", "snr_db", "noise_floor_dbm_hz", "freq_offset_hz", "n_measurements",
    "measurement_ids",
)  # fmt: skip
_TDOA_FIELDS: tuple[str, ...] = ("receiver_a", "receiver_b", "tdoa_s", "sigma_s")

OBSERVATIONS_COLUMNS: tuple[str, ...] = (
    "event_id", "channel_id", "channel_freq_hz", "window_start_ns", "window_end_ns",
    "n_members",
    *(f"members.{f}" for f in _MEMBER_FIELDS),
    *(f"tdoa_pairs.{f}" for f in _TDOA_FIELDS),
    "latest_chunk_published_ns", "upstream_latency_s", "published_ns",
)  # fmt: skip

LOCALIZATIONS_COLUMNS: tuple[str, ...] = (
    "event_id", "observation_id", "channel_id", "t_ns", "lat_deg", "lon_deg", "alt_m",
    "cov_ee_m2", "cov_en_m2", "cov_nn_m2", "method", "model_version", "n_receivers",
    "converged", "params", "processing_latency_s", "published_ns",
)  # fmt: skip

TRUTH_COLUMNS: tuple[str, ...] = (
    "event_id", "source_id", "t_ns", "lat_deg", "lon_deg", "alt_m", "channel_id", "freq_hz",
    "tx_power_dbm", "waveform", "transmitting", "velocity_enu_mps",
)  # fmt: skip

#: Columns the sink inserts, by table.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "features": FEATURES_COLUMNS,
    "observations": OBSERVATIONS_COLUMNS,
    "localizations": LOCALIZATIONS_COLUMNS,
    "truth": TRUTH_COLUMNS,
}


def _get(d: Mapping[str, Any], name: str, *default: Any) -> Any:
    if not isinstance(d, Mapping):
        raise InvalidEventError(f"expected a record holding {name!r}, got {type(d).__name__}")
    if name in d:
        return d[name]
    if default:
        return default[0]
    raise InvalidEventError(f"field {name!r} is missing")


def _uuid(d: Mapping[str, Any], name: str) -> uuid.UUID:
    v = _get(d, name)
    if isinstance(v, uuid.UUID):
        return v
    try:
        return uuid.UUID(str(v))
    except (ValueError, TypeError, AttributeError):
        raise InvalidEventError(f"field {name!r} is not a UUID: {str(v)[:60]!r}") from None


def _str(d: Mapping[str, Any], name: str, *default: Any) -> str:
    v = _get(d, name, *default)
    if not isinstance(v, str):
        raise InvalidEventError(f"field {name!r} must be a string, not {type(v).__name__}")
    return v


def _opt_str(d: Mapping[str, Any], name: str) -> str | None:
    v = _get(d, name, None)
    return None if v is None else _str(d, name)


def _int(
    d: Mapping[str, Any], name: str, *default: Any, lo: int = INT64_MIN, hi: int = INT64_MAX
) -> int:
    v = _get(d, name, *default)
    if isinstance(v, bool) or not isinstance(v, int):
        raise InvalidEventError(f"field {name!r} must be an integer, not {type(v).__name__}")
    if not lo <= v <= hi:
        raise InvalidEventError(f"field {name!r} = {v} is outside [{lo}, {hi}]")
    return v


def _float(d: Mapping[str, Any], name: str, *default: Any) -> float:
    v = _get(d, name, *default)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InvalidEventError(f"field {name!r} must be a number, not {type(v).__name__}")
    return float(v)


def _opt_float(d: Mapping[str, Any], name: str) -> float | None:
    v = _get(d, name, None)
    return None if v is None else _float(d, name)


def _bool(d: Mapping[str, Any], name: str, *default: Any) -> bool:
    v = _get(d, name, *default)
    if not isinstance(v, bool):
        raise InvalidEventError(f"field {name!r} must be a boolean, not {type(v).__name__}")
    return v


def _floats(d: Mapping[str, Any], name: str, *default: Any) -> list[float]:
    v = _get(d, name, *default)
    if not isinstance(v, list | tuple):
        raise InvalidEventError(f"field {name!r} must be an array, not {type(v).__name__}")
    arr = np.asarray(v)  # one vectorised check: a PSD has hundreds of values per row
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iuf"):
        raise InvalidEventError(f"field {name!r} must hold numbers, in a flat array")
    return arr.astype(np.float64).tolist()


def _records(d: Mapping[str, Any], name: str, *default: Any) -> list[Mapping[str, Any]]:
    v = _get(d, name, *default)
    if not isinstance(v, list | tuple) or not all(isinstance(x, Mapping) for x in v):
        raise InvalidEventError(f"field {name!r} must be an array of records")
    return list(v)


def _position(d: Mapping[str, Any]) -> tuple[float, float, float]:
    pos = _get(d, "position")
    lat, lon = _float(pos, "lat_deg"), _float(pos, "lon_deg")
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise InvalidEventError(f"position ({lat}, {lon}) is not a WGS84 latitude/longitude")
    return lat, lon, _float(pos, "alt_m", 0.0)


def measurement_row(w: Mapping[str, Any]) -> tuple[Any, ...]:
    """A ``features`` row from a ``heimdall.v1.Measurement`` wire dict."""
    lat, lon, alt = _position(w)
    return (
        _uuid(w, "event_id"), _uuid(w, "chunk_id"), _str(w, "receiver_id"), _int(w, "t_ns"),
        _float(w, "duration_s"), _str(w, "clock"), lat, lon, alt,
        _str(w, "channel_id"), _float(w, "channel_freq_hz"), _float(w, "channel_bw_hz"),
        _float(w, "power_dbm"), _float(w, "noise_floor_dbm_hz"), _float(w, "snr_db"),
        _float(w, "freq_offset_hz"), _float(w, "occupied_bw_hz"), _bool(w, "detected"),
        _floats(w, "psd_dbm_hz", []), _float(w, "psd_bin_hz", 0.0),
        _int(w, "chunk_published_ns", 0), _int(w, "published_ns", 0),
    )  # fmt: skip


def _member(m: Mapping[str, Any]) -> tuple[Any, ...]:
    lat, lon, alt = _position(m)
    ids = _get(m, "measurement_ids")
    if not isinstance(ids, list | tuple) or not all(isinstance(x, str) for x in ids):
        raise InvalidEventError("field 'measurement_ids' must be an array of strings")
    return (
        _str(m, "receiver_id"), lat, lon, alt, _str(m, "clock"), _int(m, "t_ns"),
        _float(m, "power_dbm"), _float(m, "power_std_db"), _float(m, "snr_db"),
        _float(m, "noise_floor_dbm_hz"), _float(m, "freq_offset_hz"),
        _int(m, "n_measurements", lo=0, hi=UINT32_MAX), list(ids),
    )  # fmt: skip


def _tdoa(p: Mapping[str, Any]) -> tuple[Any, ...]:
    return (_str(p, "receiver_a"), _str(p, "receiver_b"), _float(p, "tdoa_s"),
            _float(p, "sigma_s"))  # fmt: skip


def _columns_of(items: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose records into the per-field arrays of a Nested column."""
    return [[item[i] for item in items] for i in range(width)]


def observation_row(w: Mapping[str, Any]) -> tuple[Any, ...]:
    """An ``observations`` row (members and TDOA pairs as Nested arrays)."""
    members = [_member(m) for m in _records(w, "members")]
    if len(members) > UINT16_MAX:
        raise InvalidEventError(f"field 'members' has {len(members)} entries, more than 65535")
    pairs = [_tdoa(p) for p in _records(w, "tdoa_pairs", [])]
    return (
        _uuid(w, "event_id"), _str(w, "channel_id"), _float(w, "channel_freq_hz"),
        _int(w, "window_start_ns"), _int(w, "window_end_ns"), len(members),
        *_columns_of(members, len(_MEMBER_FIELDS)),
        *_columns_of(pairs, len(_TDOA_FIELDS)),
        _int(w, "latest_chunk_published_ns", 0), _float(w, "upstream_latency_s", 0.0),
        _int(w, "published_ns", 0),
    )  # fmt: skip


def localization_row(w: Mapping[str, Any]) -> tuple[Any, ...]:
    """A ``localizations`` row: position and covariance flattened to columns."""
    lat, lon, alt = _position(w)
    params = _get(w, "params", {})
    if not isinstance(params, Mapping) or not all(
        isinstance(k, str) and isinstance(v, int | float) and not isinstance(v, bool)
        for k, v in params.items()
    ):
        raise InvalidEventError("field 'params' must be a map of string to number")
    return (
        _uuid(w, "event_id"), _uuid(w, "observation_id"), _str(w, "channel_id"),
        _int(w, "t_ns"), lat, lon, alt,
        _float(w, "cov_ee_m2"), _float(w, "cov_en_m2"), _float(w, "cov_nn_m2"),
        _str(w, "method"), _opt_str(w, "model_version"),
        _int(w, "n_receivers", lo=0, hi=UINT16_MAX), _bool(w, "converged", True),
        {k: float(v) for k, v in params.items()},
        _float(w, "processing_latency_s", 0.0), _int(w, "published_ns", 0),
    )  # fmt: skip


def truth_row(w: Mapping[str, Any]) -> tuple[Any, ...]:
    """A ``truth`` row from a ``heimdall.v1.Truth`` wire dict."""
    lat, lon, alt = _position(w)
    return (
        _uuid(w, "event_id"), _str(w, "source_id"), _int(w, "t_ns"), lat, lon, alt,
        _opt_str(w, "channel_id"), _float(w, "freq_hz"), _opt_float(w, "tx_power_dbm"),
        _str(w, "waveform", "unknown"), _bool(w, "transmitting", True),
        _floats(w, "velocity_enu_mps", []),
    )  # fmt: skip


@dataclass(frozen=True)
class Route:
    """Where the events of one topic role go."""

    schema: str
    table: str
    to_row: Callable[[Mapping[str, Any]], tuple[Any, ...]]


#: Topic role (field of ``TopicNames``) -> the schema its values must have and their table.
ROUTES: dict[str, Route] = {
    "features": Route("heimdall.v1.Measurement", "features", measurement_row),
    "observations": Route("heimdall.v1.Observation", "observations", observation_row),
    "localizations": Route("heimdall.v1.Localization", "localizations", localization_row),
    "truth": Route("heimdall.v1.Truth", "truth", truth_row),
}


def map_event(role: str, schema: str, wire: Mapping[str, Any]) -> tuple[str, tuple[Any, ...]]:
    """``(table, row)`` for a decoded event of the topic with ``role``.

    Raises :class:`InvalidEventError` (one line naming the field) when the schema is not the
    topic's or a value does not fit its column.
    """
    route = ROUTES.get(role)
    if route is None:
        raise InvalidEventError(f"the ClickHouse sink does not store topic role {role!r}")
    if schema != route.schema:
        raise InvalidEventError(f"the {role} topic carries {route.schema}, not {schema}")
    row = route.to_row(wire)
    if len(row) != len(TABLE_COLUMNS[route.table]):  # pragma: no cover - a bug, not bad data
        raise AssertionError(f"{route.table}: row of {len(row)} values")
    return route.table, row


# --------------------------------------------------------------------------------------------
# The sink
# --------------------------------------------------------------------------------------------


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
        self.group_id = group_id
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.commit_enabled = commit
        self.max_backoff_s = max_backoff_s
        self._consumer_overrides = dict(consumer_overrides or {})
        self.database: str = client.database or settings.clickhouse.database
        t = settings.topics
        self._roles: dict[str, str] = {getattr(t, role): role for role in ROUTES}
        self._lock = threading.Lock()
        self._stats = SinkStats()
        self._buffers: dict[str, list[tuple[Any, ...]]] = {table: [] for table in TABLE_COLUMNS}
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
        self._consumer = kafka.consumer(self.settings, self.group_id, **self._consumer_overrides)
        self._producer = kafka.producer(self.settings)
        try:
            self._consumer.subscribe(
                self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )  # fmt: skip
            consume_max = min(self.batch_size, 1000)
            while not stop.is_set():
                msgs = self._consumer.consume(consume_max, timeout=self._poll_timeout())
                for msg in msgs:
                    self._handle(msg)
                if self._flush_due():
                    self._flush(stop)
            self._flush(stop)
        finally:
            self._stopping = True  # close() revokes: the flush was just tried, do not retry
            self._close()

    # -- consuming -----------------------------------------------------------------------

    def _poll_timeout(self) -> float:
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

    def _handle(self, msg: Message) -> None:
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                log.warning("clickhouse sink: consumer error: %s", err)
            return
        topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
        assert topic is not None and partition is not None and offset is not None
        if self._batch_started is None:
            self._batch_started = time.monotonic()
        try:
            value = msg.value()
            if not value:
                raise InvalidEventError("empty value (tombstone)")
            schema, wire = self.serde.decode_dict(value)
            table, row = map_event(self._roles[topic], schema, wire)
        except Exception as exc:
            reason = f"{type(exc).__name__}: {exc}"
            self._dead_letter(msg, reason, topic, partition, offset)
        else:
            self._buffers[table].append(row)
            self._buffered += 1
        self._positions[(topic, partition)] = offset + 1
        with self._lock:
            self._stats.consumed += 1

    def _dead_letter(
        self, msg: Message, reason: str, topic: str, partition: int, offset: int
    ) -> None:
        log.warning("clickhouse sink: %s[%d]@%d to the DLQ: %s", topic, partition, offset, reason)
        headers = list(msg.headers() or [])
        headers += dlq_headers(reason, topic=topic, partition=partition, offset=offset, stage=STAGE)
        self._dlq_seq += 1
        self._dlq_inflight[self._dlq_seq] = (msg.key(), msg.value(), headers)
        self._produce_dead_letter(self._dlq_seq)
        with self._lock:
            self._stats.dlq += 1

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

    def _flush(self, stop: threading.Event, *, deadline: float | None = None) -> bool:
        """Write every buffered row, deliver the dead letters, then commit.

        On failure: pause, back off, retry. Returns False (nothing committed) if ``stop`` is
        set or the monotonic ``deadline`` passes first. With a deadline (inside a rebalance
        callback) the consumer is not polled.
        """
        pending = {k: v for k, v in self._positions.items() if self._committed.get(k) != v}
        if not self._buffered and not pending and not self._dlq_inflight:
            self._batch_started = None
            return True
        backoff = 0.05
        while True:
            try:
                self._write_buffers()
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

    def _write_buffers(self) -> None:
        for table, rows in self._buffers.items():
            if not rows:
                continue
            t0 = time.perf_counter()
            self.client.insert(
                table, rows, column_names=list(TABLE_COLUMNS[table]), database=self.database,
                settings=INSERT_SETTINGS,
            )  # fmt: skip
            dt = time.perf_counter() - t0
            with self._lock:
                self._stats.rows[table] += len(rows)
                self._stats.insert_seconds += dt
            self._buffered -= len(rows)
            self._buffers[table] = []

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
            for msg in self._consumer.consume(100, timeout=min(left, 0.2)):
                self._handle(msg)  # fetched before the pause took effect: keep it in order
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

    def _commit(self) -> None:
        if not self.commit_enabled:
            return
        pending = {k: v for k, v in self._positions.items() if self._committed.get(k) != v}
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
