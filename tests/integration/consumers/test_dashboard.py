"""The dashboard against the real embedded broker: events published reach a WebSocket client
and ``/api/state``; a token, when set, is needed by every request.

The waits are correctness timeouts (an event that never arrives fails), not speed checks.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from heimdall.consumers.dashboard.config import DashboardSettings
from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.dashboard import Dashboard, start_dashboard
from heimdall.producers.publisher import Publisher
from heimdall.schemas.dlq import dlq_headers
from heimdall.schemas.models import Localization, Position, ReceiverState, ReceiverStatus, Truth

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0
CHANNEL = "145.5000MHz"


@pytest.fixture
def dashboard(settings: HeimdallSettings) -> Iterator[Dashboard]:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    dash = start_dashboard(settings, port=0, dashboard=DashboardSettings(), interval_s=0.5)
    try:
        yield dash
    finally:
        dash.stop()


def _statuses(now_ns: int) -> list[ReceiverStatus]:
    return [
        ReceiverStatus(
            receiver_id=f"rx-{i}",
            kind="sim",
            position=Position(lat_deg=45.0 + 0.01 * i, lon_deg=7.6 + 0.01 * i),
            state=ReceiverState.ONLINE if i else ReceiverState.STALLED,
            updated_ns=now_ns,
        )
        for i in range(3)
    ]


def _fix(now_ns: int) -> Localization:
    return Localization(
        observation_id="obs-1",
        channel_id=CHANNEL,
        t_ns=now_ns,
        position=Position(lat_deg=45.01, lon_deg=7.61),
        cov_ee_m2=400.0,
        cov_en_m2=100.0,
        cov_nn_m2=900.0,
        method="rss-ml",
        n_receivers=3,
        processing_latency_s=0.4,
        published_ns=now_ns,
    )


def _receive_until(ws: Any, done: Any) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + TIMEOUT_S
    while not done(got):
        left = deadline - time.monotonic()
        assert left > 0, f"timed out; received {[m.get('type') for m in got]}"
        try:
            got.append(json.loads(ws.recv(timeout=left)))
        except TimeoutError:
            continue
    return got


def test_published_events_are_pushed_and_served(
    settings: HeimdallSettings, dashboard: Dashboard
) -> None:
    ws_url = dashboard.url.replace("http://", "ws://") + "ws"
    with connect(ws_url) as ws:
        first = _receive_until(ws, lambda m: any(x["type"] == "snapshot" for x in m))
        assert first[0]["type"] == "config"
        now = time.time_ns()
        pub = Publisher(settings)
        for s in _statuses(now):
            pub.publish(settings.topics.receivers, s.receiver_id, s)
        truth = Truth(
            source_id="tx-1",
            t_ns=now,
            position=Position(lat_deg=45.012, lon_deg=7.612),
            freq_hz=145.5e6,
            channel_id=CHANNEL,
        )
        pub.publish(settings.topics.truth, truth.source_id, truth)
        assert pub.flush() == 0
        time.sleep(0.5)  # the truth is read before the fix (they are on different topics)
        pub.publish(settings.topics.localizations, CHANNEL, _fix(now))
        pub.publish_raw(
            settings.topics.dlq,
            b"rx-9",
            b"\x07bad",
            headers=dlq_headers("samples: NaN", topic="x", partition=0, offset=7, stage="features"),
        )
        assert pub.flush() == 0

        def seen(msgs: list[dict[str, Any]]) -> bool:
            rx = {r["id"] for m in msgs for r in m.get("receivers", [])}
            fixes = [f for m in msgs for f in m.get("fixes", [])]
            dead = [d for m in msgs for d in (m.get("pipeline") or {}).get("last_dead_letters", [])]
            return rx >= {"rx-0", "rx-1", "rx-2"} and bool(fixes) and bool(dead)

        msgs = _receive_until(ws, seen)

    fix = next(f for m in msgs for f in m.get("fixes", []))
    assert fix["method"] == "rss-ml" and fix["channel_id"] == CHANNEL
    assert len(fix["ellipse_1sigma"]) == len(fix["ellipse_2sigma"]) > 3
    assert fix["truth"]["source_id"] == "tx-1" and fix["error_m"] > 0
    states = {r["id"]: r["state"] for m in msgs for r in m.get("receivers", [])}
    assert states["rx-0"] == "stalled" and states["rx-1"] == "online"
    dead = next(d for m in msgs for d in (m.get("pipeline") or {}).get("last_dead_letters", []))
    assert dead["reason"] == "samples: NaN" and dead["stage"] == "features"

    state = httpx.get(dashboard.url + "api/state", timeout=10).json()
    assert {r["id"] for r in state["receivers"]} == {"rx-0", "rx-1", "rx-2"}
    (f,) = state["fixes"]
    assert (f["cov_ee_m2"], f["cov_en_m2"], f["cov_nn_m2"]) == (400.0, 100.0, 900.0)
    assert (f["lat"], f["lon"], f["method"]) == (45.01, 7.61, "rss-ml")


def test_pipeline_panel_counts_topics(settings: HeimdallSettings, dashboard: Dashboard) -> None:
    pub = Publisher(settings)
    now = time.time_ns()
    for s in _statuses(now):
        pub.publish(settings.topics.receivers, s.receiver_id, s)
    assert pub.flush() == 0
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        events = httpx.get(dashboard.url + "api/state", timeout=10).json()["events"]
        if events.get(settings.topics.receivers, 0) >= 3:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the receivers topic was never counted: {events}")


def test_a_token_is_needed_by_every_request(
    settings: HeimdallSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    ds = DashboardSettings(dashboard_token=SecretStr("s3cret-token"))
    dash = start_dashboard(settings, port=0, dashboard=ds, interval_s=0.5)
    try:
        base = dash.url
        for path in ("", "api/state", "static/app.js", "api/config"):
            assert httpx.get(base + path, timeout=10).status_code == 401, path
        assert httpx.get(base + "api/state?token=wrong", timeout=10).status_code == 401
        ok = httpx.get(
            base + "api/state", headers={"Authorization": "Bearer s3cret-token"}, timeout=10
        )
        assert ok.status_code == 200
        page = httpx.get(base + "?token=s3cret-token", timeout=10)
        # the cookie is set and the address loses the token
        assert page.status_code == 303 and page.headers["Location"] == "/"
        assert "heimdall_token" in page.cookies
        with httpx.Client(cookies=page.cookies) as client:
            assert client.get(base, timeout=10).status_code == 200
        ws_url = base.replace("http://", "ws://") + "ws"
        with pytest.raises(InvalidStatus):
            connect(ws_url).close()
        with connect(ws_url + "?token=s3cret-token") as ws:
            assert json.loads(ws.recv(timeout=TIMEOUT_S))["type"] == "config"
        with pytest.raises(InvalidStatus):  # a page of another site, even with the cookie
            connect(ws_url + "?token=s3cret-token", origin="http://evil.example").close()
    finally:
        dash.stop()
    # the server's logs (the test's own clients log their requests at DEBUG: not counted)
    server_logs = [
        r.getMessage()
        for r in caplog.records
        if not r.name.startswith(("websockets", "httpx", "httpcore"))
    ]
    assert server_logs and not [m for m in server_logs if "s3cret-token" in m]


def test_history_on_load_reads_back_by_time(settings: HeimdallSettings) -> None:
    """Events published before the dashboard starts are shown if younger than the history;
    older ones (by their Kafka timestamp) are not."""
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    now = time.time_ns()
    pub = Publisher(settings)
    old, recent = _fix(now - 3_600 * 10**9), _fix(now - 10 * 10**9)
    pub.publish(settings.topics.localizations, CHANNEL, old, t_ns=old.t_ns)
    pub.publish(settings.topics.localizations, CHANNEL, recent, t_ns=recent.t_ns)
    for s in _statuses(now - 3_600 * 10**9):  # state, not history: shown whatever its age
        pub.publish(settings.topics.receivers, s.receiver_id, s, t_ns=s.updated_ns)
    assert pub.flush() == 0
    ds = DashboardSettings(dashboard_history_s=600.0)
    dash = start_dashboard(settings, port=0, dashboard=ds, interval_s=0.5)
    try:
        with connect(dash.url.replace("http://", "ws://") + "ws") as ws:

            def seen(msgs: list[dict[str, Any]]) -> bool:
                rx = {r["id"] for m in msgs for r in m.get("receivers", [])}
                return len(rx) == 3 and any(m.get("fixes") for m in msgs)

            msgs = _receive_until(ws, seen)
        assert [f["t_ns"] for m in msgs for f in m.get("fixes", [])] == [recent.t_ns]
    finally:
        dash.stop()
