"""Batches in the Faust agents: what a stage sends for a batch, and the ack after delivery.

Every stage works on batches (:func:`batches`, natural batching over ``stream.noack()``):
decode the batch, compute (vectorised where the maths allows), encode, then
:func:`produce_batch` hands every output record and every dead letter to the producer; the
batch's source events are acked only once the broker has acknowledged all of them. A
committed offset therefore always lies behind outputs that were delivered (a crash loses
nothing that was committed: at least once).

Rebalances: faust-streaming 0.15 on a revocation forgets the revoked partitions' acked offsets
before it commits, and after an assignment its table recovery lets the fetcher deliver events
while it seeks to the committed offsets, then clears the agents' queues (both handled in
:mod:`heimdall.streams.transport`). Measured with two workers and two rebalances
(``tests/integration/streams/test_rebalance.py``): 107–756 of ~1,900–5,400 chunks measured
twice with ``take_events`` and Faust's own commits. Of ~5,200–8,200 chunks, with the commit on
revocation alone, 8 of 16 runs failed (1–65 chunks lost, or 2–433 measured twice: the seek
race); with the seek before delivery too, 66 of 67 runs lost nothing and repeated nothing (one
run, without offset traces, lost 24 chunks of one partition: cause not found).

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
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from faust.streams import Stream, _current_event
from faust.types import EventT, StreamT

from heimdall.schemas.dlq import dlq_headers

__all__ = ["Batch", "DeadLetter", "Record", "batches", "current_event", "produce_batch"]


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


@dataclass
class Batch:
    """The events a loop body works on, and the deliveries of what it sent for them."""

    events: list[EventT]
    delivery: list[Awaitable[Any]] = field(default_factory=list)
    started_s: float = field(default_factory=time.perf_counter)
    """When the batch was taken (``time.perf_counter``): its processing time starts here."""

    def __len__(self) -> int:
        return len(self.events)

    def __iter__(self) -> Iterator[EventT]:
        return iter(self.events)


async def batches(
    stream: StreamT[Any], max_events: int, max_in_flight: int = 16, linger_s: float = 0.005
) -> AsyncIterator[Batch]:
    """The events waiting on ``stream``, at most ``max_events`` at a time, as soon as it runs dry.

    Natural batching: an event is added to the batch and, if no further event is already
    waiting in the agent's queue (or the batch is full), the batch is handed to the loop body.
    When the first event of a batch finds the queue empty, it waits ``linger_s`` once for the
    rest of a fetch to arrive: without it Faust's conductor hands events over one at a time
    and every batch had one event (measured: 330–500 chunks/s on a backlog with two workers;
    with 5 ms, batches of ~30 and 2,850 chunks/s). A quiet stream adds at most ``linger_s``.

    The loop body adds the delivery futures of what it produced to ``batch.delivery``
    (:func:`produce_batch`); the batch's events are acked (manually: ``stream.noack()``) once
    all of them are delivered, in the background, while the next batches are processed — at
    most ``max_in_flight`` batches wait for their deliveries at a time. Waiting for each
    batch's delivery and commit before taking the next one was measured at 11–14 ms of body
    and 5–8 ms of commit per batch of ~20 IQ chunks, the workers 75 % idle: the stage ran at
    the broker's round trip. Faust commits acked offsets every ``broker_commit_interval``.
    """
    manual = cast(Stream, stream).noack()
    channel: Any = manual.channel
    in_flight: deque[asyncio.Future[None]] = deque()

    async def settle(batch: Batch) -> None:
        if batch.delivery:
            await asyncio.gather(*batch.delivery)
        for done in batch.events:
            await manual.ack(done)

    events: list[EventT] = []
    async for event in manual.events():
        events.append(event)
        if len(events) < max_events and channel.empty() and len(events) == 1 and linger_s > 0:
            await asyncio.sleep(linger_s)  # let a fetch's worth of events arrive
        if len(events) < max_events and not channel.empty():
            continue
        batch = Batch(events)
        yield batch
        in_flight.append(asyncio.ensure_future(settle(batch)))
        while in_flight and (in_flight[0].done() or len(in_flight) > max_in_flight):
            await in_flight.popleft()
        events = []


@contextlib.contextmanager
def current_event(event: EventT) -> Iterator[None]:
    """Make ``event`` Faust's current event for the block (table writes go to its partition)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


async def produce_batch(
    producer: Any,
    records: Sequence[Record],
    dead: Sequence[DeadLetter],
    *,
    dlq_topic: str,
    stage: str,
) -> list[Awaitable[Any]]:
    """Produce ``records`` and the dead letters; returns their delivery futures.

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
    return futures
