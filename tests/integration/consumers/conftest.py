"""Fixtures of the ClickHouse sink tests: one chDB data directory per test session.

What chDB 4.4 (ClickHouse 26.9) does, measured here through clickhouse-connect 1.12:

* A process hosts one chDB engine at a time. Any number of clients may be open on the same
  path (each has its own session: USE, SET), but opening a client on another path while a
  client is open fails ("EmbeddedServer already initialized with path …"). Once every
  client is closed, another path can be opened in the same process, and the directory is
  released (another process can then open it).
* A second process cannot open a directory that one process holds (ClickHouse locks
  ``<dir>/status``).

So the tests share one data directory for the whole session (``chdb_root``) and isolate
themselves with a database per test; every client is closed at the end of its test, so
other tests of the session may still open chDB elsewhere.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from heimdall.consumers.clickhouse_sink import ClickHouseSink
from heimdall.core import kafka
from heimdall.core.settings import ClickHouseSettings, HeimdallSettings
from heimdall.core.store import open_clickhouse
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.clickhouse import apply_schema


@pytest.fixture(scope="session")
def chdb_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's data directory: ``settings.chdb_path`` is ``<chdb_root>/chdb``."""
    return tmp_path_factory.mktemp("heimdall-chdb")


@pytest.fixture
def ch_settings(settings: HeimdallSettings, chdb_root: Path, unique: str) -> HeimdallSettings:
    """The test's settings (broker, unique topics) on the shared chDB with its own database."""
    return settings.model_copy(
        update={
            "data_dir": chdb_root,
            "clickhouse": ClickHouseSettings(url=None, password=None, database=f"test_{unique}"),
        }
    )


@pytest.fixture
def store(ch_settings: HeimdallSettings) -> Iterator[Any]:
    """A client on the test's database with the history tables; the topics exist too."""
    ensure_topics(kafka.admin(ch_settings), heimdall_topics(ch_settings))
    client = open_clickhouse(ch_settings)
    try:
        apply_schema(client, ch_settings.clickhouse.database)
        yield client
    finally:
        client.close()


class SinkThread:
    """A :class:`ClickHouseSink` running in a thread, with its own store client."""

    def __init__(self, sink: ClickHouseSink) -> None:
        self.sink = sink
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="clickhouse-sink", daemon=True)

    def _run(self) -> None:
        try:
            self.sink.run(self.stop)
        except BaseException as exc:
            self.error = exc

    def start(self) -> SinkThread:
        self._thread.start()
        return self

    def wait_for(self, what: str, cond: Callable[[], bool], timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.error is not None:
                raise AssertionError(f"the sink died: {self.error!r}") from self.error
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}; sink stats {self.sink.stats}")

    def finish(self, timeout_s: float = 30.0) -> None:
        self.stop.set()
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "the sink did not stop"
        if self.error is not None:
            raise AssertionError(f"the sink died: {self.error!r}") from self.error


@pytest.fixture
def run_sink(ch_settings: HeimdallSettings) -> Iterator[Callable[..., SinkThread]]:
    """Start sinks (``run_sink(serde, **kwargs)``); they are stopped and their clients closed."""
    running: list[tuple[SinkThread, Any]] = []

    def start(serde: Any, **kwargs: Any) -> SinkThread:
        client = open_clickhouse(ch_settings)
        kwargs.setdefault("flush_interval_s", 0.2)
        st = SinkThread(ClickHouseSink(ch_settings, client, serde, **kwargs)).start()
        running.append((st, client))
        return st

    yield start
    for st, client in running:
        try:
            st.stop.set()
            st._thread.join(30.0)
        finally:
            client.close()
