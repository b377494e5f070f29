"""Shared fixtures.

* ``broker``: one real embedded Tansu broker for the whole session (integration tests).
* ``settings``: settings pointing at that broker, with unique topic names per test
  (``topics``) so tests never see each other's events.
* ``group_id``: a unique consumer group per test.
* every test fails if it leaves threads, child processes or environment variables behind.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from heimdall.core.settings import HeimdallSettings, TopicNames, load_settings
from heimdall.infra.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as b:
        yield b


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topics(unique: str) -> TopicNames:
    return TopicNames(**{k: f"t{unique}.{v}" for k, v in TopicNames().model_dump().items()})


@pytest.fixture
def group_id(unique: str) -> str:
    return f"g-{unique}"


@pytest.fixture
def settings(
    broker: EmbeddedBroker, topics: TopicNames, unique: str, tmp_path: Path
) -> HeimdallSettings:
    return load_settings(
        data_dir=tmp_path / "heimdall",
        streams_app_id=f"heimdall-streams-{unique}",
        topics=topics,
        partitions=2,
        kafka={"bootstrap_servers": broker.bootstrap_servers},
    )


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Fail a test that leaves threads, child processes or env vars behind."""
    env_before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    threads_before = set(threading.enumerate())
    yield
    env_after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    changed = {
        k for k in env_before.keys() | env_after.keys() if env_before.get(k) != env_after.get(k)
    }
    for k in changed:
        if k in env_before:
            os.environ[k] = env_before[k]
        else:
            os.environ.pop(k, None)
    leftover = []
    for t in set(threading.enumerate()) - threads_before:
        t.join(timeout=5.0)
        if t.is_alive() and not t.daemon:
            leftover.append(t.name)
    assert not changed, f"test changed environment variables {sorted(changed)}"
    assert not leftover, f"test left threads running: {leftover}"
