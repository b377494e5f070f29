"""The archive's files: names, the Avro object container format, reading with recovery.

Layout (under ``<OBJECT_STORE_URL>/archive``)::

    <topic>/date=YYYY-MM-DD/hour=HH/p<partition:04d>-<first offset:020d>-<last offset:020d>.avro

One file holds a contiguous run of one topic partition's records (offsets ``first…last``),
all with Kafka timestamps in that UTC hour (the event time: Heimdall's producers stamp each
record with its event time). The ``date=/hour=`` directories are Hive-style partitions, so
engines that read Avro (ClickHouse, DuckDB, Spark) can prune by time.

Each file is an Avro object container file (OCF, fastavro) of :data:`ARCHIVE_SCHEMA`
records: the Kafka record as it was consumed — partition, offset, timestamp and its type,
key, headers — and the value **byte for byte** (``bytes``). Values are Heimdall events
already framed with their writer schema (single-object encoding: ``C3 01`` + the CRC-64-AVRO
fingerprint; or Confluent framing: ``00`` + a registry id), so re-encoding them would lose
nothing but add a decode/encode per event and the risk of changing the bytes; replay needs
the exact bytes. The file's metadata holds the writer schemas of its values
(``heimdall.value_schemas``: fingerprint → canonical schema, for every single-object
fingerprint found in the file; Confluent ids are listed with the registry that resolves
them), the topic, partition, offset range, event count and time range: a reader needs
nothing but the file to decode it, and ``heimdall archive ls`` reads only the header.

Corruption: blocks are read one at a time; a block that fails (bad sync marker, codec
error, undecodable record) is reported with the file and the block's byte offset, the
reader resynchronises at the next sync marker and goes on with the rest of the file.
"""

from __future__ import annotations

import io
import json
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from fastavro import block_reader, parse_schema, writer

from heimdall.schemas import catalog

__all__ = [
    "ARCHIVE_SCHEMA",
    "ArchiveFileInfo",
    "ArchivedEvent",
    "CorruptBlock",
    "file_name",
    "hour_dir",
    "hour_of_ms",
    "parse_path",
    "read_header",
    "read_ocf",
    "record_crc32",
    "value_schemas",
    "write_ocf",
]

#: One Kafka record in the archive. ``timestamp_type``: 0 none, 1 create time, 2 log append
#: (confluent-kafka's ``TIMESTAMP_*``).
ARCHIVE_SCHEMA: Any = parse_schema(
    {
        "type": "record",
        "name": "ArchivedRecord",
        "namespace": "heimdall.archive.v1",
        "doc": "A Kafka record as consumed; value byte for byte (a framed Heimdall event).",
        "fields": [
            {"name": "partition", "type": "int"},
            {"name": "offset", "type": "long"},
            {"name": "timestamp_ms", "type": "long"},
            {"name": "timestamp_type", "type": "int"},
            {"name": "key", "type": ["null", "bytes"]},
            {"name": "value", "type": ["null", "bytes"]},
            {"name": "crc32", "type": "long", "doc": "zlib.crc32 of key then value"},
            {
                "name": "headers",
                "type": {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "Header",
                        "fields": [
                            {"name": "key", "type": "string"},
                            {"name": "value", "type": ["null", "bytes"]},
                        ],
                    },
                },
            },
        ],
    }
)

#: Default block codec. Measured by ``python -m bench archive``.
CODEC = "zstandard"
SUFFIX = ".avro"

_NAME = re.compile(r"^p(\d{4,})-(\d{20})-(\d{20})\.avro$")
_HOUR = re.compile(r"date=(\d{4}-\d{2}-\d{2})/hour=(\d{2})$")


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """A Kafka record read back from the archive (or about to be written to it)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp_type: int = 1

    def to_record(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp_ms": self.timestamp_ms,
            "timestamp_type": self.timestamp_type,
            "key": self.key,
            "value": self.value,
            "crc32": record_crc32(self.key, self.value),
            "headers": [{"key": k, "value": v} for k, v in self.headers],
        }

    @classmethod
    def from_record(cls, topic: str, r: dict[str, Any]) -> ArchivedEvent:
        return cls(
            topic=topic,
            partition=r["partition"],
            offset=r["offset"],
            timestamp_ms=r["timestamp_ms"],
            key=r["key"],
            value=r["value"],
            headers=tuple((h["key"], h["value"]) for h in r["headers"]),
            timestamp_type=r["timestamp_type"],
        )


@dataclass(frozen=True, slots=True)
class ArchiveFileInfo:
    """What a file's path says (and, once its header is read, what its metadata says)."""

    path: str
    topic: str
    hour: datetime
    partition: int
    first_offset: int
    last_offset: int
    size_bytes: int = 0
    events: int | None = None
    min_timestamp_ms: int | None = None
    max_timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class CorruptBlock:
    """A part of a file that could not be read: where, and why."""

    path: str
    byte_offset: int
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: unreadable at byte {self.byte_offset}: {self.reason}"


