"""The archive store on S3 (s3fs against a local moto server): put, list, read, prune."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from heimdall.consumers.archive_files import ArchivedEvent, CorruptBlock
from heimdall.consumers.archive_store import ArchiveStore
from tests.moto_s3 import moto_s3

pytestmark = pytest.mark.integration

T0_MS = 1_796_371_198_000  # 2026-12-04T07:59:58Z


@pytest.fixture
def s3_options() -> Iterator[dict[str, Any]]:
    pytest.importorskip("s3fs")
    with moto_s3("heimdall-archive-test") as opts:
        yield opts


def test_archive_store_on_s3(s3_options: dict[str, Any]) -> None:
    store = ArchiveStore("s3://heimdall-archive-test/objects/archive", s3_options)
    events = [
        ArchivedEvent("rf.truth.v1", i % 2, i // 2, T0_MS + 1000 * i, b"k", bytes([i]) * 50)
        for i in range(8)
    ]
    for p in (0, 1):
        mine = [e for e in events if e.partition == p]
        store.put("rf.truth.v1", [e for e in mine if e.timestamp_ms < T0_MS + 2000])
        store.put("rf.truth.v1", [e for e in mine if e.timestamp_ms >= T0_MS + 2000])
    files = store.files("rf.truth.v1")
    assert [(f.hour.hour, f.partition, f.first_offset, f.last_offset) for f in files] == [
        (7, 0, 0, 0), (8, 0, 1, 3), (7, 1, 0, 0), (8, 1, 1, 3),
    ]  # fmt: skip
    assert store.topics() == ["rf.truth.v1"]
    assert not store.fs.exists(f"{store.root}/_incoming")  # S3: no object, no prefix
    assert store.next_offset("rf.truth.v1", 1) == 4
    errors: list[CorruptBlock] = []
    got = list(store.events("rf.truth.v1", (T0_MS + 1000) * 10**6, 2**62, errors.append))
    assert got == events[1:] and errors == []
    assert [d.events for d in store.describe(files) if not isinstance(d, str)] == [1, 3, 1, 3]
    removed = store.prune(3600.0, now_s=T0_MS / 1000 + 3700)  # 07:00-08:00 ended > 1 h ago
    assert len(removed) == 1 and "hour=07" in removed[0]
    assert [f.hour.hour for f in store.files("rf.truth.v1")] == [8, 8]
