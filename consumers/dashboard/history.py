"""Past periods for the replay slider, from the ClickHouse history tables.

The ring buffers of :class:`~heimdall.consumers.dashboard.state.DashboardState` hold the last
few thousand fixes; with a ClickHouse store the slider reaches every stored period. Rows are
read with ``FINAL`` (an event written twice counts once) and turned back into events, then
into the page's JSON by the same code as live events (a :class:`DashboardState` of their
own), so a replayed fix looks exactly like a live one: ellipses, truth, error.
"""

from __future__ import annotations

import threading
from typing import Any

from heimdall.consumers.dashboard.state import DashboardState, EllipseFn
from heimdall.schemas.models import Localization, Position, Truth

_LOC_COLUMNS = (
    "toString(event_id), toString(observation_id), channel_id, t_ns, lat_deg, lon_deg, alt_m, "
    "cov_ee_m2, cov_en_m2, cov_nn_m2, method, model_version, n_receivers, "
    "processing_latency_s, published_ns"
)
_TRUTH_COLUMNS = "toString(event_id), source_id, t_ns, lat_deg, lon_deg, alt_m, channel_id, freq_hz"


class StoreHistory:
    """Fixes and truth of ``[from_ns, to_ns]`` (event time) from a ClickHouse client.

    Parameters
    ----------
    client
        A ``clickhouse_connect`` client on Heimdall's database (the caller closes it).
    ellipse
        ``error_ellipse`` of ``heimdall.ml.estimators.ellipse`` (injected).
    limit
        Most fixes one request returns, earliest first (and four times as many truth
        positions: simulators report them more often than fixes come).
    truth_margin_s
        Truth positions this long before the period also count for the fixes' errors (a
        transmitter standing still is reported seldom).
    """

    def __init__(
        self, client: Any, ellipse: EllipseFn, limit: int = 5000, truth_margin_s: float = 300.0
    ) -> None:
        self.client = client
        self.ellipse = ellipse
        self.limit = limit
        self.truth_margin_ns = int(truth_margin_s * 1e9)
        self._lock = threading.Lock()  # one query at a time on the client

    def _rows(self, sql: str) -> list[Any]:
        with self._lock:
            return list(self.client.query(sql).result_rows)

    def extent_ns(self) -> tuple[int, int] | None:
        """Event times of the first and the last stored fix, or None when there is none."""
        (row,) = self._rows("SELECT count(), min(t_ns), max(t_ns) FROM localizations")
        return (int(row[1]), int(row[2])) if int(row[0]) else None

    def localizations(self, from_ns: int, to_ns: int) -> list[Localization]:
        rows = self._rows(
            f"SELECT {_LOC_COLUMNS} FROM localizations FINAL "
            f"WHERE t_ns BETWEEN {int(from_ns)} AND {int(to_ns)} ORDER BY t_ns LIMIT {self.limit}"
        )
        return [
            Localization(
                event_id=r[0],
                observation_id=r[1],
                channel_id=str(r[2]),
                t_ns=int(r[3]),
                position=Position(lat_deg=float(r[4]), lon_deg=float(r[5]), alt_m=float(r[6])),
                cov_ee_m2=float(r[7]),
                cov_en_m2=float(r[8]),
                cov_nn_m2=float(r[9]),
                method=str(r[10]),
                model_version=r[11],
                n_receivers=int(r[12]),
                processing_latency_s=float(r[13]),
                published_ns=int(r[14]),
            )
            for r in rows
        ]

    def truth(self, from_ns: int, to_ns: int) -> list[Truth]:
        rows = self._rows(
            f"SELECT {_TRUTH_COLUMNS} FROM truth FINAL WHERE t_ns BETWEEN {int(from_ns)} "
            f"AND {int(to_ns)} ORDER BY t_ns LIMIT {4 * self.limit}"
        )
        return [
            Truth(
                event_id=r[0],
                source_id=str(r[1]),
                t_ns=int(r[2]),
                position=Position(lat_deg=float(r[3]), lon_deg=float(r[4]), alt_m=float(r[5])),
                channel_id=r[6],
                freq_hz=float(r[7]),
            )
            for r in rows
        ]

    def __call__(self, from_ns: int, to_ns: int) -> dict[str, Any]:
        """The page's history JSON for ``[from_ns, to_ns]`` (as ``DashboardState.history``)."""
        view = DashboardState(self.ellipse, max_fixes=self.limit, max_truth=4 * self.limit)
        events: list[Localization | Truth] = [*self.truth(from_ns - self.truth_margin_ns, to_ns)]
        events += self.localizations(from_ns, to_ns)
        events.sort(key=lambda e: (e.t_ns, isinstance(e, Localization)))  # truth first
        for e in events:
            view.apply(e)
        out = view.history(from_ns, to_ns)
        out["source"] = "clickhouse"
        return out
