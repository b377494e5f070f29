"""`heimdall replay` times: ISO 8601 (UTC unless a zone), now, -15m, seconds since the epoch."""

from __future__ import annotations

import pytest

from heimdall.consumers.replay import parse_time_ns
from heimdall.core.errors import ConfigError

NOW = 1_796_371_200_123_456_789  # 2026-12-04T08:00:00.123456789Z


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-12-04T08:00:00Z", 1_796_371_200 * 10**9),
        ("2026-12-04T08:00:00", 1_796_371_200 * 10**9),  # no zone: UTC
        ("2026-12-04 09:00:00+01:00", 1_796_371_200 * 10**9),
        ("2026-12-04T08:00:00.25Z", 1_796_371_200_250_000_000),
        ("2026-12-04", 1_796_342_400 * 10**9),
        ("now", NOW),
        ("-15m", NOW - 900 * 10**9),
        ("-2h", NOW - 7200 * 10**9),
        ("-1.5s", NOW - 1_500_000_000),
        ("-1d", NOW - 86400 * 10**9),
        ("1796371200", 1_796_371_200 * 10**9),
        ("1796371200.000000001", 1_796_371_200 * 10**9 + 1),
    ],
)
def test_times(text: str, want: int) -> None:
    assert parse_time_ns(text, now_ns=NOW) == want


def test_bad_time_is_one_line_naming_it() -> None:
    with pytest.raises(ConfigError, match="time 'yesterday': expected ISO 8601"):
        parse_time_ns("yesterday", now_ns=NOW)
