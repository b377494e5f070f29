"""The archive on the object store (fsspec): settings, writing files, listing, reading by time.

* :class:`ArchiveSettings`: ``HEIMDALL_ARCHIVE_*`` (retention, file size, roll interval, …).
* :class:`ArchiveStore`: files under ``<OBJECT_STORE_URL>/<prefix>`` (default ``archive``),
  laid out as :mod:`heimdall.consumers.archive_files` says.

  - :meth:`ArchiveStore.put` writes one file: the OCF is built in memory, written under
    ``_incoming/`` with a temporary name and then moved to its final name (an atomic rename
    on a file system; on S3 a copy then a delete, and the final object appears whole). A
    file is therefore either absent or complete under its final name.
  - :meth:`ArchiveStore.next_offset` is the offset after the last one archived of a topic
    partition, from the file names alone: the archiver resumes there, so an event written
    but not yet committed to Kafka is not written again.
  - :meth:`ArchiveStore.events` yields the records of a topic in ``[from, to)`` (Kafka
    timestamps, i.e. event time), each partition in offset order, partitions merged by
    timestamp; unreadable parts of files are reported with the file and byte offset and
    the rest is read. :func:`decoded_events` adds the decoded Heimdall event: what
    ``heimdall train --source archive`` needs from ``rf.observations.v1`` / ``rf.truth.v1``.
  - :meth:`ArchiveStore.prune` deletes the hour partitions older than the retention.
"""

from __future__ import annotations

import heapq
import io
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from heimdall.consumers.archive_files import (
    CODEC,
    ArchivedEvent,
    ArchiveFileInfo,
    CorruptBlock,
    file_name,
    hour_dir,
    hour_of_ms,
    parse_path,
    read_header,
    read_ocf,
    write_ocf,
)
from heimdall.core.objectstore import filesystem, storage_options
from heimdall.core.settings import HeimdallSettings

__all__ = ["ArchiveSettings", "ArchiveStore", "decoded_events"]

log = logging.getLogger(__name__)

INCOMING = "_incoming"

#: Topic roles archived by default (fields of ``TopicNames``).
DEFAULT_ROLES = ("iq", "features", "observations", "localizations", "truth")


class ArchiveSettings(BaseSettings):
    """``HEIMDALL_ARCHIVE_*``: what the archiver writes and keeps."""

    model_config = SettingsConfigDict(env_prefix="HEIMDALL_ARCHIVE_", frozen=True, extra="ignore")

    prefix: str = Field("archive", description="folder of the archive in the object store")
    roles: tuple[str, ...] = Field(DEFAULT_ROLES, description="topic roles archived")
    group_id: str = Field("heimdall-archive", description="the archiver's consumer group")
    retention_hours: float | None = Field(
        None, gt=0, description="hour partitions older than this (event time) are deleted"
    )
    max_file_bytes: int = Field(
        64 << 20, ge=1024, description="a file is closed when its events reach this size"
    )
    roll_s: float = Field(
        60.0, gt=0, description="a file is closed at most this long after its first event"
    )
    codec: str = Field(CODEC, description="OCF block codec: null, deflate, zstandard, lz4, …")
    drain_s: float = Field(
        10.0, ge=0, description="on stop, read on until caught up or this long, then write"
    )


