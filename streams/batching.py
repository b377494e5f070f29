"""Batches in the Faust agents: what a stage sends for a batch, and the ack after delivery.

Every stage works on batches (:func:`batches`, natural batching over ``stream.noack()``):
decode the batch, compute (vectorised where the maths allows), encode, then :func:`send_batch`
hands every output record and every dead letter to the producer and waits until the broker
has acknowledged them all; only then are the batch's source events acked and their offsets
committed, before the next event is read. A committed offset therefore always lies behind
outputs that were delivered (a crash loses nothing that was committed: at least once).

Why commit per batch: faust-streaming 0.15 commits acked offsets every
``broker_commit_interval`` (2.8 s), and on a revocation it forgets the revoked partitions'
acked offsets before it commits (see :mod:`heimdall.streams.transport`). Measured with two
workers and two rebalances (``tests/integration/streams/test_rebalance.py``, ~1,900–5,400
chunks): 107–756 chunks measured twice with ``take_events`` and Faust's commits; 0–4 twice
with per-batch commits and the commit on revocation. What is left is a Faust consumer race at
a rebalance: in most runs one event per moved partition is neither processed nor redelivered
(the test is marked as a known failure until it is fixed).

Tables and the current event
----------------------------
A Faust table writes its changelog to the partition of the *current event* (faust
``tables/base.py``: ``partition_for_key`` reads ``current_event()``), and a table default for a
missing key is itself a write. Inside a batch there is no meaningful current event, so the
stages enter :func:`current_event` with an event of the key being written (a channel's events
all come from one partition, because every topic the stages read is keyed by channel).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from faust.streams import Stream, _current_event
from faust.types import EventT, StreamT

from heimdall.schemas.dlq import dlq_headers

__all__ = ["DeadLetter", "Record", "batches", "current_event", "send_batch"]


@dataclass(frozen=True, slots=True)
class Record:
    """One output event of a stage: topic, key, value (encoded) and event time in seconds."""

    topic: str
    key: bytes
    value: bytes
    timestamp_s: float


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A source event a stage refuses, with the one-line reason."""

    event: EventT
    reason: str


async def batches(
    stream: StreamT[Any], consumer: Any, max_events: int
) -> AsyncIterator[Sequence[EventT]]:
    """The events waiting on ``stream``, at most ``max_events`` at a time, as soon as it runs dry.

    Natural batching: an event is added to the batch and, if no further event is already
    waiting in the agent's queue (or the batch is full), the batch is handed to the loop body
    at once. A quiet stream gives batches of one with no added wait; a loaded one gives large
    batches. When the loop body returns (its outputs delivered, :func:`send_batch`), the
    batch's events are acked and their offsets committed before the next event is read, so no
    event is held across a rebalance.

    Acks are manual (``stream.noack()``). One Faust commit runs at a time and a caller that
    finds one running waits for it and returns False: that commit may have started before
    these acks, so a second call makes sure they are committed.
    """
    manual = cast(Stream, stream).noack()
    channel: Any = manual.channel
    batch: list[EventT] = []
    async for event in manual.events():
        batch.append(event)
        if len(batch) < max_events and not channel.empty():
            continue
        yield batch
        for done in batch:
            await manual.ack(done)
        tps = {done.message.tp for done in batch}
        if not await consumer.commit(tps):
            await consumer.commit(tps)
        batch = []


@contextlib.contextmanager
def current_event(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event for the block (table writes go to its partition)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def send_batch(
    producer: Any,
    records: Sequence[Record],
    dead: Sequence[DeadLetter],
    *,
    dlq_topic: str,
    stage: str,
) -> None:
    """Produce ``records`` and the dead letters, and wait until the broker has them all.

    ``producer`` is the Faust app's producer (``app.producer``); keys are partitioned by the
    producer's partitioner. A dead letter carries the source event's key and value untouched
    and the reason and origin in headers (:mod:`heimdall.schemas.dlq`).
    """
    futures = []
    for r in records:
        futures.append(await producer.send(r.topic, r.key, r.value, None, r.timestamp_s, None))
    for d in dead:
        msg = d.event.message
        headers = dlq_headers(
            d.reason, topic=msg.topic, partition=msg.partition, offset=msg.offset, stage=stage
        )
        futures.append(await producer.send(dlq_topic, msg.key, msg.value, None, None, headers))
    if futures:
        await asyncio.gather(*futures)
