"""``heimdall tail TOPIC``: print decoded events as JSON lines.

The smallest downstream subscriber: a consumer group of its own (so it never steals
partitions from a real consumer), Avro decoded with the same serde as every stage, one JSON
object per line on stdout. Raw IQ samples are shown by their size, not their bytes; dead
letters show their reason and origin and the rejected bytes in base64.
"""

from __future__ import annotations

import base64
import json
import time
from typing import Any, TextIO

from heimdall.core import kafka
from heimdall.core.errors import SchemaError
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.serde import Serde


def resolve_topic(settings: HeimdallSettings, topic: str) -> str:
    """A role name (``localizations``) becomes the configured topic name."""
    roles = settings.topics.model_dump()
    return roles.get(topic, topic)


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def format_event(
    serde: Serde, topic: str, key: bytes | None, value: bytes | None, headers: Any, dlq_topic: str
) -> dict[str, Any]:
    """One consumed message as a JSON-able dict: ``{"topic", "key", "schema", "value"}``."""
    out: dict[str, Any] = {"topic": topic, "key": key.decode(errors="replace") if key else None}
    if topic == dlq_topic:
        d = DeadLetter.from_message(key, value, headers)
        out["dead_letter"] = {
            "reason": d.reason,
            "topic": d.topic,
            "partition": d.partition,
            "offset": d.offset,
            "stage": d.stage,
            "value_b64": base64.b64encode(value or b"").decode(),
        }
        return out
    try:
        schema, wire = serde.decode_dict(value or b"")
        out["schema"] = schema
        out["value"] = _jsonable(wire)
    except SchemaError as exc:
        out["error"] = str(exc)
    return out


def tail_topic(
    settings: HeimdallSettings,
    topic: str,
    *,
    from_beginning: bool = False,
    max_events: int | None = None,
    timeout_s: float | None = None,
    out: TextIO,
) -> int:
    """Follow ``topic`` and write JSON lines to ``out``; return how many were written."""
    name = resolve_topic(settings, topic)
    serde = Serde.from_settings(settings)
    c = kafka.consumer(
        settings,
        f"heimdall-tail-{new_event_id()}",
        **{"auto.offset.reset": "earliest" if from_beginning else "latest"},
    )
    c.subscribe([name])
    n = 0
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    try:
        while (max_events is None or n < max_events) and (
            deadline is None or time.monotonic() < deadline
        ):
            msg = c.poll(0.2)
            if msg is None or msg.error():
                continue
            event = format_event(
                serde, str(msg.topic()), msg.key(), msg.value(), msg.headers(), settings.topics.dlq
            )
            out.write(json.dumps(event, default=str) + "\n")
            out.flush()
            n += 1
    except KeyboardInterrupt:
        pass
    finally:
        c.close()
    return n
