"""Live view of a running pipeline: events per topic, localizations and their error.

The monitor is itself a downstream subscriber: it reads ``rf.localizations`` and ``rf.truth``
with a consumer group of its own and asks the broker for each topic's high watermarks.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
from confluent_kafka import TopicPartition

from heimdall.core import kafka
from heimdall.core.geodesy import distance_m
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.models import Localization, Truth
from heimdall.schemas.serde import Serde


@dataclass
class LiveStats:
    started_monotonic: float = field(default_factory=time.monotonic)
    first_localization_s: float | None = None
    localizations: int = 0
    errors_m: list[float] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)
    last: Localization | None = None
    last_error_m: float | None = None
    topic_counts: dict[str, int] = field(default_factory=dict)

    def median_error_m(self) -> float | None:
        return float(np.median(self.errors_m)) if self.errors_m else None


class Monitor:
    """Follows the pipeline from a background thread; read :attr:`stats` at any time."""

    def __init__(self, settings: HeimdallSettings, serde: Serde) -> None:
        self.settings = settings
        self.serde = serde
        self.stats = LiveStats()
        self._truth: dict[str, Truth] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heimdall-monitor", daemon=True)

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        t = self.settings.topics
        c = kafka.consumer(self.settings, f"heimdall-monitor-{new_event_id()}")
        c.subscribe([t.truth, t.localizations])
        next_counts = 0.0
        try:
            while not self._stop.is_set():
                for msg in c.consume(500, timeout=0.2):
                    if msg.error() or msg.value() is None:
                        continue
                    self._on_message(msg.topic(), msg.value())
                if time.monotonic() >= next_counts:
                    self.stats.topic_counts = topic_counts(c, t.all())
                    next_counts = time.monotonic() + 1.0
        finally:
            c.close()

    def _on_message(self, topic: str, value: bytes) -> None:
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
                s.errors_m.append(err)
                s.last_error_m = err


def topic_counts(consumer: object, topics: list[str]) -> dict[str, int]:
    """Events in each topic: the sum over partitions of high minus low watermark."""
    counts: dict[str, int] = {}
    md = consumer.list_topics(timeout=5)  # type: ignore[attr-defined]
    for name in topics:
        meta = md.topics.get(name)
        if meta is None or meta.error is not None:
            continue
        total = 0
        for p in meta.partitions:
            lo, hi = consumer.get_watermark_offsets(  # type: ignore[attr-defined]
                TopicPartition(name, p), timeout=5, cached=False
            )
            total += max(hi - lo, 0)
        counts[name] = total
    return counts
