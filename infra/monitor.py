"""Live view of a running pipeline: events per topic, localizations and their error.

The monitor is itself a downstream subscriber: it reads ``rf.localizations`` and ``rf.truth``
with a consumer group of its own and asks the broker for each topic's high watermarks.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import Consumer, KafkaException, TopicPartition

from heimdall.core import kafka
from heimdall.core.geodesy import distance_m
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.models import Localization, Truth
from heimdall.schemas.serde import Serde

log = logging.getLogger(__name__)


@dataclass
class LiveStats:
    started_monotonic: float = field(default_factory=time.monotonic)
    first_localization_s: float | None = None
    localizations: int = 0
    errors_m: dict[str, list[float]] = field(default_factory=dict)  # by method
    latencies_s: list[float] = field(default_factory=list)
    last: Localization | None = None
    last_error_m: float | None = None
    topic_counts: dict[str, int] = field(default_factory=dict)

    def median_error_m(self) -> dict[str, float]:
        return {m: float(np.median(v)) for m, v in sorted(self.errors_m.items()) if v}


class Monitor:
    """Follows the pipeline from a background thread; read :attr:`stats` at any time."""

    def __init__(
        self, settings: HeimdallSettings, serde: Serde, started_monotonic: float | None = None
    ) -> None:
        self.settings = settings
        self.serde = serde
        self.stats = LiveStats()
        if started_monotonic is not None:  # count time to first localization from here
            self.stats.started_monotonic = started_monotonic
        self._truth: dict[str, Truth] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heimdall-monitor", daemon=True)

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to end and wait up to ``timeout_s`` for it (0: do not wait)."""
        self._stop.set()
        if timeout_s > 0 and self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def _run(self) -> None:
        t = self.settings.topics
        c = kafka.consumer(self.settings, f"heimdall-monitor-{new_event_id()}")
        c.subscribe([t.truth, t.localizations])
        counter = kafka.consumer(self.settings, f"heimdall-counter-{new_event_id()}")
        next_counts = 0.0
        try:
            while not self._stop.is_set():
                for msg in c.consume(500, timeout=0.2):
                    value = msg.value()
                    if msg.error() or value is None:
                        continue
                    self._on_message(value)
                if time.monotonic() >= next_counts:
                    try:
                        self.stats.topic_counts = topic_counts(counter, t.all())
                    except KafkaException as exc:  # the broker away: keep the last counts
                        log.warning("monitor: cannot count events: %s", exc)
                    next_counts = time.monotonic() + 2.0
        finally:
            c.close()
            counter.close()

    def _on_message(self, value: bytes) -> None:
        try:
            event = self.serde.decode(value)
        except Exception:
            return
        if isinstance(event, Truth) and event.channel_id:
            self._truth[event.channel_id] = event
        elif isinstance(event, Localization):
            s = self.stats
            if s.first_localization_s is None:
                s.first_localization_s = time.monotonic() - s.started_monotonic
            s.localizations += 1
            s.last = event
            s.latencies_s.append(event.processing_latency_s)
            truth = self._truth.get(event.channel_id)
            if truth is not None:
                p, q = event.position, truth.position
                err = float(distance_m((p.lat_deg, p.lon_deg, 0.0), (q.lat_deg, q.lon_deg, 0.0)))
                s.errors_m.setdefault(event.method, []).append(err)
                s.last_error_m = err


def topic_counts(consumer: Consumer, topics: list[str], timeout_s: float = 3.0) -> dict[str, int]:
    """Events in each topic: the sum over partitions of end offset minus low watermark.

    Tansu 0.6 reports a partition's high watermark as the base offset of its last record
    batch plus one, not the offset after its last record (measured: 40 records produced in
    one batch give a high watermark of 1). The end offset is therefore read from the last
    batch itself: fetch every partition from ``high - 1`` at once and take the last offset
    delivered, plus one. On a real Kafka the two agree. ``consumer`` must not be subscribed
    (it is assigned here).
    """
    md = consumer.list_topics(timeout=5)
    low: dict[tuple[str, int], int] = {}
    end: dict[tuple[str, int], int] = {}
    for name in topics:
        meta = md.topics.get(name)
        if meta is None or meta.error is not None:
            continue
        for p in meta.partitions:
            lo, hi = consumer.get_watermark_offsets(
                TopicPartition(name, p), timeout=5, cached=False
            )
            low[(name, p)], end[(name, p)] = lo, hi
    pending = {tp for tp, hi in end.items() if hi > 0}
    if pending:
        consumer.assign([TopicPartition(t, p, end[(t, p)] - 1) for t, p in pending])
        deadline = time.monotonic() + timeout_s
        tail_reads = 1  # once every partition answered, one more read for split batches
        while (pending or tail_reads) and time.monotonic() < deadline:
            if not pending:
                tail_reads -= 1
            for msg in consumer.consume(1000, timeout=0.1):
                if msg.error():
                    continue
                tp = (str(msg.topic()), int(msg.partition() or 0))
                end[tp] = max(end[tp], int(msg.offset() or 0) + 1)
                pending.discard(tp)
        consumer.unassign()
    counts: dict[str, int] = {}
    for (name, p), hi in end.items():
        counts[name] = counts.get(name, 0) + max(hi - low[(name, p)], 0)
    return {name: counts.get(name, 0) for name in topics if name in counts}
