"""The Kafka side of the adapters: one thread that drains every adapter's buffer to Kafka.

The adapters run on an asyncio loop and put finished chunks in their bounded
:class:`~heimdall.producers.adapters.base.ChunkBuffer`; :class:`KafkaPump` takes them out on
its own thread, Avro-encodes them and produces them with the common
:class:`~heimdall.producers.publisher.Publisher`. Everything that may block or burn CPU in
bursts — encoding, ``produce`` waiting for room in librdkafka's queue (backpressure),
serving delivery callbacks — happens here, never on the loop that reads the sockets. When
Kafka is slower than the receivers the buffers fill and drop their oldest chunks (counted
per receiver); the loop never waits.

The thread sleeps on an event that ``wake()`` sets (every chunk, every status) and otherwise
wakes every ``idle_s`` to serve delivery callbacks (``poll(0)``): no busy loop. Woken by a
chunk, it lingers ``linger_s`` (20 ms) first so that one pass publishes what many adapters
finished meanwhile (and librdkafka batches it) instead of one thread switch per chunk.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Protocol

from heimdall.core.errors import HeimdallError
from heimdall.core.settings import TopicNames
from heimdall.producers.adapters.base import ChunkBuffer, ReceiverAdapter
from heimdall.schemas.models import (
    AudioChunk,
    IqChunk,
    Measurement,
    ReceiverStatus,
    WaterfallRow,
)

__all__ = ["ROUTES", "EventPublisher", "KafkaPump", "PumpStats"]

log = logging.getLogger(__name__)

#: Event type in an adapter's buffer -> topic role (a field of ``TopicNames``) it goes to:
#: IQ to rf.iq; what the web receivers give instead of IQ (channel measurements, waterfall
#: rows, demodulated audio) to rf.features, rf.waterfall and rf.audio.
ROUTES: dict[type, str] = {
    IqChunk: "iq",
    Measurement: "features",
    WaterfallRow: "waterfall",
    AudioChunk: "audio",
}


class EventPublisher(Protocol):
    """What the pump needs of :class:`~heimdall.producers.publisher.Publisher`."""

    producer: Any  # has poll(timeout)

    def publish(self, topic: str, key: str, event: Any, t_ns: int | None = None) -> None: ...

    def flush(self, timeout_s: float = 30.0) -> int: ...


@dataclass
class PumpStats:
    """Counts of what the pump published (events handed to the producer)."""

    chunks: int = 0
    statuses: int = 0
    failed: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)


class KafkaPump:
    """Move chunks and statuses from the adapters to Kafka on one thread.

    Parameters
    ----------
    publisher : EventPublisher
        The publisher (one producer for all adapters of the process).
    topics : TopicNames
        Each buffered event goes to the topic of its type (:data:`ROUTES`: IQ chunks to
        ``topics.iq``, measurements to ``topics.features``, waterfall rows to
        ``topics.waterfall``, audio to ``topics.audio``), statuses to ``topics.receivers``.
    idle_s : float
        Longest sleep between two ``poll(0)`` calls when nothing arrives, s.
    batch : int
        Chunks taken from one buffer before moving to the next (fairness).
    linger_s : float
        After a wake-up, wait this long before draining, s, so that the chunks the loop
        finishes around the same time (50 adapters emit ~250 chunks/s) are published in one
        pass rather than one thread switch each; it adds at most this much latency. 0 = drain
        at once. Statuses and :meth:`stop` do not wait.
    """

    def __init__(
        self,
        publisher: EventPublisher,
        topics: TopicNames,
        *,
        idle_s: float = 0.1,
        batch: int = 8,
        linger_s: float = 0.02,
    ) -> None:
        self.publisher = publisher
        self.topics = topics
        self.idle_s = idle_s
        self.batch = batch
        self.linger_s = linger_s
        self.stats = PumpStats()
        self._routes = {kind: getattr(topics, role) for kind, role in ROUTES.items()}
        self._buffers: list[tuple[str, ChunkBuffer]] = []
        self._statuses: deque[ReceiverStatus] = deque()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._undelivered = 0
        self._flush_timeout_s = 30.0

    def attach(self, adapter: ReceiverAdapter) -> None:
        """Drain ``adapter``'s buffer and publish its statuses (call before :meth:`start`)."""
        self._buffers.append((adapter.info.receiver_id, adapter.buffer))
        adapter.on_chunk = self.wake
        adapter.on_status = self.put_status

    def put_status(self, status: ReceiverStatus) -> None:
        """Queue a status for the receivers topic (thread-safe; statuses are never dropped)."""
        self._statuses.append(status)
        self._wake.set()

    def wake(self) -> None:
        """Tell the thread that there is something to publish (thread-safe)."""
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the pump is already started")
        self._thread = threading.Thread(target=self._run, name="heimdall-adapter-pump")
        self._thread.start()

    def stop(self, flush_timeout_s: float = 30.0) -> int:
        """Publish what is left, flush, stop the thread; return the undelivered count."""
        self._flush_timeout_s = flush_timeout_s
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        return self._undelivered

    # ------------------------------------------------------------------ thread

    def _publish(self, topic: str, key: str, event: Any, t_ns: int) -> bool:
        try:
            self.publisher.publish(topic, key, event, t_ns)
            return True
        except (HeimdallError, ValueError, TypeError, BufferError, RuntimeError) as exc:
            self._fail(key, f"{type(exc).__name__}: {exc}", topic)
            return False

    def _fail(self, key: str, reason: str, topic: str = "?") -> None:
        """Count an event that could not be published (logged once per reason)."""
        self.stats.failed += 1
        n = self.stats.failure_reasons.get(reason, 0)
        self.stats.failure_reasons[reason] = n + 1
        if n == 0:
            log.error("could not publish to %s (key %s): %s", topic, key, reason)

    def _drain(self) -> int:
        """Publish everything queued, round-robin over the buffers; return the count."""
        moved = 0
        batch, routes, publish, stats = self.batch, self._routes, self._publish, self.stats
        while True:
            n = 0
            while self._statuses:
                status = self._statuses.popleft()
                n += 1
                if self._publish(
                    self.topics.receivers, status.receiver_id, status, status.updated_ns
                ):
                    self.stats.statuses += 1
            for receiver_id, buf in self._buffers:
                if not len(buf):  # most buffers are empty on most passes: no lock, no loop
                    continue
                for _ in range(batch):
                    event = buf.get()
                    if event is None:
                        break
                    n += 1
                    topic = routes.get(type(event))
                    if topic is None:
                        kind = type(event).__name__
                        self._fail(receiver_id, f"no topic for events of type {kind}")
                        continue
                    if publish(topic, receiver_id, event, event.t_ns):
                        stats.chunks += 1
            moved += n
            if n == 0:
                return moved

    def _run(self) -> None:
        producer = self.publisher.producer
        linger_s = self.linger_s
        try:
            while True:
                self._wake.clear()
                moved = self._drain()
                producer.poll(0)
                if moved == 0:
                    if self._stopping.is_set():
                        break
                    if (
                        self._wake.wait(self.idle_s)
                        and linger_s > 0
                        and not self._statuses
                        and not self._stopping.is_set()
                    ):
                        self._stopping.wait(linger_s)  # gather more chunks; stop() cuts it short
        finally:
            self._drain()
            self._undelivered = self.publisher.flush(self._flush_timeout_s)
            if self._undelivered:
                log.error("%d events were not delivered to Kafka", self._undelivered)
