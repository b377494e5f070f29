"""``heimdall replay``: a time range of a topic, from the broker or the archive, into a topic.

Events are published with their key, value and headers unchanged and their Kafka
timestamp (event time) kept; each carries three more headers naming where it was read
(:data:`TOPIC`, :data:`PARTITION`, :data:`OFFSET`, UTF-8; replaced if it was itself a
replay) and the replay's id (:data:`RUN`). Values are not decoded: what a stage consumed is
what it gets again, byte for byte.

Sources
    *broker*: each partition from ``offsets_for_times(from)`` (Tansu 0.6 answers 0 to any
    time: then from the low watermark) to its end at the start of the replay (the offset
    after its last record, read from the last batch: Tansu's high watermark is only a lower
    bound), keeping records with a timestamp in ``[from, to)`` — Heimdall's timestamps are
    event times, which need not increase with the offset, so the whole span is read.
    *archive*: :meth:`ArchiveStore.events` (unreadable parts are reported, the rest replays).

Pacing
    ``speed=None`` publishes as fast as the producer takes them; ``speed=x`` publishes an
    event ``(t − t_first) / x`` after the first, ``t`` its timestamp (an event behind its
    time goes at once). From the archive, partitions are merged in time order; from the
    broker, in the order the broker delivers them.

Refused: a range with ``from >= to``, a replay into the topic it reads from (it would read
its own output). An empty range is not an error here: the result says 0 events (and the
target topic is not created).
"""

from __future__ import annotations

import itertools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import NewTopic

from heimdall.consumers.archive_files import ArchivedEvent, CorruptBlock
from heimdall.consumers.archive_store import ArchiveStore
from heimdall.core import kafka
from heimdall.core.errors import ConfigError, HeimdallError
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings

__all__ = [
    "OFFSET",
    "PARTITION",
    "RUN",
    "TOPIC",
    "ReplayResult",
    "broker_events",
    "parse_time_ns",
    "replay",
]

log = logging.getLogger(__name__)

TOPIC = "heimdall.replay.topic"
PARTITION = "heimdall.replay.partition"
OFFSET = "heimdall.replay.offset"
RUN = "heimdall.replay.run"
_OURS = (TOPIC, PARTITION, OFFSET, RUN)

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)(s|m|h|d)$")
_UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time_ns(text: str, now_ns: int | None = None) -> int:
    """A time on the command line, as ns since the epoch.

    ISO 8601 (``2026-12-04T08:00:00Z``, ``2026-12-04 08:00``; without a zone: UTC), ``now``,
    a time before now (``-15m``, ``-2h``, ``-30s``, ``-1d``), or seconds since the epoch
    (``1764835200``, ``1764835200.25``).
    """
    t = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    if t == "now":
        return now
    m = _RELATIVE.match(t)
    if m:
        return now - int(float(m.group(1)) * _UNITS_S[m.group(2)] * 1e9)
    if re.fullmatch(r"\d+(\.\d+)?", t):
        whole, _, frac = t.partition(".")
        return int(whole) * 10**9 + int((frac + "000000000")[:9])
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"time {text!r}: expected ISO 8601 (2026-12-04T08:00:00Z), now, -15m/-2h/-1d or "
            "seconds since the epoch"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


@dataclass
class ReplayResult:
    """What a replay did."""

    topic: str
    into: str
    source: str
    events: int = 0
    first_timestamp_ms: int | None = None
    last_timestamp_ms: int | None = None
    problems: list[str] = field(default_factory=list)
    run_id: str = ""
    wall_s: float = 0.0


