"""``heimdall archive``: the topics to the object store, each event exactly once.

One consumer (group ``heimdall-archive``, confluent-kafka) reads ``rf.iq.v1``,
``rf.features.v1``, ``rf.observations.v1``, ``rf.localizations.v1`` and ``rf.truth.v1`` and
writes them as Avro object container files (:mod:`heimdall.consumers.archive_files`) to
the archive (:class:`~heimdall.consumers.archive_store.ArchiveStore`).

Each topic partition has one open file in memory. An event goes into it unless its UTC
hour (Kafka timestamp = event time) differs from the file's, which first closes the file;
a file is also closed when it reaches ``max_file_bytes`` or ``roll_s`` after its first
event, on a rebalance that takes the partition away, and on stop. Closing writes the file
(temporary name, then renamed to ``…/p<partition>-<first>-<last>.avro``) and only then
commits, synchronously, the offset after its last event.

Exactly once across crashes: a restart resumes each partition at
``max(committed offset, offset after the last archived file)``, the second read from the
file names. A crash before a file is renamed leaves no file (its events are read again,
the commit never ran ahead of the store); a crash between the rename and the commit is
covered by the names. Nothing is skipped (the commit follows the file) and nothing is
written twice (the names say where the store is). Two archivers writing the same
partition at once (a partition lost in a rebalance) can still overlap; readers keep the
first copy of each offset.

``python -m heimdall.consumers.archive`` runs it (the light entry point ``heimdall up``
starts; ``heimdall archive`` is the same through the CLI). On SIGTERM it reads on until it
has caught up (at most ``drain_s``), writes and commits, then exits.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, Message, TopicPartition

from heimdall.consumers.archive_files import ArchivedEvent, ArchiveFileInfo, hour_of_ms
from heimdall.consumers.archive_store import ArchiveSettings, ArchiveStore
from heimdall.core import kafka, metrics
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.core.topics import ensure_stage_topics

__all__ = ["ArchiveStats", "ArchiveWriter", "main"]

log = logging.getLogger(__name__)

#: How often the retention is applied while running.
PRUNE_EVERY_S = 600.0


@dataclass
class _Open:
    """The open (in-memory) file of one topic partition."""

    hour_ms: int
    opened: float
    events: list[ArchivedEvent] = field(default_factory=list)
    size: int = 0


@dataclass
class ArchiveStats:
    consumed: int = 0
    skipped_duplicates: int = 0
    files: int = 0
    events_written: int = 0
    bytes_written: int = 0
    commits: int = 0
    pruned: int = 0
    put_failures: int = 0
    written: deque[ArchiveFileInfo] = field(default_factory=lambda: deque(maxlen=1000))
    """The last 1,000 files written."""


class ArchiveWriter:
    """The archiver (see the module doc).

    ``commit=False`` is a test hook: files are written but offsets never committed, as if
    the process died between each rename and its commit.
    """

    def __init__(
        self,
        settings: HeimdallSettings,
        archive: ArchiveSettings | None = None,
        store: ArchiveStore | None = None,
        *,
        group_id: str | None = None,
        commit: bool = True,
    ) -> None:
        self.settings = settings
        self.archive = archive or ArchiveSettings()
        self.store = store or ArchiveStore.from_settings(settings, self.archive)
        self.group_id = group_id or self.archive.group_id
        self.commit_enabled = commit
        self.topics = [getattr(settings.topics, role) for role in self.archive.roles]
        self.stats = ArchiveStats()
        self._open: dict[tuple[str, int], _Open] = {}
        self._next: dict[tuple[str, int], int] = {}  # first offset not yet archived
        self._consumer: Consumer | None = None
        self._last_prune = 0.0
        self._stop = threading.Event()

    # -- run ----------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> ArchiveStats:
        """Archive until ``stop`` is set; then drain (``drain_s``), write, commit, close."""
        self._stop = stop
        self.store.clean_incoming()
        self._consumer = kafka.consumer(self.settings, self.group_id)
        c = self._consumer
        try:
            c.subscribe(
                self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )  # fmt: skip
            while not stop.is_set():
                self._handle(c.consume(1000, timeout=0.2))
                self._roll_due()
                self._maybe_prune()
            self._drain()
            self._close_all()
        finally:
            try:
                c.close()
            except Exception as exc:  # pragma: no cover - closing a broken consumer
                log.warning("archive: consumer close failed: %s", exc)
            self._consumer = None
        return self.stats

    def _drain(self) -> None:
        """Read until a poll brings nothing for a second, or ``drain_s`` has passed."""
        assert self._consumer is not None
        deadline = time.monotonic() + self.archive.drain_s
        quiet_since = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 1.0:
            msgs = self._consumer.consume(1000, timeout=0.2)
            if any(m.error() is None for m in msgs):
                quiet_since = time.monotonic()
            self._handle(msgs)
            self._roll_due()

    # -- events ---------------------------------------------------------------------------

    def _handle(self, msgs: Sequence[Message]) -> None:
        now = time.monotonic()
        for msg in msgs:
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("archive: consumer error: %s", err)
                continue
            topic, partition, offset = str(msg.topic()), int(msg.partition() or 0), msg.offset()
            assert offset is not None
            tp = (topic, partition)
            self.stats.consumed += 1
            metrics.EVENTS_IN.labels("archive").inc()
            if offset < self._next.get(tp, 0):
                self.stats.skipped_duplicates += 1  # already in a file
                continue
            ts_type, ts_ms = msg.timestamp()
            if ts_ms is None or ts_ms < 0:
                ts_ms = int(time.time() * 1000)
            value, key = msg.value(), msg.key()
            event = ArchivedEvent(
                topic=topic, partition=partition, offset=offset, timestamp_ms=int(ts_ms),
                key=key, value=value, headers=_headers(msg),
                timestamp_type=int(ts_type),
            )  # fmt: skip
            hour_ms = int(hour_of_ms(event.timestamp_ms).timestamp() * 1000)
            f = self._open.get(tp)
            if f is not None and f.hour_ms != hour_ms:
                self._close(tp)
                f = None
            if f is None:
                f = self._open[tp] = _Open(hour_ms=hour_ms, opened=now)
            f.events.append(event)
            f.size += len(value or b"") + len(key or b"") + 32
            if f.size >= self.archive.max_file_bytes:
                self._close(tp)

    def _roll_due(self) -> None:
        now = time.monotonic()
        for tp in [tp for tp, f in self._open.items() if now - f.opened >= self.archive.roll_s]:
            self._close(tp)

    def _close(self, tp: tuple[str, int]) -> None:
        """Write the open file of ``tp``, then commit the offset after its last event."""
        f = self._open.pop(tp, None)
        if f is None or not f.events:
            return
        info = self._put(tp[0], f.events)
        if info is None:
            return
        nxt = f.events[-1].offset + 1
        self._next[tp] = nxt
        s = self.stats
        s.files += 1
        s.events_written += len(f.events)
        s.bytes_written += info.size_bytes
        metrics.ARCHIVE_FILES.labels(tp[0]).inc()
        metrics.ARCHIVE_BYTES.labels(tp[0]).inc(info.size_bytes)
        metrics.EVENTS_OUT.labels("archive").inc(len(f.events))
        s.written.append(info)
        log.info("archive: wrote %s (%d events)", info.path, len(f.events))
        if self.commit_enabled and self._consumer is not None:
            try:
                self._consumer.commit(
                    offsets=[TopicPartition(tp[0], tp[1], nxt)], asynchronous=False
                )
                s.commits += 1
            except Exception as exc:  # the file names still say where to resume
                log.warning("archive: commit of %s[%d]@%d failed: %s", *tp, nxt, exc)

    def _put(self, topic: str, events: list[ArchivedEvent]) -> ArchiveFileInfo | None:
        """Write one file, retrying with backoff (0.5 s doubling to 10 s) while the store
        fails; the consumer is not polled meanwhile (a long outage makes it leave the group:
        the next owner resumes from the file names). None if ``stop`` is set first and three
        tries failed: the events stay uncommitted and are read again by the next run."""
        backoff, tries = 0.5, 0
        while True:
            try:
                return self.store.put(topic, events, self.settings.schema_registry.url)
            except Exception as exc:
                tries += 1
                self.stats.put_failures += 1
                log.warning(
                    "archive: writing %d events of %s failed (try %d, again in %.1f s): %s",
                    len(events), topic, tries, backoff, exc,
                )  # fmt: skip
                if self._stop.is_set() and tries >= 3:
                    log.warning("archive: stopping with %d events of %s unwritten and "
                                "uncommitted", len(events), topic)  # fmt: skip
                    return None
                time.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    def _close_all(self) -> None:
        for tp in list(self._open):
            self._close(tp)

    def _maybe_prune(self) -> None:
        hours = self.archive.retention_hours
        if hours is None or time.monotonic() - self._last_prune < PRUNE_EVERY_S:
            return
        self._last_prune = time.monotonic()
        removed = self.store.prune(hours * 3600.0)
        self.stats.pruned += len(removed)
        for r in removed:
            log.info("archive: pruned %s", r)

    # -- rebalance ------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Start each partition at max(committed, after the last archived file)."""
        committed = consumer.committed(partitions, timeout=10.0)
        archived_next: dict[str, dict[int, int]] = {}
        start = []
        for tp in committed:
            assert tp.topic is not None
            if tp.topic not in archived_next:
                archived_next[tp.topic] = self.store.next_offsets(tp.topic)
            archived = archived_next[tp.topic].get(tp.partition)
            offset = tp.offset if tp.offset >= 0 else OFFSET_INVALID
            if archived is not None and (offset == OFFSET_INVALID or archived > offset):
                offset = archived
            if offset >= 0:
                self._next[(tp.topic, tp.partition)] = offset
            start.append(TopicPartition(tp.topic, tp.partition, offset))
        log.info("archive: assigned %s", [(p.topic, p.partition, p.offset) for p in start])
        consumer.assign(start)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:
            assert p.topic is not None
            self._close((p.topic, p.partition))
            self._next.pop((p.topic, p.partition), None)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for p in partitions:  # no longer ours: what is open is read again by the new owner
            assert p.topic is not None
            self._open.pop((p.topic, p.partition), None)
            self._next.pop((p.topic, p.partition), None)


def _headers(msg: Message) -> tuple[tuple[str, bytes | None], ...]:
    """A message's headers as (name, bytes) pairs (a str value is UTF-8 encoded)."""
    out = []
    for k, v in msg.headers() or ():  # type: ignore[str-unpack]
        out.append((str(k), v.encode() if isinstance(v, str) else v))
    return tuple(out)


def main() -> None:
    """``python -m heimdall.consumers.archive``: run the archiver until SIGINT/SIGTERM."""
    from heimdall.core.errors import HeimdallError

    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level, format="%(asctime)s %(name)s %(levelname)s %(message)s"
        )
        metrics.serve_from_settings(settings)
        ensure_stage_topics(settings)
        stop = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stop.set())
        writer = ArchiveWriter(settings)
        print(f"archive: {writer.store.url} <- {', '.join(writer.topics)}", flush=True)
        stats = writer.run(stop)
    except HeimdallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(
        f"archive: {stats.events_written} events in {stats.files} files "
        f"({stats.bytes_written / 1e6:.1f} MB)",
        flush=True,
    )


if __name__ == "__main__":
    main()
