"""The sink's writer thread and commit discipline, with a fake store, consumer and producer.

A background flush hands the rows to the writer thread and the consumer goes on; the positions
that flush covers are committed only once the insert is done, a failed insert puts its rows
back in front of the buffers for the synchronous retry, and a rebalance deadline never commits
what is not written. (The real broker and chDB are in tests/integration/consumers.)
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
import pytest
from confluent_kafka import TopicPartition

from heimdall.consumers.clickhouse_sink import ClickHouseSink
from heimdall.core.settings import load_settings
from heimdall.schemas.serde import Serde


class FakeClient:
    database = "db"

    def __init__(self) -> None:
        self.inserted: list[tuple[str, list[Any]]] = []
        self.release = threading.Event()
        self.release.set()
        self.fail: Exception | None = None

    def insert_arrow(self, table: str, data: pa.Table, **_: Any) -> None:
        assert self.release.wait(10.0)
        if self.fail is not None:
            raise self.fail
        self.inserted.append((table, data.column("n").to_pylist()))


class FakeConsumer:
    def __init__(self) -> None:
        self.commits: list[dict[tuple[str, int], int]] = []
        self.paused = False

    def commit(self, offsets: list[TopicPartition], asynchronous: bool) -> None:
        assert not asynchronous
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition("t", 0)]

    def pause(self, _: Any) -> None:
        self.paused = True

    def resume(self, _: Any) -> None:
        self.paused = False

    def consume(self, *_: Any, **__: Any) -> list[Any]:
        return []


class FakeProducer:
    def flush(self, _: float) -> int:
        return 0

    def poll(self, _: float) -> int:
        return 0


@pytest.fixture
def sink() -> Any:
    client = FakeClient()
    s = ClickHouseSink(load_settings(), client, Serde(), max_backoff_s=0.05)
    s._consumer = FakeConsumer()  # type: ignore[assignment]
    s._producer = FakeProducer()  # type: ignore[assignment]
    s._writer = ThreadPoolExecutor(1)
    yield s
    client.release.set()
    s._writer.shutdown(wait=True)


def buffer(sink: Any, values: list[int], positions: dict[tuple[str, int], int]) -> None:
    """Buffer rows (one column ``n``) as if a poll batch had been handled."""
    sink._buffers["truth"].append(pa.table({"n": values}))
    sink._buffered += len(values)
    sink._positions.update(positions)


def test_the_positions_of_a_background_write_are_committed_once_it_is_done(sink: Any) -> None:
    client = sink.client
    client.release.clear()
    buffer(sink, [1, 2], {("t", 0): 10})
    assert sink._flush(threading.Event(), background=True)
    assert sink._inflight is not None and sink._buffered == 0
    # the consumer goes on meanwhile: more rows and positions
    buffer(sink, [3], {("t", 0): 11, ("t", 1): 5})
    assert sink._consumer.commits == []
    client.release.set()
    assert sink._settle(None) is True
    assert client.inserted == [("truth", [1, 2])]
    assert sink._consumer.commits == [{("t", 0): 10}]  # not 11, nor partition 1: unwritten
    assert sink.stats.rows["truth"] == 2
    # the next flush settles nothing more and writes the rest, then commits everything
    assert sink._flush(threading.Event())
    assert client.inserted[-1] == ("truth", [3])
    assert sink._consumer.commits[-1] == {("t", 0): 11, ("t", 1): 5}


def test_a_failed_background_write_is_retried_first_then_the_newer_rows(sink: Any) -> None:
    client = sink.client
    client.fail = RuntimeError("table is gone")
    buffer(sink, [1, 2], {("t", 0): 10})
    assert sink._flush(threading.Event(), background=True)
    sink._inflight.future.exception(10.0)  # wait for the failure
    buffer(sink, [3], {("t", 0): 11})
    assert sink._settle(0.0) is False
    assert sink.stats.insert_failures == 1 and sink._consumer.commits == []
    assert [t.column("n").to_pylist() for t in sink._buffers["truth"]] == [[1, 2], [3]]
    assert sink._buffered == 3

    stop = threading.Event()
    threading.Timer(0.2, lambda: setattr(client, "fail", None)).start()
    assert sink._flush(stop)  # synchronous: pause, back off, retry until the store is back
    assert client.inserted == [("truth", [1, 2, 3])]
    assert sink._consumer.commits == [{("t", 0): 11}]
    assert sink.stats.insert_failures >= 2 and not sink._consumer.paused


def test_a_rebalance_deadline_with_a_write_in_flight_commits_nothing(sink: Any) -> None:
    client = sink.client
    client.release.clear()
    buffer(sink, [1], {("t", 0): 10, ("t", 1): 3})
    assert sink._flush(threading.Event(), background=True)
    deadline = time.monotonic() + 0.1
    assert sink._flush(threading.Event(), deadline=deadline) is False
    assert sink._consumer.commits == []
    sink._forget([TopicPartition("t", 1)])  # revoked: its offsets are no longer ours
    client.release.set()
    assert sink._settle(None) is True
    assert sink._consumer.commits == [{("t", 0): 10}]
