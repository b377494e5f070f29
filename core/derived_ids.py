"""Deterministic event ids: the same source event always yields the same output id.

A stage that replays its input after a crash (at-least-once delivery: the batch processed but
not committed is processed again) must not produce a *new* result. If the output's id is a
function of what it was computed from, the replayed output carries the id of the first one,
and the history tables (ReplacingMergeTree ordered by ``(…, event_id)``, see
``infra/clickhouse/schema.sql``) keep one row for both.

Layout (RFC 9562 §5.8, UUIDv8, laid out like a UUIDv7 so ids still sort by time)::

    bits 127..80  48-bit Unix milliseconds of the event time (the caller's ``t_ns // 10**6``)
    bits  79..76  version 8
    bits  75..64  12 bits of H
    bits  63..62  variant 0b10
    bits  61..0   62 bits of H

where ``H = SHA-256(namespace || 0x1f || part_1 || 0x1f || … || part_k)`` (parts as UTF-8
strings; 0x1f, the unit separator, cannot occur in the ids and keys that are hashed). With 74
hash bits, two different sources in the same millisecond collide with probability
``≈ n² / 2^75`` for ``n`` events in that millisecond (birthday bound): ``< 10^-16`` for
``n = 1000``.

References
----------
RFC 9562, "Universally Unique IDentifiers (UUIDs)", §5.7 (UUIDv7) and §5.8 (UUIDv8).
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["derived_event_id"]

_SEP = b"\x1f"


def derived_event_id(namespace: str, t_ns: int, *parts: str | int) -> str:
    """The UUIDv8 of ``(namespace, *parts)`` at event time ``t_ns`` (see the module doc).

    Parameters
    ----------
    namespace
        What kind of result the id names (``"measurement"``, ``"observation"``, …): the same
        source gives different ids to different kinds of result.
    t_ns
        Event time in Unix nanoseconds; its milliseconds lead the id (time order).
    parts
        What the result is a function of: the source event id, a channel and window, a method.

    Returns
    -------
    str
        The canonical UUID string.
    """
    if not parts:
        raise ValueError("derived_event_id: at least one part is needed to name the source")
    ms = int(t_ns) // 1_000_000
    if not 0 <= ms < 1 << 48:
        raise ValueError(f"derived_event_id: t_ns={t_ns} is outside the 48-bit millisecond range")
    h = hashlib.sha256(_SEP.join([namespace.encode(), *(str(p).encode() for p in parts)])).digest()
    rnd = int.from_bytes(h[:10], "big")  # 80 bits, of which 74 are used
    value = ms << 80
    value |= 0x8 << 76
    value |= ((rnd >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rnd & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))
