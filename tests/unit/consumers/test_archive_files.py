"""Archive files: names, the OCF round trip byte for byte, corrupt files, the store on disk."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from fastavro import block_reader

from heimdall.consumers.archive_files import (
    ArchivedEvent,
    CorruptBlock,
    file_name,
    hour_dir,
    hour_of_ms,
    parse_path,
    read_header,
    read_ocf,
    write_ocf,
)
from heimdall.consumers.archive_store import ArchiveStore
from heimdall.schemas import catalog
from heimdall.schemas.models import Position, Truth
from heimdall.schemas.serde import Serde

T0_MS = 1_764_835_200_000  # 2025-12-04T08:00:00Z


def _events(n: int, partition: int = 1, first: int = 100, size: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [
        ArchivedEvent(
            topic="rf.iq.v1",
            partition=partition,
            offset=first + i,
            timestamp_ms=T0_MS + 10 * i,
            key=f"rx-{i % 3}".encode(),
            value=rng.bytes(size),
            headers=(("h", b"v"), ("none", None)),
        )
        for i in range(n)
    ]


def test_names_sort_as_numbers_and_parse_back() -> None:
    hour = hour_of_ms(T0_MS + 3_599_999)
    assert hour == datetime(2025, 12, 4, 8, tzinfo=UTC)
    path = f"/x/archive/{hour_dir('rf.iq.v1', hour)}/{file_name(2, 9, 123)}"
    assert path.endswith(
        "rf.iq.v1/date=2025-12-04/hour=08/p0002-00000000000000000009-00000000000000000123.avro"
    )
    info = parse_path(path, 77)
    assert info is not None
    assert (
        info.topic,
        info.hour,
        info.partition,
        info.first_offset,
        info.last_offset,
        info.size_bytes,
    ) == ("rf.iq.v1", hour, 2, 9, 123, 77)
    assert file_name(0, 9, 10) < file_name(0, 10, 11)  # lexical order = offset order
    assert parse_path("/x/archive/rf.iq.v1/date=2025-12-04/hour=08/notes.txt") is None
    with pytest.raises(ValueError):
        file_name(0, 5, 4)


def test_ocf_round_trip_keeps_every_byte_and_the_writer_schema() -> None:
    serde = Serde()
    truth = Truth(
        source_id="tx", t_ns=1, position=Position(lat_deg=45.0, lon_deg=7.0, alt_m=0.0), freq_hz=1e6
    )
    events = _events(50)
    events[3] = ArchivedEvent("rf.iq.v1", 1, 103, T0_MS, None, serde.encode(truth))
    buf = io.BytesIO()
    write_ocf(buf, "rf.iq.v1", events)
    errors: list[CorruptBlock] = []
    back = list(read_ocf(buf.getvalue(), "f.avro", errors.append))
    assert errors == [] and back == events
    info = read_header(io.BytesIO(buf.getvalue()), "f.avro", len(buf.getvalue()))
    assert (info.events, info.first_offset, info.last_offset) == (50, 100, 149)
    assert (info.min_timestamp_ms, info.max_timestamp_ms) == (T0_MS, T0_MS + 490)
    meta = block_reader(io.BytesIO(buf.getvalue())).metadata
    import json

    schemas = json.loads(meta["heimdall.value_schemas"])["single_object"]
    entry = catalog.current()["heimdall.v1.Truth"]
    assert schemas == {entry.fingerprint_hex: entry.canonical}


def _blocks(data: bytes) -> list[tuple[int, int, int]]:
    return [(b.offset, b.size, b.num_records) for b in block_reader(io.BytesIO(data))]


def test_corrupt_block_is_reported_with_its_byte_offset_and_the_rest_is_read() -> None:
    events = _events(200, size=30_000)  # 6 MB: several 1 MiB blocks
    buf = io.BytesIO()
    write_ocf(buf, "rf.iq.v1", events, codec="null")
    data = bytearray(buf.getvalue())
    blocks = _blocks(bytes(data))
    assert len(blocks) >= 4
    off, size, n = blocks[1]
    data[off + size - 5] ^= 0xFF  # the block's sync marker
    errors: list[CorruptBlock] = []
    back = list(read_ocf(bytes(data), "bad.avro", errors.append))
    assert len(errors) == 1 and errors[0].byte_offset == off
    assert str(errors[0]).startswith(f"bad.avro: unreadable at byte {off}:")
    # the corrupted sync ends block 1, so the reader resynchronises after block 2
    lost = {e.offset for e in events} - {e.offset for e in back}
    assert lost == {e.offset for e in events[blocks[0][2] : blocks[0][2] + n + blocks[2][2]]}
    assert [e for e in back if e.offset not in lost] == [e for e in events if e.offset not in lost]


def test_flipped_value_bit_is_caught_by_the_record_crc() -> None:
    events = _events(20, size=500)
    buf = io.BytesIO()
    write_ocf(buf, "rf.iq.v1", events, codec="null")
    data = bytearray(buf.getvalue())
    at = bytes(data).find(events[7].value[100:140])  # type: ignore[index]
    data[at] ^= 0x01
    errors: list[CorruptBlock] = []
    back = list(read_ocf(bytes(data), "flip.avro", errors.append))
    assert [e.offset for e in back] == [e.offset for e in events if e.offset != 107]
    assert len(errors) == 1 and "record 1/107: CRC-32 mismatch" in errors[0].reason


def test_not_an_archive_file_is_one_error_at_byte_zero() -> None:
    errors: list[CorruptBlock] = []
    assert list(read_ocf(b"hello", "x.avro", errors.append)) == []
    assert errors[0].byte_offset == 0 and "x.avro" in str(errors[0])


def test_store_put_list_read_by_time_and_prune(tmp_path: Path) -> None:
    store = ArchiveStore((tmp_path / "objects" / "archive").as_uri())
    a = _events(30, partition=0, first=0)
    b = _events(30, partition=1, first=0, seed=1)
    late = [
        ArchivedEvent("rf.iq.v1", 1, 30 + i, T0_MS + 3_600_000 + i, b"k", b"x" * i)
        for i in range(5)
    ]
    for chunk in (a[:10], a[10:], b, late):
        store.put("rf.iq.v1", chunk)
    files = store.files("rf.iq.v1")
    assert [(f.partition, f.first_offset, f.last_offset) for f in files] == [
        (0, 0, 9),
        (0, 10, 29),
        (1, 0, 29),
        (1, 30, 34),
    ]
    assert not list((tmp_path / "objects" / "archive" / "_incoming").iterdir())
    assert store.next_offset("rf.iq.v1", 1) == 35 and store.next_offset("rf.iq.v1", 5) is None
    assert store.topics() == ["rf.iq.v1"]
    # [T0 + 50 ms, T0 + 1 h): the late hour is out, the first five of each partition too
    got = list(store.events("rf.iq.v1", (T0_MS + 50) * 10**6, (T0_MS + 3_600_000) * 10**6))
    want = [e for e in a + b if e.timestamp_ms >= T0_MS + 50]
    assert sorted(got, key=lambda e: (e.partition, e.offset)) == want
    assert [e.timestamp_ms for e in got] == sorted(e.timestamp_ms for e in got)
    described = store.describe(files)
    assert [d.events for d in described if not isinstance(d, str)] == [10, 20, 30, 5]
    # a copy of a file (two archivers during a rebalance) is read once
    store.put("rf.iq.v1", a[5:15])
    assert len(list(store.events("rf.iq.v1", 0, 2**62))) == 65
    # retention: the 08:00 hour ended 1 h before 10:00; keep 30 min -> only 09:00 stays
    removed = store.prune(1800.0, now_s=T0_MS / 1000 + 2 * 3600)
    assert len(removed) == 1 and removed[0].endswith("hour=08")
    assert [f.first_offset for f in store.files("rf.iq.v1")] == [30]


def test_decoded_events_of_a_time_range_for_training(tmp_path: Path) -> None:
    from heimdall.consumers.archive_store import decoded_events

    serde = Serde()
    truths = [
        Truth(
            source_id=f"tx-{i}",
            t_ns=(T0_MS + 1000 * i) * 10**6,
            freq_hz=1e6,
            position=Position(lat_deg=45.0 + i, lon_deg=7.0, alt_m=0.0),
        )
        for i in range(6)
    ]
    records = [
        ArchivedEvent("rf.truth.v1", 0, i, t.t_ns // 10**6, t.source_id.encode(), serde.encode(t))
        for i, t in enumerate(truths)
    ]
    records[4] = ArchivedEvent("rf.truth.v1", 0, 4, T0_MS + 4000, b"x", b"\x07not avro")
    store = ArchiveStore((tmp_path / "archive").as_uri())
    store.put("rf.truth.v1", records)
    problems: list[str] = []
    got = list(
        decoded_events(store, "rf.truth.v1", truths[1].t_ns, truths[5].t_ns, serde, problems.append)
    )
    assert [ev for _, ev in got] == [truths[1], truths[2], truths[3]]
    assert [rec.offset for rec, _ in got] == [1, 2, 3]
    assert len(problems) == 1 and problems[0].startswith("rf.truth.v1[0]@4: unknown magic byte")
