"""The topics of DESIGN.md, created with explicit partitions and configs."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from heimdall.core import kafka
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


#: Configs where a larger value on an existing topic is as good as the spec's (a bigger
#: message limit still admits every Heimdall event); every other config must match exactly.
_AT_LEAST = frozenset({"max.message.bytes"})


def topic_mismatches(
    admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 15.0
) -> list[str]:
    """One line per way an existing topic differs from its spec; missing topics too.

    A topic matches when it has at least ``spec.partitions`` partitions (more is an
    operator's scale-out, fewer leaves workers idle), each config of the spec has the same
    value (``max.message.bytes``: at least the spec's), as reported by DescribeConfigs.

    Returns
    -------
    list of str
        ``"<topic>: <what> is <actual>, expected <spec>"`` lines, or ``"<topic>: missing"``.
    """
    metadata = admin.list_topics(timeout=timeout_s).topics
    out: list[str] = []
    present = [s for s in specs if s.name in metadata]
    out += [f"{s.name}: missing" for s in specs if s.name not in metadata]
    for s in present:
        n = len(metadata[s.name].partitions)
        if n < s.partitions:
            out.append(f"{s.name}: partitions is {n}, expected at least {s.partitions}")
    if not present:
        return out
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, s.name) for s in present],
        request_timeout=timeout_s,
    )
    by_name = {s.name: s for s in present}
    for resource, fut in futures.items():
        spec = by_name[resource.name]
        try:
            actual = {k: v.value for k, v in fut.result(timeout=timeout_s).items()}
        except KafkaException as exc:
            out.append(f"{spec.name}: configs cannot be read ({exc.args[0].str()})")
            continue
        for key, want in spec.config.items():
            got = actual.get(key)
            if key in _AT_LEAST and got is not None and got.isdigit() and int(got) >= int(want):
                continue
            if got != want:
                bound = "at least " if key in _AT_LEAST else ""
                out.append(f"{spec.name}: {key} is {got or 'unset'}, expected {bound}{want}")
    return sorted(out)


def ensure_topics(
    admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 15.0, validate: bool = True
) -> list[str]:
    """Create the topics that do not exist yet; return the names created. Idempotent.

    With ``validate``, topics that already exist are checked (:func:`topic_mismatches`): each
    mismatch is logged as one warning line, not an error, so that a cluster whose operator
    chose e.g. a longer retention still runs; ``heimdall topics ensure`` makes them an error.
    """
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    todo = [s for s in specs if s.name not in existing]
    created = []
    if todo:
        futures = admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
                for s in todo
            ],
            operation_timeout=timeout_s,
        )
        for name, fut in futures.items():
            try:
                fut.result(timeout=timeout_s)
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        log.info("created topics %s", created)
    others = [s for s in specs if s.name not in created]
    if others and validate:
        for line in topic_mismatches(admin, others, timeout_s):
            log.warning("topic differs from Heimdall's spec: %s", line)
    return created


def ensure_stage_topics(settings: HeimdallSettings, timeout_s: float = 15.0) -> list[str]:
    """What every stage (worker, sink, archive, receivers) does at start: create the topics
    of :func:`heimdall_topics` that are missing and validate the others (warnings)."""
    return ensure_topics(kafka.admin(settings), heimdall_topics(settings), timeout_s)
