"""GPS time ↔ UTC: the GPS epoch, weeks, and the table of leap seconds.

GPS time started at 1980-01-06T00:00:00 UTC and has no leap seconds; UTC has had 18 inserted
since then, so GPS − UTC = 18 s since 2017-01-01 (the last leap second so far, announced by
IERS Bulletin C; none is scheduled). A GPS receiver stamps time as (week, seconds of week).

All instants here are integer nanoseconds: ``utc_ns`` since the Unix epoch (UTC, without leap
seconds, as everywhere in Heimdall) and ``gps_ns`` since the GPS epoch.
"""

from __future__ import annotations

import calendar
from bisect import bisect_right

import numpy as np
import numpy.typing as npt

__all__ = [
    "GPS_EPOCH_UTC_NS",
    "NS_PER_S",
    "SECONDS_PER_WEEK",
    "gps_ns_to_utc_ns",
    "gps_ns_to_utc_ns_array",
    "gps_utc_offset_s",
    "gps_week_and_seconds",
    "gps_week_to_utc_ns",
    "utc_ns_to_gps_ns",
]

NS_PER_S = 1_000_000_000
SECONDS_PER_WEEK = 604_800
#: 1980-01-06T00:00:00Z in ns since the Unix epoch.
GPS_EPOCH_UTC_NS = 315_964_800 * NS_PER_S


def _utc(y: int, m: int, d: int) -> int:
    return calendar.timegm((y, m, d, 0, 0, 0, 0, 0, 0)) * NS_PER_S


#: (UTC instant from which it holds, GPS − UTC in s). Each row starts at the midnight that
#: follows an inserted leap second 23:59:60.
LEAP_SECONDS: tuple[tuple[int, int], ...] = (
    (_utc(1980, 1, 6), 0),
    (_utc(1981, 7, 1), 1),
    (_utc(1982, 7, 1), 2),
    (_utc(1983, 7, 1), 3),
    (_utc(1985, 7, 1), 4),
    (_utc(1988, 1, 1), 5),
    (_utc(1990, 1, 1), 6),
    (_utc(1991, 1, 1), 7),
    (_utc(1992, 7, 1), 8),
    (_utc(1993, 7, 1), 9),
    (_utc(1994, 7, 1), 10),
    (_utc(1996, 1, 1), 11),
    (_utc(1997, 7, 1), 12),
    (_utc(1999, 1, 1), 13),
    (_utc(2006, 1, 1), 14),
    (_utc(2009, 1, 1), 15),
    (_utc(2012, 7, 1), 16),
    (_utc(2015, 7, 1), 17),
    (_utc(2017, 1, 1), 18),
)
_UTC_STARTS = [t for t, _ in LEAP_SECONDS]
# the same switch instants on the GPS scale (ns since the GPS epoch)
_GPS_STARTS = [t - GPS_EPOCH_UTC_NS + off * NS_PER_S for t, off in LEAP_SECONDS]


def gps_utc_offset_s(utc_ns: int) -> int:
    """GPS − UTC in whole seconds at the UTC instant ``utc_ns`` (0 before 1980-01-06)."""
    i = bisect_right(_UTC_STARTS, utc_ns) - 1
    return LEAP_SECONDS[i][1] if i >= 0 else 0


def utc_ns_to_gps_ns(utc_ns: int) -> int:
    """UTC (ns since the Unix epoch) → GPS time (ns since the GPS epoch)."""
    return utc_ns - GPS_EPOCH_UTC_NS + gps_utc_offset_s(utc_ns) * NS_PER_S


def gps_ns_to_utc_ns(gps_ns: int) -> int:
    """GPS time (ns since the GPS epoch) → UTC (ns since the Unix epoch).

    An instant inside an inserted leap second (23:59:60.x UTC, which Unix time cannot name)
    maps onto the following second 00:00:00.x.
    """
    i = bisect_right(_GPS_STARTS, gps_ns) - 1
    off = LEAP_SECONDS[i][1] if i >= 0 else 0
    return gps_ns + GPS_EPOCH_UTC_NS - off * NS_PER_S


def gps_ns_to_utc_ns_array(gps_ns: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """:func:`gps_ns_to_utc_ns` of every element of an int64 array."""
    g = np.asarray(gps_ns, dtype=np.int64)
    i = np.searchsorted(np.asarray(_GPS_STARTS, dtype=np.int64), g, side="right") - 1
    offsets = np.asarray([off for _, off in LEAP_SECONDS], dtype=np.int64)
    off = np.where(i >= 0, offsets[np.clip(i, 0, None)], 0).astype(np.int64)
    out: npt.NDArray[np.int64] = g + np.int64(GPS_EPOCH_UTC_NS) - off * np.int64(NS_PER_S)
    return out


def gps_week_and_seconds(utc_ns: int) -> tuple[int, float]:
    """The GPS week number (not rolled over at 1024) and seconds of week of a UTC instant."""
    gps_ns = utc_ns_to_gps_ns(utc_ns)
    week, rest_ns = divmod(gps_ns, SECONDS_PER_WEEK * NS_PER_S)
    return int(week), rest_ns / NS_PER_S


def gps_week_to_utc_ns(week: int, seconds_of_week: float = 0.0) -> int:
    """UTC ns since the Unix epoch of GPS ``week`` + ``seconds_of_week`` (rounded to 1 ns).

    ``seconds_of_week`` may lie outside [0, 604800) (a recording that crosses the end of a
    week keeps counting in the week it started in).
    """
    gps_ns = week * SECONDS_PER_WEEK * NS_PER_S + round(seconds_of_week * NS_PER_S)
    return gps_ns_to_utc_ns(gps_ns)
