"""Replay from the ClickHouse history (real chDB): ``/api/history`` returns the stored fixes of
a period with their ellipses and their error to the stored truth, and ``/api/config`` says
from when the store has fixes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from heimdall.consumers.dashboard.history import StoreHistory
from heimdall.consumers.dashboard.server import DashboardServer, ServerThread
from heimdall.consumers.dashboard.state import DashboardState
from heimdall.ml.estimators.ellipse import error_ellipse

pytestmark = pytest.mark.integration

T0 = 1_760_000_000_000_000_000
S = 1_000_000_000


def _insert(store: Any) -> None:
    loc_cols = [
        "event_id",
        "observation_id",
        "channel_id",
        "t_ns",
        "lat_deg",
        "lon_deg",
        "alt_m",
        "cov_ee_m2",
        "cov_en_m2",
        "cov_nn_m2",
        "method",
        "model_version",
        "n_receivers",
        "converged",
        "params",
        "processing_latency_s",
        "published_ns",
    ]
    cov = [900.0, 0.0, 1600.0]
    rest = ["rss-ml", None, 7, True, {}, 0.1]
    rows = [
        [
            uuid.uuid4(),
            uuid.uuid4(),
            "ch-a",
            T0 + i * S,
            45.0,
            8.0 + 1e-3 * i,
            0.0,
            *cov,
            *rest,
            T0 + i * S,
        ]
        for i in range(10)
    ]
    store.insert("localizations", rows, column_names=loc_cols)
    truth_cols = ["event_id", "source_id", "t_ns", "lat_deg", "lon_deg", "alt_m"]
    truth_cols += ["channel_id", "freq_hz", "tx_power_dbm", "waveform", "transmitting"]
    truth_cols += ["velocity_enu_mps"]
    store.insert(
        "truth",
        [[uuid.uuid4(), "tx", T0, 45.0, 8.0, 0.0, "ch-a", 145.5e6, None, "cw", True, []]],
        column_names=truth_cols,
    )


@pytest.fixture
def server(store: Any) -> Iterator[ServerThread]:
    _insert(store)
    history = StoreHistory(store, error_ellipse)
    st = ServerThread(DashboardServer(DashboardState(error_ellipse), history=history)).start()
    try:
        yield st
    finally:
        st.stop()


def test_history_comes_from_the_store(server: ServerThread) -> None:
    config = httpx.get(server.url + "api/config", timeout=30).json()
    assert config["history_from_ns"] == T0
    h = httpx.get(
        server.url + "api/history", params={"from_ns": T0 + 2 * S, "to_ns": T0 + 4 * S}, timeout=30
    ).json()
    assert h["source"] == "clickhouse"
    assert [f["t_ns"] for f in h["fixes"]] == [T0 + 2 * S, T0 + 3 * S, T0 + 4 * S]
    f = h["fixes"][0]
    assert len(f["ellipse_1sigma"]) == 37 and f["truth"]["source_id"] == "tx"
    # 0.002° of longitude at 45° N: 157.6 m on WGS84
    assert f["error_m"] == pytest.approx(157.6, abs=0.3)
    bad = httpx.get(server.url + "api/history", params={"from_ns": "x"}, timeout=30)
    assert bad.status_code == 400
