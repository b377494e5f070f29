"""Kafka client construction shared by producers, consumers and the runtime (confluent-kafka)."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from heimdall.core.errors import ConfigError
from heimdall.core.settings import HeimdallSettings

#: librdkafka's own log lines (connection failures, session timeouts) go to Python logging
#: instead of straight to stderr: ``heimdall up`` writes them to its log file, where a
#: broker that went away no longer floods the terminal with one line per retry.
LIBRDKAFKA_LOG = logging.getLogger("heimdall.kafka.librdkafka")


def bootstrap(settings: HeimdallSettings) -> str:
    """The bootstrap servers; in embedded mode the runtime exports them before starting stages."""
    if not settings.kafka.bootstrap_servers:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: start the embedded runtime with `heimdall up` "
            "or point it at a Kafka cluster"
        )
    return settings.kafka.bootstrap_servers


#: How long a produced event may wait for the broker before its delivery fails (librdkafka
#: ``message.timeout.ms``): a broker outage shorter than this loses nothing, the producer
#: resends when the broker is back (tests/integration/producers/test_broker_outage.py).
DELIVERY_TIMEOUT_MS = 120_000

#: The producer's buffer bound (``queue.buffering.max.kbytes``, ``…max.messages``): 128 MiB
#: hold ~90 s of the seed network's ~1.4 MB/s, i.e. a 30 s outage with room to spare; when
#: it is full ``produce`` raises ``BufferError`` and the caller waits (backpressure, logged
#: by :class:`heimdall.producers.publisher.Publisher`), it never drops an event.
BUFFER_MAX_KBYTES = 128 * 1024
BUFFER_MAX_MESSAGES = 200_000


def producer(settings: HeimdallSettings, **overrides: Any) -> Producer:
    """An idempotent producer with a bounded buffer that outlasts a broker outage.

    ``enable.idempotence`` (librdkafka: ``acks=all``, retries without reordering, producer id
    and sequence numbers) makes a resend after a lost acknowledgement land once; Tansu 0.6
    grants the producer id (``InitProducerId``) and a 30 s outage was survived with every chunk
    delivered exactly once (README "Outages"). Compression as configured, a 5 ms linger for
    low latency; buffer and delivery timeout: :data:`BUFFER_MAX_KBYTES`,
    :data:`DELIVERY_TIMEOUT_MS`.
    """
    conf = settings.kafka.client_config(bootstrap(settings))
    conf.update(
        {
            "logger": LIBRDKAFKA_LOG,
            "enable.idempotence": True,
            "compression.type": settings.kafka.compression_type,
            "linger.ms": 5,
            "message.max.bytes": 8 * 1024 * 1024,
            "message.timeout.ms": DELIVERY_TIMEOUT_MS,
            "queue.buffering.max.kbytes": BUFFER_MAX_KBYTES,
            "queue.buffering.max.messages": BUFFER_MAX_MESSAGES,
        }
    )
    conf.update(overrides)
    return Producer(conf)


def consumer(settings: HeimdallSettings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer that commits only when told to (sinks commit after their write)."""
    conf = settings.kafka.client_config(bootstrap(settings))
    conf.update(
        {
            "logger": LIBRDKAFKA_LOG,
            "group.id": group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": settings.kafka.session_timeout_ms,
            "heartbeat.interval.ms": max(500, settings.kafka.session_timeout_ms // 6),
            "fetch.max.bytes": 16 * 1024 * 1024,
            "fetch.wait.max.ms": settings.kafka.fetch_max_wait_ms,
        }
    )
    conf.update(overrides)
    return Consumer(conf)


def admin(settings: HeimdallSettings) -> AdminClient:
    conf = settings.kafka.client_config(bootstrap(settings))
    conf["logger"] = LIBRDKAFKA_LOG
    return AdminClient(conf)
