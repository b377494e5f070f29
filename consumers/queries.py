"""Read helpers over the history tables (what the runtime summary prints).

Every read uses ``FINAL`` so that an event written twice (a replay, a crash between the
write and the commit) counts once. Table names are unqualified: they resolve in the
client's current database, which :func:`heimdall.core.store.open_clickhouse` sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.binding import quote_identifier

__all__ = [
    "HISTORY_TABLES",
    "NATURAL_KEYS",
    "LocalizationError",
    "count_rows",
    "duplicate_counts",
    "last_fixes",
    "localization_error_details",
    "localization_errors",
]

HISTORY_TABLES = ("features", "observations", "localizations", "truth")


#: What makes a row the same result twice: the source event it was computed from (a chunk
#: measured twice has two event ids but one chunk id), or the event id for truth. An
#: observation is its channel's window of one kind: an RSS window and a TDOA block (the one
#: with lags) that start together are two results.
NATURAL_KEYS = {
    "features": "chunk_id",
    "observations": "(channel_id, window_start_ns, notEmpty(`tdoa_pairs.tdoa_s`))",
    "localizations": "(observation_id, method)",
    "truth": "event_id",
}


def duplicate_counts(client: Any) -> dict[str, int]:
    """Rows per table that repeat another row's :data:`NATURAL_KEYS` (distinct events only)."""
    out = {}
    for table, key in NATURAL_KEYS.items():
        sql = f"SELECT count() - uniqExact({key}) FROM {quote_identifier(table)} FINAL"
        out[table] = int(client.query(sql).result_rows[0][0])
    return out


def last_fixes(client: Any) -> list[dict[str, Any]]:
    """The latest localization of every (channel, method): position and covariance."""
    rows = client.query(
        "SELECT channel_id, method, argMax(lat_deg, t_ns), argMax(lon_deg, t_ns), "
        "argMax(cov_ee_m2, t_ns), argMax(cov_en_m2, t_ns), argMax(cov_nn_m2, t_ns), max(t_ns) "
        "FROM localizations FINAL GROUP BY channel_id, method ORDER BY channel_id, method"
    ).result_rows
    keys = ("channel_id", "method", "lat", "lon", "cov_ee_m2", "cov_en_m2", "cov_nn_m2", "t_ns")
    return [
        dict(zip(keys, (str(r[0]), str(r[1]), *map(float, r[2:7]), int(r[7])), strict=True))
        for r in rows
    ]


def count_rows(client: Any, table: str) -> int:
    """Distinct events in ``table`` (``SELECT count() FROM table FINAL``)."""
    if table not in HISTORY_TABLES:
        raise ValueError(f"unknown table {table!r}: one of {', '.join(HISTORY_TABLES)}")
    result = client.query(f"SELECT count() FROM {quote_identifier(table)} FINAL")
    return int(result.result_rows[0][0])


@dataclass(frozen=True, slots=True)
class LocalizationError:
    """One localization against the truth of its channel nearest to it in time."""

    event_id: str
    channel_id: str
    t_ns: int
    method: str
    source_id: str
    truth_t_ns: int
    dt_s: float
    error_m: float
    drms_m: float


# The nearest truth in time is the closer of the latest truth at or before the localization
# and the earliest truth at or after it: two ASOF joins (a plain join would be channel x
# channel rows). geoDistance is on the WGS84 ellipsoid (ClickHouse's approximation).
_ERRORS_SQL = """
WITH
    loc AS (
        SELECT event_id, channel_id, t_ns, lat_deg, lon_deg, method, drms_m
        FROM localizations FINAL
    ),
    tr AS (
        SELECT assumeNotNull(channel_id) AS channel_id, t_ns, lat_deg, lon_deg, source_id
        FROM truth FINAL
        WHERE channel_id IS NOT NULL
    ),
    before AS (
        SELECT loc.event_id AS event_id, tr.t_ns AS t_ns, tr.lat_deg AS lat_deg,
               tr.lon_deg AS lon_deg, tr.source_id AS source_id
        FROM loc ASOF INNER JOIN tr ON loc.channel_id = tr.channel_id AND loc.t_ns >= tr.t_ns
    ),
    after AS (
        SELECT loc.event_id AS event_id, tr.t_ns AS t_ns, tr.lat_deg AS lat_deg,
               tr.lon_deg AS lon_deg, tr.source_id AS source_id
        FROM loc ASOF INNER JOIN tr ON loc.channel_id = tr.channel_id AND loc.t_ns <= tr.t_ns
    ),
    nearest AS (
        SELECT event_id, argMin(tuple(t_ns, lat_deg, lon_deg, source_id), abs(d)) AS m
        FROM (
            SELECT b.event_id AS event_id, b.t_ns AS t_ns, b.lat_deg AS lat_deg,
                   b.lon_deg AS lon_deg, b.source_id AS source_id,
                   toFloat64(l.t_ns) - toFloat64(b.t_ns) AS d
            FROM (SELECT * FROM before UNION ALL SELECT * FROM after) AS b
            INNER JOIN loc AS l ON l.event_id = b.event_id
        )
        GROUP BY event_id
    )
SELECT
    toString(loc.event_id) AS event_id,
    toString(loc.channel_id) AS channel_id,
    loc.t_ns AS t_ns,
    toString(loc.method) AS method,
    toString(nearest.m.4) AS source_id,
    nearest.m.1 AS truth_t_ns,
    (toFloat64(loc.t_ns) - toFloat64(nearest.m.1)) / 1e9 AS dt_s,
    geoDistance(loc.lon_deg, loc.lat_deg, nearest.m.3, nearest.m.2) AS error_m,
    loc.drms_m AS drms_m
FROM loc
INNER JOIN nearest ON loc.event_id = nearest.event_id
{where}
ORDER BY loc.t_ns, event_id
"""


def localization_errors(
    client: Any, *, max_dt_s: float | None = None, channel_id: str | None = None
) -> list[float]:
    """Horizontal error, metres, of every localization that has a truth on its channel.

    Each localization is paired with the truth of the same ``channel_id`` nearest to it in
    time; ``max_dt_s`` drops pairs further apart than that. Localizations of a channel with
    no truth are left out. In time order; :func:`localization_error_details` says which
    localization and which truth each value comes from.
    """
    details = localization_error_details(client, max_dt_s=max_dt_s, channel_id=channel_id)
    return [e.error_m for e in details]


def localization_error_details(
    client: Any, *, max_dt_s: float | None = None, channel_id: str | None = None
) -> list[LocalizationError]:
    """:func:`localization_errors` with the localization, the truth paired and their time gap."""
    conds: list[str] = []
    params: dict[str, Any] = {}
    if max_dt_s is not None:
        conds.append("abs(dt_s) <= {max_dt_s:Float64}")
        params["max_dt_s"] = float(max_dt_s)
    if channel_id is not None:
        conds.append("loc.channel_id = {channel_id:String}")
        params["channel_id"] = channel_id
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    result = client.query(_ERRORS_SQL.format(where=where), parameters=params)
    return [
        LocalizationError(
            event_id=r[0],
            channel_id=r[1],
            t_ns=int(r[2]),
            method=r[3],
            source_id=r[4],
            truth_t_ns=int(r[5]),
            dt_s=float(r[6]),
            error_m=float(r[7]),
            drms_m=float(r[8]),
        )
        for r in result.result_rows
    ]
