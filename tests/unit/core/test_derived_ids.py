"""Deterministic event ids (heimdall.core.derived_ids): layout per RFC 9562 §5.8."""

from __future__ import annotations

import hashlib
import uuid

import pytest

from heimdall.core.derived_ids import derived_event_id

T_NS = 1_700_000_000_123_456_789


def test_same_source_same_id_and_layout() -> None:
    a = derived_event_id("measurement", T_NS, "0190-chunk")
    assert a == derived_event_id("measurement", T_NS, "0190-chunk")
    u = uuid.UUID(a)
    assert u.version == 8
    assert u.variant == uuid.RFC_4122
    assert u.int >> 80 == T_NS // 1_000_000  # time first: ids sort by event time
    # the 74 other bits are SHA-256's first bits, independently recomputed here
    h = int.from_bytes(hashlib.sha256(b"measurement\x1f0190-chunk").digest()[:10], "big")
    assert (u.int >> 64) & 0xFFF == (h >> 62) & 0xFFF
    assert u.int & ((1 << 62) - 1) == h & ((1 << 62) - 1)


def test_kind_and_parts_change_the_id() -> None:
    ids = {
        derived_event_id("measurement", T_NS, "c1"),
        derived_event_id("observation", T_NS, "c1"),
        derived_event_id("measurement", T_NS, "c2"),
        derived_event_id("measurement", T_NS, "c", "1"),  # the separator keeps parts apart
        derived_event_id("measurement", T_NS + 1_000_000, "c1"),
    }
    assert len(ids) == 5


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one part"):
        derived_event_id("measurement", T_NS)
    with pytest.raises(ValueError, match="t_ns=-1"):
        derived_event_id("measurement", -1, "c1")
