"""GPS week time ↔ UTC and the leap-second table."""

from __future__ import annotations

import calendar

import numpy as np
import pytest

from heimdall.producers.recordings.gpstime import (
    GPS_EPOCH_UTC_NS,
    gps_ns_to_utc_ns,
    gps_ns_to_utc_ns_array,
    gps_utc_offset_s,
    gps_week_and_seconds,
    gps_week_to_utc_ns,
    utc_ns_to_gps_ns,
)

S = 1_000_000_000


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * S


def test_gps_epoch() -> None:
    assert utc(1980, 1, 6, 0, 0, 0) == GPS_EPOCH_UTC_NS
    assert utc_ns_to_gps_ns(GPS_EPOCH_UTC_NS) == 0
    assert gps_week_to_utc_ns(0) == GPS_EPOCH_UTC_NS


@pytest.mark.parametrize(
    ("when", "offset"),
    [
        ((1980, 1, 6, 0, 0, 0), 0),
        ((1981, 6, 30, 23, 59, 59), 0),
        ((1981, 7, 1, 0, 0, 0), 1),
        ((1999, 6, 1, 0, 0, 0), 13),
        ((2005, 12, 31, 23, 59, 59), 13),
        ((2006, 1, 1, 0, 0, 0), 14),
        ((2012, 6, 30, 12, 0, 0), 15),
        ((2015, 7, 1, 0, 0, 0), 17),
        ((2016, 12, 31, 23, 59, 59), 17),
        ((2017, 1, 1, 0, 0, 0), 18),
        ((2017, 11, 27, 10, 41, 56), 18),
        ((2026, 11, 1, 0, 0, 0), 18),
    ],
)
def test_leap_seconds(when: tuple[int, ...], offset: int) -> None:
    t = utc(*when)
    assert gps_utc_offset_s(t) == offset
    assert utc_ns_to_gps_ns(t) == t - GPS_EPOCH_UTC_NS + offset * S
    assert gps_ns_to_utc_ns(utc_ns_to_gps_ns(t)) == t


def test_dcf77_recording_week() -> None:
    """The KiwiSDR files' stamp 124934 s of week 1977 is their file-name time 10:41:56 UTC."""
    week, sow = gps_week_and_seconds(utc(2017, 11, 27, 10, 41, 56))
    assert (week, sow) == (1977, 124_934.0)
    assert gps_week_to_utc_ns(1977, 124_934.0) == utc(2017, 11, 27, 10, 41, 56)
    assert gps_week_to_utc_ns(1977) == utc(2017, 11, 25, 23, 59, 42)


def test_week_rollover_2019() -> None:
    """Week 2048 (the second 10-bit rollover) began 2019-04-07 00:00 GPS = 04-06 23:59:42 UTC."""
    assert gps_week_to_utc_ns(2048) == utc(2019, 4, 6, 23, 59, 42)
    assert gps_week_and_seconds(utc(2019, 4, 6, 23, 59, 42)) == (2048, 0.0)


def test_inside_a_leap_second() -> None:
    """GPS instants of 2016-12-31T23:59:60.x UTC map onto 2017-01-01T00:00:00.x."""
    new_year = utc(2017, 1, 1, 0, 0, 0)
    gps_at_new_year = new_year - GPS_EPOCH_UTC_NS + 18 * S
    assert gps_ns_to_utc_ns(gps_at_new_year) == new_year
    assert gps_ns_to_utc_ns(gps_at_new_year - S // 2) == new_year - S // 2 + S  # 23:59:60.5
    assert gps_ns_to_utc_ns(gps_at_new_year - S - 1) == new_year - 1  # 23:59:59.999999999


def test_array_matches_scalar() -> None:
    rng = np.random.default_rng(1)
    g = rng.integers(0, 1_500_000_000 * S, size=2000, dtype=np.int64)
    g = np.concatenate([g, [utc_ns_to_gps_ns(utc(2017, 1, 1, 0, 0, 0)) + d for d in (-1, 0, 1)]])
    out = gps_ns_to_utc_ns_array(g)
    assert out.dtype == np.int64
    assert out.tolist() == [gps_ns_to_utc_ns(int(x)) for x in g]