def record_crc32(key: bytes | None, value: bytes | None) -> int:
    """CRC-32 (zlib) of the key then the value: catches a bit flip the codec would not."""
    return zlib.crc32(value or b"", zlib.crc32(key or b""))


# -- names --------------------------------------------------------------------------------


def hour_of_ms(timestamp_ms: int) -> datetime:
    """The UTC hour (truncated) holding a Kafka timestamp in ms."""
    t = datetime.fromtimestamp(timestamp_ms / 1000.0, tz=UTC)
    return t.replace(minute=0, second=0, microsecond=0)


def hour_dir(topic: str, hour: datetime) -> str:
    """``<topic>/date=YYYY-MM-DD/hour=HH`` (relative to the archive root)."""
    return f"{topic}/date={hour:%Y-%m-%d}/hour={hour:%H}"


def file_name(partition: int, first_offset: int, last_offset: int) -> str:
    """``p0002-<first:020d>-<last:020d>.avro``: zero-padded, so names sort as numbers."""
    if first_offset < 0 or last_offset < first_offset:
        raise ValueError(f"bad offset range {first_offset}..{last_offset}")
    return f"p{partition:04d}-{first_offset:020d}-{last_offset:020d}{SUFFIX}"


def parse_path(path: str, size_bytes: int = 0) -> ArchiveFileInfo | None:
    """The topic, hour, partition and offsets a file path names (None: not an archive file)."""
    parts = path.rstrip("/").split("/")
    if len(parts) < 4:
        return None
    m = _NAME.match(parts[-1])
    h = _HOUR.search("/".join(parts[-3:-1]))
    if m is None or h is None:
        return None
    hour = datetime.strptime(f"{h.group(1)} {h.group(2)}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    return ArchiveFileInfo(
        path=path,
        topic=parts[-4],
        hour=hour,
        partition=int(m.group(1)),
        first_offset=int(m.group(2)),
        last_offset=int(m.group(3)),
        size_bytes=size_bytes,
    )


def hours_between(from_ms: int, to_ms: int) -> Iterator[datetime]:
    """Every UTC hour overlapping ``[from_ms, to_ms)``."""
    h = hour_of_ms(from_ms)
    while h.timestamp() * 1000 < to_ms:
        yield h
        h += timedelta(hours=1)


# -- writing ------------------------------------------------------------------------------


def value_schemas(values: Sequence[bytes | None]) -> dict[str, Any]:
    """The writer schemas of framed values: ``{"single_object": {fp hex: canonical}, ...}``.

    Single-object fingerprints are looked up among the current and released schemas; an
    unknown fingerprint is listed with ``null``. Confluent-framed values list their ids.
    """
    known: dict[bytes, str] = {}
    for cat in (catalog.current(), *catalog.released().values()):
        for e in cat:
            known.setdefault(e.fingerprint, e.canonical)
    so: dict[str, str | None] = {}
    cf: set[int] = set()
    for v in values:
        if not v:
            continue
        if v[:2] == b"\xc3\x01" and len(v) >= 10:
            fp = bytes(v[2:10])
            key = f"0x{int.from_bytes(fp, 'little'):016x}"
            if key not in so:
                so[key] = known.get(fp)
        elif v[:1] == b"\x00" and len(v) >= 5:
            cf.add(int.from_bytes(v[1:5], "big"))
    out: dict[str, Any] = {"single_object": so}
    if cf:
        out["confluent_ids"] = sorted(cf)
    return out