def _end_offsets(c: Consumer, topic: str, timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """``{partition: (low, end)}``: ``end`` the offset after the last record.

    Tansu 0.6 reports the high watermark as the base offset of the last batch + 1: the
    last batch is fetched from ``high − 1`` and its last offset taken (on Kafka, the same).
    """
    md = c.list_topics(topic, timeout=timeout_s)
    meta = md.topics.get(topic)
    if meta is None or meta.error is not None:
        why = meta.error if meta is not None else "unknown topic"
        raise ConfigError(f"topic {topic!r} cannot be read: {why}")
    out: dict[int, tuple[int, int]] = {}
    for p in sorted(meta.partitions):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False)
        out[p] = (lo, hi)
    pending = {p for p, (_, hi) in out.items() if hi > 0}
    if pending:
        c.assign([TopicPartition(topic, p, out[p][1] - 1) for p in pending])
        deadline = time.monotonic() + timeout_s
        extra = 1
        while (pending or extra) and time.monotonic() < deadline:
            if not pending:
                extra -= 1
            for msg in c.consume(1000, timeout=0.05):
                if msg.error():
                    continue
                p = int(msg.partition() or 0)
                lo, end = out[p]
                out[p] = (lo, max(end, int(msg.offset() or 0) + 1))
                pending.discard(p)
        c.unassign()
    return out


