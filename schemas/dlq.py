"""The dead-letter contract (topic ``rf.dlq.v1``): the rejected bytes untouched, the why in headers.

Every stage that refuses an event publishes its original key and value unchanged, with these
UTF-8 headers, so that nothing is dropped silently and an operator can replay it after a fix.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

REASON = "heimdall.dlq.reason"
TOPIC = "heimdall.dlq.topic"
PARTITION = "heimdall.dlq.partition"
OFFSET = "heimdall.dlq.offset"
STAGE = "heimdall.dlq.stage"
TS_NS = "heimdall.dlq.ts_ns"


def dlq_headers(
    reason: str, *, topic: str, partition: int, offset: int, stage: str
) -> list[tuple[str, bytes]]:
    """Headers for a dead letter; the reason is cut to one line of at most 500 characters."""
    one_line = " ".join(reason.split())[:500]
    return [
        (REASON, one_line.encode()),
        (TOPIC, topic.encode()),
        (PARTITION, str(partition).encode()),
        (OFFSET, str(offset).encode()),
        (STAGE, stage.encode()),
        (TS_NS, str(time.time_ns()).encode()),
    ]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter read back: the original bytes and why they were refused."""

    key: bytes | None
    value: bytes | None
    reason: str
    topic: str
    partition: int
    offset: int
    stage: str

    @classmethod
    def from_message(
        cls,
        key: bytes | None,
        value: bytes | None,
        headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None,
    ) -> DeadLetter:
        items = headers.items() if isinstance(headers, Mapping) else (headers or [])
        h = {k: (v or b"").decode(errors="replace") for k, v in items}
        return cls(
            key=key,
            value=value,
            reason=h.get(REASON, "?"),
            topic=h.get(TOPIC, "?"),
            partition=int(h.get(PARTITION, "-1") or -1),
            offset=int(h.get(OFFSET, "-1") or -1),
            stage=h.get(STAGE, "?"),
        )
