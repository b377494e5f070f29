"""The consumer of :mod:`heimdall.streams.transport` keeps stream partitions from the agents
until they are sought to their committed offsets (the order of calls is that of Faust's
``Recovery.on_recovery_completed``). No broker: the two calls that would reach it, the
assignment and the seek to the committed offsets, are answered by the test."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import faust
import pytest
from faust.types import TP

from heimdall.streams.transport import Consumer

STREAM = TP("rf.iq.v1", 0)
COMMITTED = 7


@pytest.fixture
def consumer() -> Iterator[Consumer]:
    app = faust.App(
        "transport-test",
        broker="heimdall://localhost:1",
        autodiscover=False,
        web_enabled=False,
        store="memory://",
    )
    table = app.Table("windows", default=int, partitions=1)
    changelog = TP(table.changelog_topic.get_topic_name(), 0)
    c = app.consumer
    assert isinstance(c, Consumer)
    assigned = {STREAM, changelog}

    async def seek_to_committed() -> dict[TP, int]:
        return {STREAM: COMMITTED}

    c.assignment = lambda: assigned  # type: ignore[method-assign]
    c.seek_to_committed = seek_to_committed  # type: ignore[method-assign]
    c.changelog = changelog  # type: ignore[attr-defined]
    c.pause_partitions(assigned)  # what Faust does on an assignment
    yield c


def active(c: Consumer) -> set[TP]:
    return set(c._get_active_partitions())


def test_stream_partitions_reach_the_agents_only_after_the_seek(consumer: Consumer) -> None:
    changelog = consumer.changelog  # type: ignore[attr-defined]
    consumer.resume_partitions({changelog})  # recovery reads the changelog first
    consumer.resume_flow()  # ... with the flow running
    assert active(consumer) == {changelog}
    consumer.resume_partitions({STREAM})
    assert STREAM not in active(consumer)  # fetched now, it would be cleared with the queues
    asyncio.run(consumer.perform_seek())
    assert STREAM not in active(consumer)  # the queues are not cleared yet
    consumer.resume_flow()  # right after flow_control.resume() cleared them
    assert STREAM in active(consumer)
    assert consumer._read_offset[STREAM] == COMMITTED


def test_a_flow_resumed_without_a_seek_releases_nothing(consumer: Consumer) -> None:
    consumer.resume_partitions({STREAM})
    consumer.resume_flow()
    assert STREAM not in active(consumer)


def test_a_pause_forgets_held_partitions(consumer: Consumer) -> None:
    consumer.resume_partitions({STREAM})
    consumer.pause_partitions({STREAM})  # e.g. a revocation before the seek
    asyncio.run(consumer.perform_seek())
    consumer.resume_flow()
    assert STREAM not in active(consumer)
