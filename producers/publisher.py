"""The common publisher: Avro-encode domain events and produce them with backpressure.

Every adapter publishes through this class. The Kafka message key is the event's natural key
(receiver id, source id, ...), the message timestamp is the event time, and a full local
queue is not an error but backpressure: ``publish`` serves delivery callbacks until there is
room again, so an adapter that outruns the broker slows down instead of growing memory.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, Message, Producer

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.serde import Serde

log = logging.getLogger(__name__)


@dataclass
class PublisherStats:
    sent: dict[str, int] = field(default_factory=dict)
    delivered: int = 0
    failed: int = 0
    bytes: int = 0
    backpressure_waits: int = 0


class Publisher:
    """Encode and produce events to Kafka.

    Parameters
    ----------
    settings
        Where the broker is (``settings.kafka``) and which registry to use.
    serde
        The encoder; one is made from the settings when not given.
    producer
        An existing confluent-kafka producer (tests); one is made when not given.
    """

    def __init__(
        self,
        settings: HeimdallSettings,
        serde: Serde | None = None,
        producer: Producer | None = None,
    ) -> None:
        self.settings = settings
        self.serde = serde or Serde.from_settings(settings)
        self.producer = producer or kafka.producer(settings)
        self.stats = PublisherStats()

    def _on_delivery(self, err: KafkaError | None, msg: Message) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            log.error("delivery to %s failed: %s", msg.topic(), err)

    def publish(self, topic: str, key: str, event: Any, t_ns: int | None = None) -> None:
        """Encode ``event`` and produce it to ``topic`` under ``key``."""
        value = self.serde.encode(event)
        ts_ms = int(t_ns // 1_000_000) if t_ns is not None else None
        self.publish_raw(topic, key.encode(), value, ts_ms)

    def publish_raw(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        kwargs: dict[str, Any] = {"key": key, "value": value, "on_delivery": self._on_delivery}
        if timestamp_ms is not None:
            kwargs["timestamp"] = timestamp_ms
        if headers:
            kwargs["headers"] = headers
        while True:
            try:
                self.producer.produce(topic, **kwargs)
                break
            except BufferError:
                if not self.stats.backpressure_waits % 200:  # once at first, then every ~10 s
                    log.warning(
                        "producer buffer full (%d events waiting for the broker): "
                        "publishing waits until deliveries drain it", len(self.producer),
                    )  # fmt: skip
                self.stats.backpressure_waits += 1
                self.producer.poll(0.05)
        self.producer.poll(0)
        self.stats.sent[topic] = self.stats.sent.get(topic, 0) + 1
        self.stats.bytes += len(value)

    def flush(self, timeout_s: float = 30.0) -> int:
        """Wait for outstanding deliveries; return how many are still undelivered."""
        return int(self.producer.flush(timeout_s))
