"""Faust's aiokafka transport with a configurable fetch wait, a commit on revocation and a seek
before the first event after a rebalance (broker URL ``heimdall://``).

Fetch wait
----------
faust-streaming 0.15 creates its aiokafka consumer with ``fetch_max_wait_ms=1500`` hard-coded
(``faust/transport/drivers/aiokafka.py``). A Kafka broker answers a fetch as soon as data
arrives, so there the wait only bounds idle polling; Tansu 0.6 holds the fetch for the whole
wait, which was measured here as a 0.4 s median (0.75 s p99) delay per hop with 1500 ms, 0.11 s
with 500 ms and 4 ms with 50 ms. This transport takes the wait from
``KAFKA_FETCH_MAX_WAIT_MS`` (default 100 ms).

Commit on revocation
--------------------
faust-streaming 0.15's ``Consumer.on_partitions_revoked`` (``faust/transport/consumer.py``)
first forgets the acked offsets of the revoked partitions and only then lets the app wait for
the events in flight and commit, so whatever was processed since the last commit is processed
again by the partition's next owner. This consumer first pauses fetching, waits until every
event already fetched is processed, acked and committed (what Kafka's Java clients do in
``onPartitionsRevoked``), then hands over to Faust.

Seek before delivery
--------------------
After an assignment Faust's table recovery (``Recovery.on_recovery_completed`` in
``faust/tables/recovery.py``) does, in this order: resume the stream partitions, ``await
consumer.perform_seek()`` (seek every partition to its committed offset and set the
consumer's ``_read_offset`` to it), ``app.flow_control.resume()`` (which *clears* the agents'
queues) and ``consumer.resume_flow()``. But the flow is already running by then (recovery
resumed it to read the changelogs), so while ``perform_seek`` waits for the consumer thread
the fetcher delivers the freshly resumed partitions' events into the agents' queues and
advances ``_read_offset``. Then:

* ``perform_seek`` sets ``_read_offset`` back to the committed offset ``c``; the rest of the
  batch in hand, at offset ``o > c + 1``, looks like a hole in the log to
  ``Consumer._drain_messages``, whose ``_add_gap(tp, c + 1, o)`` marks ``c + 1 .. o`` as done;
* ``flow_control.resume()`` drops the events in the agents' queues: never processed;
* the refetch from ``c`` that the seek causes is dropped by ``_drain_messages`` as already
  read (``offset < _read_offset``, the drain loop having gone on past them).

The dropped events are committed through the gap: lost for good (or, without a gap, the
partition's commits stop at the first of them until the next rebalance re-delivers everything
since). Measured with offset traces of both workers (``tests/integration/streams/
test_rebalance.py``, see :mod:`heimdall.streams.batching`): every lost event was fetched
during the ``perform_seek`` after an assignment and never reached a batch.

This consumer keeps the stream partitions that Faust resumes paused (changelog partitions go
on) until a ``perform_seek`` has completed and the flow is resumed, which happens right after
the queues are cleared: the first event of a stream partition an agent sees after a rebalance
is the one at the committed offset.

The transport is registered under the ``faust.transports`` entry point, Faust's own extension
mechanism.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import aiokafka
from faust.transport.consumer import ensure_TPset
from faust.transport.drivers import aiokafka as driver
from faust.types import TP


class ConsumerThread(driver.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = int(getattr(self.app, "heimdall_fetch_max_wait_ms", 100))
        return consumer


class Consumer(driver.Consumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: stream partitions Faust asked to resume, kept paused until the seek is done
        self._held_partitions: set[TP] = set()
        #: whether a ``perform_seek`` completed since partitions were held
        self._seeked = False

    def _new_consumer_thread(self) -> driver.AIOKafkaConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def resume_partitions(self, tps: Iterable[TP]) -> None:
        """Resume changelog partitions now, stream partitions once they are sought
        (:meth:`resume_flow` after :meth:`perform_seek`)."""
        tpset = ensure_TPset(tps)
        stream = {tp for tp in tpset if not self._is_changelog_tp(tp)}
        if stream:
            self._held_partitions |= stream
            self._seeked = False
        super().resume_partitions(tpset - stream)

    async def perform_seek(self) -> None:
        """Seek every partition to its committed offset (Faust's), noting that held
        partitions may now be resumed."""
        seeking_held = bool(self._held_partitions)
        await super().perform_seek()
        self._seeked = seeking_held

    def resume_flow(self) -> None:
        """Resume the flow and, once sought, the held stream partitions.

        Faust resumes the flow right after ``flow_control.resume()`` cleared the agents'
        queues, with no await in between: nothing fetched before the seek can reach an agent.
        """
        super().resume_flow()
        if self._seeked and self._held_partitions:
            held, self._held_partitions = self._held_partitions, set()
            self._seeked = False
            super().resume_partitions(held & self.assignment())

    def pause_partitions(self, tps: Iterable[TP]) -> None:
        """Pause, held and buffered partitions included (Faust's ``getmany`` lets the records
        in hand of a partition whose agent queue was full through even if it was paused)."""
        tpset = ensure_TPset(tps)
        self._held_partitions -= tpset
        self._buffered_partitions.difference_update(tpset)
        super().pause_partitions(tpset)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Finish and commit what was taken before Faust forgets the revoked partitions."""
        app = self.app
        if not app.should_stop:
            assignment = self.assignment()
            if assignment:
                # fetch nothing more, but let what was fetched reach the agents: suspending the
                # flow here blocks an agent that waits for its next event with a batch half
                # taken, whose events then never get acked (a rebalance that never ended)
                self.pause_partitions(assignment)
                await self.wait_empty()  # what is queued is processed, acked and committed
        await super().on_partitions_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TP], generation_id: int = 0) -> None:
        """A new assignment: whatever was held belongs to the previous one."""
        self._held_partitions.clear()
        self._seeked = False
        await super().on_partitions_assigned(assigned, generation_id)


class Transport(driver.Transport):
    Consumer: ClassVar[Any] = Consumer