def broker_events(
    settings: HeimdallSettings, topic: str, from_ns: int, to_ns: int, idle_timeout_s: float = 15.0
) -> Iterator[ArchivedEvent]:
    """The records of ``topic`` on the broker with a timestamp in ``[from_ns, to_ns)``,
    each partition in offset order, up to the end each partition had when this started."""
    from_ms, to_ms = -(-from_ns // 1_000_000), -(-to_ns // 1_000_000)
    # a bulk read to a known end: large fetches, and short fetch waits (Tansu holds every
    # fetch for fetch.wait.max.ms; held fetches slowed the replay's own produce: 0.52 → 0.76
    # of a raw produce's rate with 100 → 5 ms, bench archive)
    overrides = {
        "enable.partition.eof": False,
        "max.partition.fetch.bytes": 16 << 20,
        "fetch.max.bytes": 64 << 20,
        "fetch.wait.max.ms": 5,
    }
    c = kafka.consumer(settings, f"heimdall-replay-{new_event_id()}", **overrides)
    try:
        ends = _end_offsets(c, topic)
        starts: dict[int, int] = {}
        for p, (lo, end) in ends.items():
            if end <= lo:
                continue
            start = lo
            try:
                (tp,) = c.offsets_for_times([TopicPartition(topic, p, from_ms)], timeout=10.0)
                if tp.error is None:
                    if tp.offset < 0:  # no record at or after from: nothing here
                        continue
                    start = max(lo, min(tp.offset, end))
            except KafkaException as exc:
                log.info("replay: offsets_for_times(%s[%d]) failed: %s", topic, p, exc)
            if start < end:
                starts[p] = start
        if not starts:
            return
        c.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
        pending = set(starts)
        last_msg = time.monotonic()
        while pending:
            msgs = c.consume(1000, timeout=0.5)
            if not msgs and time.monotonic() - last_msg > idle_timeout_s:
                raise HeimdallError(
                    f"replay: {topic} partitions {sorted(pending)} gave nothing for "
                    f"{idle_timeout_s:.0f} s before their end offsets "
                    f"{[ends[p][1] for p in sorted(pending)]}"
                )
            for msg in msgs:
                if msg.error() is not None:
                    continue
                last_msg = time.monotonic()
                p, off = int(msg.partition() or 0), int(msg.offset() or 0)
                if p not in pending or off >= ends[p][1]:
                    continue
                if off + 1 >= ends[p][1]:
                    pending.discard(p)
                    c.pause([TopicPartition(topic, p)])
                ts_type, ts_ms = msg.timestamp()
                if ts_ms is None or not (from_ms <= ts_ms < to_ms):
                    continue
                yield ArchivedEvent(
                    topic=topic, partition=p, offset=off, timestamp_ms=int(ts_ms),
                    key=msg.key(), value=msg.value(), headers=_headers(msg),
                    timestamp_type=int(ts_type),
                )  # fmt: skip
    finally:
        c.close()


def _headers(msg: Message) -> tuple[tuple[str, bytes | None], ...]:
    out = []
    for k, v in msg.headers() or ():  # type: ignore[str-unpack]
        out.append((str(k), v.encode() if isinstance(v, str) else v))
    return tuple(out)


def ensure_target(settings: HeimdallSettings, source: str, into: str) -> None:
    """Create ``into`` if missing, with the source's partition count (keys then land as the
    pipeline's producers would put them)."""
    admin = kafka.admin(settings)
    topics = admin.list_topics(timeout=10).topics
    if into in topics:
        return
    partitions = len(topics[source].partitions) if source in topics else settings.partitions
    config = {"compression.type": "zstd", "max.message.bytes": str(8 * 1024 * 1024)}
    futures = admin.create_topics(
        [NewTopic(into, num_partitions=partitions, replication_factor=1, config=config)]
    )
    for fut in futures.values():
        try:
            fut.result(timeout=15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ConfigError(f"cannot create topic {into!r}: {exc}") from None


def replay(
    settings: HeimdallSettings,
    topic: str,
    from_ns: int,
    to_ns: int,
    *,
    into: str,
    speed: float | None = None,
    from_archive: bool = False,
    store: ArchiveStore | None = None,
    on_problem: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> ReplayResult:
    """Publish the events of ``topic`` in ``[from_ns, to_ns)`` into ``into`` (see module doc)."""
    if into == topic:
        raise ConfigError(
            f"refusing to replay {topic} into itself: it would read its own output "
            "(choose another --into)"
        )
    if from_ns >= to_ns:
        raise ConfigError(
            f"empty time range: --from ({from_ns} ns) is not before --to ({to_ns} ns)"
        )
    if speed is not None and speed <= 0:
        raise ConfigError(f"--speed must be positive, not {speed}")
    result = ReplayResult(
        topic=topic, into=into, source="archive" if from_archive else "broker",
        run_id=new_event_id(),
    )  # fmt: skip

    def problem(text: str) -> None:
        result.problems.append(text)
        if on_problem is not None:
            on_problem(text)

    def corrupt(c: CorruptBlock) -> None:
        problem(str(c))

    if from_archive:
        arch = store or ArchiveStore.from_settings(settings)
        events: Iterator[ArchivedEvent] = arch.events(topic, from_ns, to_ns, corrupt)
    else:
        events = broker_events(settings, topic, from_ns, to_ns)
    t_begin = time.monotonic()
    first = next(events, None)
    if first is None:
        return result  # nothing in range: no target topic created, nothing published
    events = itertools.chain([first], events)
    ensure_target(settings, topic, into)
    producer = kafka.producer(settings)
    failed: list[str] = []

    def delivered(err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            failed.append(str(err))

    run = result.run_id.encode()
    t_start = time.monotonic()
    t_first: int | None = None
    for e in events:
        if stop is not None and stop.is_set():
            break
        if t_first is None:
            t_first = e.timestamp_ms
        if speed is not None:
            wait = (e.timestamp_ms - t_first) / 1000.0 / speed - (time.monotonic() - t_start)
            if wait > 0:
                time.sleep(wait)
        headers: list[tuple[str, str | bytes | None]] = [
            (k, v) for k, v in e.headers if k not in _OURS
        ]
        headers += [
            (TOPIC, e.topic.encode()),
            (PARTITION, str(e.partition).encode()),
            (OFFSET, str(e.offset).encode()),
            (RUN, run),
        ]
        while True:
            try:
                producer.produce(
                    into, value=e.value, key=e.key, headers=headers, timestamp=e.timestamp_ms,
                    on_delivery=delivered,
                )  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        result.events += 1
        if result.first_timestamp_ms is None:
            result.first_timestamp_ms = e.timestamp_ms
        result.last_timestamp_ms = e.timestamp_ms
    left = producer.flush(60.0)
    result.wall_s = time.monotonic() - t_begin
    if left or failed:
        raise HeimdallError(
            f"replay into {into}: {left + len(failed)} of {result.events} events not delivered"
            + (f" ({failed[0]})" if failed else "")
        )
    return result
