"""The topics of DESIGN.md, created with explicit partitions and configs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from heimdall.core.settings import HeimdallSettings

log = logging.getLogger(__name__)

HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions and broker configs."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def heimdall_topics(settings: HeimdallSettings) -> list[TopicSpec]:
    """Every topic of DESIGN.md with its configuration.

    Raw IQ is large (about 48 KB/s per receiver at 12 kHz ci16), so it is compressed and has
    a bounded retention; so are the web receivers' waterfall rows (4 bytes per bin: a
    1024-bin row 10 times a second is about 41 KB/s) and audio (24 KB/s at 12 kHz int16).
    Measurement topics keep a week; receivers and models are compacted.
    """
    t, p = settings.topics, settings.partitions
    week = str(7 * 24 * HOUR_MS)
    return [
        TopicSpec(
            t.iq,
            p,
            {
                "compression.type": "zstd",
                "retention.ms": str(HOUR_MS),
                "max.message.bytes": str(8 * 1024 * 1024),
            },
        ),
        TopicSpec(t.features, p, {"compression.type": "zstd", "retention.ms": week}),
        TopicSpec(t.observations, p, {"compression.type": "zstd", "retention.ms": week}),
        TopicSpec(t.localizations, p, {"compression.type": "zstd", "retention.ms": week}),
        TopicSpec(t.truth, p, {"compression.type": "zstd", "retention.ms": week}),
        TopicSpec(t.receivers, 1, {"cleanup.policy": "compact"}),
        TopicSpec(t.models, 1, {"cleanup.policy": "compact"}),
        TopicSpec(t.dlq, 1, {"retention.ms": week}),
        TopicSpec(
            t.waterfall,
            p,
            {
                "compression.type": "zstd",
                "retention.ms": str(HOUR_MS),
                "max.message.bytes": str(2 * 1024 * 1024),  # 65536 float32 bins = 256 KiB
            },
        ),
        TopicSpec(
            t.snippets,
            p,
            {
                "compression.type": "zstd",
                "retention.ms": str(HOUR_MS),
                "max.message.bytes": str(8 * 1024 * 1024),
            },
        ),
        TopicSpec(t.audio, p, {"compression.type": "zstd", "retention.ms": str(HOUR_MS)}),
    ]


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Idempotent."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    todo = [s for s in specs if s.name not in existing]
    if not todo:
        return []
    futures = admin.create_topics(
        [
            NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
            for s in todo
        ],
        operation_timeout=timeout_s,
    )
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout_s)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    log.info("created topics %s", created)
    return created