def write_ocf(
    out: BinaryIO,
    topic: str,
    events: Sequence[ArchivedEvent],
    *,
    codec: str = CODEC,
    registry_url: str | None = None,
) -> None:
    """Write ``events`` (one topic partition, offsets increasing) as one OCF to ``out``."""
    if not events:
        raise ValueError("an archive file needs at least one event")
    schemas = value_schemas([e.value for e in events])
    if registry_url and "confluent_ids" in schemas:
        schemas["registry"] = registry_url
    ts = [e.timestamp_ms for e in events]
    meta = {
        "heimdall.topic": topic,
        "heimdall.partition": str(events[0].partition),
        "heimdall.first_offset": str(events[0].offset),
        "heimdall.last_offset": str(events[-1].offset),
        "heimdall.events": str(len(events)),
        "heimdall.min_timestamp_ms": str(min(ts)),
        "heimdall.max_timestamp_ms": str(max(ts)),
        "heimdall.value_schemas": json.dumps(schemas, separators=(",", ":")),
    }
    writer(
        out,
        ARCHIVE_SCHEMA,
        (e.to_record() for e in events),
        codec=codec,
        metadata=meta,
        sync_interval=1 << 20,
    )


# -- reading ------------------------------------------------------------------------------


def read_header(fo: BinaryIO, path: str, size_bytes: int = 0) -> ArchiveFileInfo:
    """The metadata of an archive file (reads only its header). ValueError if not one."""
    try:
        r = block_reader(fo)
    except Exception as exc:
        raise ValueError(f"{path}: not an Avro object container file (byte 0): {exc}") from None
    meta = r.metadata
    info = parse_path(path, size_bytes)
    try:
        return ArchiveFileInfo(
            path=path,
            topic=meta["heimdall.topic"],
            hour=info.hour if info else hour_of_ms(int(meta["heimdall.min_timestamp_ms"])),
            partition=int(meta["heimdall.partition"]),
            first_offset=int(meta["heimdall.first_offset"]),
            last_offset=int(meta["heimdall.last_offset"]),
            size_bytes=size_bytes,
            events=int(meta["heimdall.events"]),
            min_timestamp_ms=int(meta["heimdall.min_timestamp_ms"]),
            max_timestamp_ms=int(meta["heimdall.max_timestamp_ms"]),
        )
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{path}: header without Heimdall metadata ({exc})") from None


class _Spliced(io.RawIOBase):
    """The header bytes followed by ``data[start:]``: lets fastavro read on after a resync."""

    def __init__(self, header: bytes, data: bytes, start: int) -> None:
        self._buf = io.BytesIO(header + data[start:])

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        return self._buf.read(n)

    def readinto(self, b: Any) -> int:
        return self._buf.readinto(b)

    def tell(self) -> int:
        return self._buf.tell()

    def seek(self, pos: int, whence: int = 0) -> int:
        return self._buf.seek(pos, whence)


def read_ocf(
    data: bytes, path: str, on_error: Callable[[CorruptBlock], None]
) -> Iterator[ArchivedEvent]:
    """Every record of an archive file's bytes, in file order.

    A block that cannot be read is reported to ``on_error`` (file, byte offset of the block,
    reason) and skipped: reading resumes at the next sync marker. A file whose header is
    unreadable is reported once (byte 0) and yields nothing.
    """
    try:
        fo = io.BytesIO(data)
        r = block_reader(fo)
        topic = r.metadata["heimdall.topic"]
    except Exception as exc:
        on_error(CorruptBlock(path, 0, f"not a Heimdall archive file: {_one_line(exc)}"))
        return
    header_end = fo.tell()
    header = data[:header_end]
    sync: bytes = r._header["sync"]
    shift = 0  # real offset = offset in the current stream + shift
    blocks = iter(r)
    pos = header_end  # real offset where the next block starts
    while True:
        try:
            block = next(blocks)
            records: list[dict[str, Any]] = list(block)  # type: ignore[arg-type]
        except StopIteration:
            return
        except Exception as exc:
            on_error(CorruptBlock(path, pos, _one_line(exc)))
            nxt = data.find(sync, pos + 1)
            if nxt < 0 or nxt + len(sync) >= len(data):
                return
            start = nxt + len(sync)
            stream = _Spliced(header, data, start)
            blocks = iter(block_reader(stream))  # type: ignore[arg-type]
            shift = start - header_end
            pos = start
            continue
        for rec in records:
            if rec["crc32"] != record_crc32(rec["key"], rec["value"]):
                what = f"record {rec['partition']}/{rec['offset']}: CRC-32 mismatch (skipped)"
                on_error(CorruptBlock(path, pos, what))
                continue
            yield ArchivedEvent.from_record(topic, rec)
        pos = block.offset + block.size + shift


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]
