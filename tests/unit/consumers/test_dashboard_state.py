"""The dashboard's state: ring buffers stay bounded, the page's JSON says what it should, the
ellipse polygons are the k-sigma ellipses of the covariance."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from pydantic import SecretStr

from heimdall.consumers.dashboard.config import check_binding, is_loopback
from heimdall.consumers.dashboard.server import dumps
from heimdall.consumers.dashboard.state import (
    DashboardState,
    ellipse_polygon,
    peak_bins,
    percentile,
)
from heimdall.core.errors import ConfigError
from heimdall.core.geodesy import LocalFrame
from heimdall.ml.estimators.ellipse import error_ellipse, mahalanobis2
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.models import (
    ClockSource,
    Localization,
    Measurement,
    ModelPointer,
    Position,
    ReceiverState,
    ReceiverStatus,
    Truth,
    WaterfallRow,
)

T0 = 1_700_000_000_000_000_000


def fix(i: int = 0, *, method: str = "rss-ml", channel: str = "ch-a", **kw: float) -> Localization:
    cov = {"cov_ee_m2": 400.0, "cov_en_m2": 150.0, "cov_nn_m2": 900.0} | kw
    return Localization(
        observation_id=f"obs-{i}",
        channel_id=channel,
        t_ns=T0 + i * 1_000_000_000,
        position=Position(lat_deg=45.0, lon_deg=8.0 + 1e-4 * i),
        method=method,
        n_receivers=5,
        processing_latency_s=0.1 * (i + 1),
        published_ns=T0 + i,
        **cov,
    )


def measurement(rx: str, i: int) -> Measurement:
    return Measurement(
        chunk_id=f"c{i}",
        receiver_id=rx,
        t_ns=T0 + i,
        duration_s=0.2,
        clock=ClockSource.NTP,
        position=Position(lat_deg=44.0, lon_deg=7.0),
        channel_id="ch-a",
        channel_freq_hz=145.5e6,
        channel_bw_hz=12.5e3,
        power_dbm=-80.0 - i * 0.01,
        noise_floor_dbm_hz=-170.0,
        snr_db=20.0,
        freq_offset_hz=0.0,
        occupied_bw_hz=10e3,
        detected=True,
        psd_dbm_hz=(-160.0, -120.08, -160.0),
        psd_bin_hz=187.5,
    )


def state(**kw: int) -> DashboardState:
    return DashboardState(error_ellipse, clock_ns=lambda: T0, **kw)


def test_ellipse_polygon_lies_on_the_k_sigma_ellipse() -> None:
    cov = np.array([[400.0, 150.0], [150.0, 900.0]])
    frame = LocalFrame(45.0, 8.0, 0.0)
    for k in (1.0, 2.0):
        poly = ellipse_polygon(error_ellipse, 45.0, 8.0, cov, k)
        assert poly[0] == poly[-1] and len(poly) == 37
        lat, lon = np.array(poly).T
        e, n, _ = frame.to_enu(lat, lon, 0.0)
        # every vertex satisfies εᵀ Σ⁻¹ ε = k² (to the 1e-7° rounding: ~1 cm of ~20-60 m)
        q = [mahalanobis2((ei, ni), cov) for ei, ni in zip(e, n, strict=True)]
        assert np.allclose(q, k * k, rtol=2e-3)


def test_undefined_covariance_gives_no_ellipse_and_valid_json() -> None:
    s = state()
    s.apply(fix(cov_ee_m2=math.nan))
    (f,) = s.take_delta()["fixes"]  # type: ignore[index]
    assert f["ellipse_1sigma"] == [] and f["cov_ee_m2"] is None
    json.loads(dumps(s.snapshot()))  # no NaN in the page's JSON
    assert json.loads(dumps({"x": [math.inf, 1.0]})) == {"x": [None, 1.0]}


def test_ring_buffers_stay_bounded() -> None:
    s = state(max_fixes=10, max_points=5, max_receivers=3, max_dead_letters=4, max_latencies=6)
    for i in range(50):
        s.apply(fix(i))
        s.apply(measurement(f"rx-{i % 7}", i))
        s.apply_dead_letter(DeadLetter(None, b"", f"bad {i}", "t", 0, i, "features"), T0)
    assert [f["t_ns"] for f in s.fixes] == [T0 + i * 1_000_000_000 for i in range(40, 50)]
    assert len(s.receivers) == 3 and set(s.measurements) <= set(s.receivers)
    assert all(len(r) <= 5 for r in s.measurements.values())
    assert len(s.dead_letters) == 4 and len(s.latencies_s) == 6
    delta = s.take_delta()
    assert delta is not None and len(delta["fixes"]) == 10
    assert s.take_delta() is None  # nothing new since


def test_delta_then_snapshot_carry_receivers_fixes_truth_and_pipeline() -> None:
    s = state()
    s.apply(
        ReceiverStatus(
            receiver_id="rx-1",
            kind="sim",
            position=Position(lat_deg=45.1, lon_deg=7.9),
            state=ReceiverState.STALLED,
            updated_ns=T0,
        )
    )
    s.apply(
        Truth(
            source_id="tx",
            t_ns=T0,
            position=Position(lat_deg=45.0, lon_deg=8.001),
            freq_hz=1e8,
            channel_id="ch-a",
        )
    )
    s.apply(fix(0))
    s.apply(measurement("rx-1", 3))
    s.apply(
        ModelPointer(
            model_name="setnet",
            version="7",
            url="file://m",
            sha256="0" * 64,
            input_spec="x",
            created_ns=1,
        )
    )
    s.set_pipeline({"rf.iq.v1": 10.0}, {"rf.iq.v1": 100}, {"features": 4})
    d = s.take_delta()
    assert d is not None and d["type"] == "update"
    (rx,) = d["receivers"]
    assert (rx["id"], rx["state"], rx["lat"], rx["snr_db"]) == ("rx-1", "stalled", 45.1, 20.0)
    assert rx["snr_db_by_channel"] == {"ch-a": 20.0}
    (f,) = d["fixes"]
    assert f["truth"]["source_id"] == "tx"
    # 0.001° of longitude at 45° N is 78.8 m on WGS84
    assert f["error_m"] == pytest.approx(78.8, abs=0.2)
    assert d["pipeline"]["lag"] == {"features": 4}
    assert d["pipeline"]["models"][0]["version"] == "7"
    assert d["pipeline"]["latency_s"]["p50"] == pytest.approx(0.1)
    assert s.take_points() == {"rx-1": [[T0 + 3, "ch-a", -80.03, 20.0]]}
    psd = s.receiver_history("rx-1")["psd"]
    assert psd["bin_hz"] == 187.5 and psd["dbm_hz"] == [-160.0, -120.1, -160.0]
    snap = s.snapshot()
    assert snap["type"] == "snapshot" and len(snap["fixes"]) == 1 and len(snap["truth"]) == 1
    assert snap["channels"] == ["ch-a"]


def test_api_state_is_the_latest_fix_per_channel_and_method() -> None:
    s = state()
    for i in range(3):
        s.apply(fix(i))
        s.apply(fix(i, method="rss-ml+track"))
        s.apply(fix(i, channel="ch-b"))
    out = s.api_state()
    keys = [(f["channel_id"], f["method"], f["t_ns"]) for f in out["fixes"]]
    last = T0 + 2_000_000_000
    assert keys == [
        ("ch-a", "rss-ml", last),
        ("ch-a", "rss-ml+track", last),
        ("ch-b", "rss-ml", last),
    ]
    assert set(out["fixes"][0]) >= {"lat", "lon", "cov_ee_m2", "cov_en_m2", "cov_nn_m2", "method"}
    assert {"receivers", "lag", "events_per_s"} <= set(out)


def test_history_selects_by_event_time() -> None:
    s = state()
    for i in range(5):
        s.apply(fix(i))
    h = s.history(T0 + 1_000_000_000, T0 + 3_000_000_000)
    assert [f["t_ns"] for f in h["fixes"]] == [T0 + i * 1_000_000_000 for i in (1, 2, 3)]


def test_percentile_matches_numpy() -> None:
    rng = np.random.default_rng(3)
    v = rng.exponential(size=101)
    assert percentile(v, 99) == pytest.approx(float(np.percentile(v, 99)))
    assert percentile([], 50) is None


def test_binding_beyond_loopback_needs_a_token() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    check_binding("127.0.0.1", None)
    check_binding("0.0.0.0", SecretStr("t"))
    with pytest.raises(ConfigError, match="HEIMDALL_DASHBOARD_TOKEN"):
        check_binding("0.0.0.0", None)
    with pytest.raises(ConfigError):
        check_binding("0.0.0.0", SecretStr(""))


def test_a_truth_read_after_the_fix_is_matched_and_the_fix_pushed_again() -> None:
    s = state()
    s.apply(fix(0))
    (first,) = s.take_delta()["fixes"]  # type: ignore[index]
    assert first["truth"] is None
    s.apply(
        Truth(
            source_id="tx",
            t_ns=T0 + 500_000_000,
            position=Position(lat_deg=45.0, lon_deg=8.001),
            freq_hz=1e8,
            channel_id="ch-a",
        )
    )
    (again,) = s.take_delta()["fixes"]  # type: ignore[index]
    assert again["id"] == first["id"] and again["truth"]["source_id"] == "tx"
    assert again["error_m"] == pytest.approx(78.8, abs=0.2)


def row(rx: str, i: int, n_bins: int = 1000) -> WaterfallRow:
    values = np.full(n_bins, -100.0, dtype=np.float32)
    values[517] = -20.0  # a carrier one bin wide
    return WaterfallRow(
        receiver_id=rx,
        seq=i,
        t_ns=T0 + i,
        clock=ClockSource.NTP,
        position=Position(lat_deg=45.0, lon_deg=8.0),
        center_freq_hz=7.1e6,
        sample_rate_hz=2.4e6,
        bin_hz=2400.0,
        n_bins=n_bins,
        values=values,
        row_period_s=0.1,
    )


def test_peak_bins_keeps_a_one_bin_carrier() -> None:
    v = row("rx", 0).values
    out = peak_bins(v, 256)
    assert out.shape == (256,) and out.max() == -20.0 and np.count_nonzero(out == -20.0) == 1
    # the carrier's group: bin 517 of 1000 falls in group floor(517 * 256 / 1000) = 132
    assert int(np.argmax(out)) == 132
    assert np.array_equal(peak_bins(v[:100], 256), v[:100])


def test_waterfall_rows_are_bounded_and_sent_to_the_page() -> None:
    s = state(max_waterfall_rows=4, max_waterfall_receivers=2)
    for rx in ("a", "b", "c"):
        for i in range(10):
            s.apply(row(rx, i))
    assert list(s.waterfall) == ["b", "c"] and all(len(r) == 4 for r in s.waterfall.values())
    hist = s.receiver_history("c")["waterfall"]
    assert [r["t_ns"] for r in hist] == [T0 + i for i in range(6, 10)]
    assert len(hist[0]["values"]) == 256 and max(hist[0]["values"]) == -20.0
    assert hist[0]["span_hz"] == 2.4e6
    rows = s.take_rows()
    assert set(rows) == {"b", "c"} and s.take_rows() == {}


def test_dead_letter_rate_comes_from_the_topic_count_when_known() -> None:
    s = state(max_dead_letters=3)
    for i in range(10):
        s.apply_dead_letter(DeadLetter(None, b"", f"bad {i}", "t", 0, i, "features"), T0)
    assert s.api_state()["dead_letters_per_min"] == 3  # the ring only: a lower bound
    s.set_pipeline({"rf.dlq.v1": 0.5}, {"rf.dlq.v1": 10}, {}, dead_letters_per_s=0.5)
    out = s.api_state()
    assert out["dead_letters_per_min"] == 30.0
    assert [d["reason"] for d in out["last_dead_letters"]] == ["bad 7", "bad 8", "bad 9"]