def _to_ms_floor(t_ns: int) -> int:
    return -(-t_ns // 1_000_000)  # the first ms whose ns time is >= t_ns


class ArchiveStore:
    """The archive under ``url`` (``file://…`` or ``s3://bucket/prefix``)."""

    def __init__(
        self, url: str, options: dict[str, Any] | None = None, *, codec: str = CODEC
    ) -> None:
        self.url = url.rstrip("/")
        self.fs, root = filesystem(self.url, options)
        self.root = root.rstrip("/")
        self.codec = codec

    @classmethod
    def from_settings(
        cls, settings: HeimdallSettings, archive: ArchiveSettings | None = None
    ) -> ArchiveStore:
        a = archive or ArchiveSettings()
        url = f"{settings.object_store_url.rstrip('/')}/{a.prefix.strip('/')}"
        return cls(url, storage_options(settings), codec=a.codec)

    # -- writing ----------------------------------------------------------------------------

    def put(
        self, topic: str, events: Sequence[ArchivedEvent], registry_url: str | None = None
    ) -> ArchiveFileInfo:
        """Write one file of ``events`` (one partition, one UTC hour, offsets increasing)."""
        first, last = events[0], events[-1]
        hour = hour_of_ms(first.timestamp_ms)
        buf = io.BytesIO()
        write_ocf(buf, topic, events, codec=self.codec, registry_url=registry_url)
        data = buf.getvalue()
        folder = f"{self.root}/{hour_dir(topic, hour)}"
        final = f"{folder}/{file_name(first.partition, first.offset, last.offset)}"
        tmp = f"{self.root}/{INCOMING}/{uuid.uuid4().hex}.avro.tmp"
        self.fs.makedirs(f"{self.root}/{INCOMING}", exist_ok=True)
        self.fs.makedirs(folder, exist_ok=True)
        self.fs.pipe_file(tmp, data)
        self.fs.mv(tmp, final)
        ts = [e.timestamp_ms for e in events]
        return ArchiveFileInfo(
            path=final, topic=topic, hour=hour, partition=first.partition,
            first_offset=first.offset, last_offset=last.offset, size_bytes=len(data),
            events=len(events), min_timestamp_ms=min(ts), max_timestamp_ms=max(ts),
        )  # fmt: skip

    def clean_incoming(self, older_than_s: float = 3600.0) -> int:
        """Delete temporary files left by a crash (old ones only: another archiver may be
        writing its own right now). Returns how many."""
        n = 0
        try:
            entries = self.fs.ls(f"{self.root}/{INCOMING}", detail=True)
        except FileNotFoundError:
            return 0
        now = time.time()
        for e in entries:
            mtime = _mtime(e)
            if mtime is not None and now - mtime < older_than_s:
                continue
            self.fs.rm_file(e["name"])
            n += 1
        return n

    # -- listing ----------------------------------------------------------------------------

    def topics(self) -> list[str]:
        try:
            entries = self.fs.ls(self.root, detail=False)
        except FileNotFoundError:
            return []
        names = [str(p).rstrip("/").rsplit("/", 1)[-1] for p in entries]
        return sorted(n for n in names if n != INCOMING and not n.startswith("."))

    def files(
        self, topic: str, from_ms: int | None = None, to_ms: int | None = None
    ) -> list[ArchiveFileInfo]:
        """The files of ``topic`` whose hour overlaps ``[from_ms, to_ms)``, from their names
        (sorted by partition, then first offset)."""
        try:
            found = self.fs.find(f"{self.root}/{topic}", detail=True)
        except FileNotFoundError:
            return []
        out = []
        for path, entry in found.items():
            info = parse_path(str(path), int(entry.get("size") or 0))
            if info is None or info.topic != topic:
                continue
            start_ms = int(info.hour.timestamp() * 1000)
            if from_ms is not None and start_ms + 3_600_000 <= from_ms:
                continue
            if to_ms is not None and start_ms >= to_ms:
                continue
            out.append(info)
        out.sort(key=lambda f: (f.partition, f.first_offset))
        return out

    def describe(self, files: Sequence[ArchiveFileInfo]) -> list[ArchiveFileInfo | str]:
        """Each file with its header's metadata read (events, time range); a string naming
        the file and what is wrong for one whose header cannot be read."""
        out: list[ArchiveFileInfo | str] = []
        for f in files:
            try:
                with self.fs.open(f.path, "rb", block_size=1 << 16) as fo:
                    out.append(read_header(fo, f.path, f.size_bytes))
            except (ValueError, OSError) as exc:
                out.append(str(exc))
        return out

    def next_offsets(self, topic: str) -> dict[int, int]:
        """``{partition: offset after the last one archived}`` of ``topic``."""
        out: dict[int, int] = {}
        for f in self.files(topic):
            out[f.partition] = max(out.get(f.partition, 0), f.last_offset + 1)
        return out

    def next_offset(self, topic: str, partition: int) -> int | None:
        """The offset after the last one archived of ``topic`` ``partition`` (None: none)."""
        return self.next_offsets(topic).get(partition)

    # -- reading ----------------------------------------------------------------------------

    def events(
        self,
        topic: str,
        from_ns: int,
        to_ns: int,
        on_error: Callable[[CorruptBlock], None] | None = None,
    ) -> Iterator[ArchivedEvent]:
        """The archived records of ``topic`` with a timestamp in ``[from_ns, to_ns)``.

        Each partition in offset order (a record archived twice, by two archivers during a
        rebalance, is yielded once), partitions merged by timestamp. Unreadable parts go to
        ``on_error`` (default: logged) and the rest is read.
        """
        report = on_error or (lambda c: log.warning("archive: %s", c))
        from_ms, to_ms = _to_ms_floor(from_ns), _to_ms_floor(to_ns)
        by_partition: dict[int, list[ArchiveFileInfo]] = {}
        for f in self.files(topic, from_ms, to_ms):
            by_partition.setdefault(f.partition, []).append(f)
        streams = [
            self._partition_events(files, from_ms, to_ms, report)
            for _, files in sorted(by_partition.items())
        ]
        return heapq.merge(*streams, key=lambda e: e.timestamp_ms)

    def _partition_events(
        self,
        files: list[ArchiveFileInfo],
        from_ms: int,
        to_ms: int,
        report: Callable[[CorruptBlock], None],
    ) -> Iterator[ArchivedEvent]:
        last = -1
        for f in files:
            if f.last_offset <= last:
                continue  # wholly a copy of what was read
            try:
                data = self.fs.cat_file(f.path)
            except OSError as exc:
                report(CorruptBlock(f.path, 0, f"cannot read: {exc}"))
                continue
            for e in read_ocf(data, f.path, report):
                if e.offset <= last:
                    continue
                last = e.offset
                if from_ms <= e.timestamp_ms < to_ms:
                    yield e

    # -- retention --------------------------------------------------------------------------

    def prune(self, retention_s: float, now_s: float | None = None) -> list[str]:
        """Delete every hour partition that ended more than ``retention_s`` before ``now_s``
        (event time, like Kafka's ``retention.ms``). Returns the folders deleted."""
        now = time.time() if now_s is None else now_s
        cutoff = datetime.fromtimestamp(now - retention_s, tz=UTC)
        removed = []
        for topic in self.topics():
            try:
                dates = self.fs.ls(f"{self.root}/{topic}", detail=False)
            except FileNotFoundError:
                continue
            for d in dates:
                try:
                    hours = self.fs.ls(d, detail=False)
                except FileNotFoundError:
                    continue
                for h in hours:
                    info = parse_path(f"{h}/{file_name(0, 0, 0)}")
                    if info is None or info.hour + timedelta(hours=1) > cutoff:
                        continue
                    self.fs.rm(h, recursive=True)
                    removed.append(str(h))
                if len(removed) and not self.fs.ls(d, detail=False):
                    self.fs.rm(d, recursive=True)
        return removed


def decoded_events(
    store: ArchiveStore,
    topic: str,
    from_ns: int,
    to_ns: int,
    serde: Any,
    on_error: Callable[[str], None] | None = None,
) -> Iterator[tuple[ArchivedEvent, Any]]:
    """``(record, event)`` for every archived record of ``topic`` in ``[from_ns, to_ns)``,
    the value decoded with ``serde`` (a :class:`heimdall.schemas.serde.Serde`) into its model
    (``Observation``, ``Truth``, …). Undecodable values and unreadable file parts are
    reported to ``on_error`` as one line each and skipped."""
    report = on_error or (lambda s: log.warning("archive: %s", s))
    for rec in store.events(topic, from_ns, to_ns, lambda c: report(str(c))):
        try:
            yield rec, serde.decode(rec.value or b"")
        except Exception as exc:
            report(f"{topic}[{rec.partition}]@{rec.offset}: {exc}")


def _mtime(entry: dict[str, Any]) -> float | None:
    m = entry.get("mtime") or entry.get("LastModified") or entry.get("created")
    if m is None:
        return None
    if isinstance(m, datetime):
        return m.timestamp()
    try:
        return float(m)
    except (TypeError, ValueError):
        return None
