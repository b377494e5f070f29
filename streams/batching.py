"""Batches in the Faust agents: what a stage sends for a batch, and sending it before the ack.

Every stage works on a batch of events taken with Faust's ``stream.take_events(max, within)``:
decode the batch, compute (vectorised where the maths allows), encode, then
:func:`send_batch` hands every output record and every dead letter to the producer and waits
until the broker has acknowledged them all. Only then does the agent's loop body return, and
only then does ``take_events`` ack the batch's source events (faust ``streams.py``: the events
are acked in the ``finally`` after the ``yield``), so a committed offset always lies behind
outputs that were delivered: a crash loses nothing (at least once), and a rebalance, which waits
for the acks (``stream_wait_empty``), processes nothing twice.

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


def batches(
    stream: StreamT[Any], max_events: int, within_s: float
) -> AsyncIterator[Sequence[EventT]]:
    """Up to ``max_events`` events at a time, or what arrived within ``within_s`` seconds; the
    events are acked when the loop body that received them returns (``Stream.take_events``)."""
    return cast(Stream, stream).take_events(max_events, within=within_s)


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
