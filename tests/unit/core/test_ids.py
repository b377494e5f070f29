"""UUIDv7 layout (RFC 9562 §5.7) and monotonicity."""

from __future__ import annotations

from heimdall.core.ids import uuid7


def test_layout() -> None:
    u = uuid7(unix_ms=1_700_000_000_123)
    assert u.version == 7
    assert u.variant == "specified in RFC 4122"
    assert u.int >> 80 == 1_700_000_000_123


def test_monotonic_within_a_millisecond() -> None:
    ids = [uuid7(unix_ms=1_800_000_000_000 + 10_000) for _ in range(4096)]  # the 12-bit counter
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
