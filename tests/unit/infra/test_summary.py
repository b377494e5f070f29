"""The machine-readable run summary: the keys checks outside the tests rely on (README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heimdall.infra.monitor import LiveStats
from heimdall.infra.summary import build_summary

KEYS = {
    "events", "rows", "duplicates", "errors_m", "first_localization_s", "latency_ms",
    "restarts", "last_fixes", "wall_s", "workers",
}  # fmt: skip
FIX = {
    "channel_id": "145.5000MHz", "method": "rss-ml", "lat": 45.0, "lon": 8.2,
    "cov_ee_m2": 100.0, "cov_en_m2": 5.0, "cov_nn_m2": 200.0, "t_ns": 1_800_000_000_000_000_000,
}  # fmt: skip


def test_summary_json_keys_and_values(tmp_path: Path) -> None:
    live = LiveStats(first_localization_s=8.7, latencies_s=[0.1, 0.2, 0.3])
    s = build_summary(
        counts={"rf.iq.v1": 840, "rf.features.v1": 840},
        rows={"features": 840, "observations": 12, "localizations": 24, "truth": 30},
        errors={"rss-ml": [10.0, 20.0, 30.0, 40.0], "rss-ml+track": [5.0]},
        live=live,
        wall_s=30.0,
        describe={"kafka": "embedded"},
        duplicates={"features": 0, "observations": 1, "localizations": 0, "truth": 0},
        restarts={"streams-1": 0, "simulator": 0},
        last_fixes=[FIX],
        workers=2,
    )
    path = tmp_path / "out" / "summary.json"
    s.write_json(path)
    d = json.loads(path.read_text())
    assert set(d) == KEYS
    assert d["events"]["rf.iq.v1"] == 840 and d["rows"]["observations"] == 12
    assert d["duplicates"]["observations"] == 1
    assert set(d["errors_m"]["rss-ml"]) == {"median", "p95"}
    assert d["errors_m"]["rss-ml"]["median"] == pytest.approx(25.0)
    assert d["errors_m"]["rss-ml"]["p95"] == pytest.approx(38.5)
    assert d["latency_ms"]["p50"] == pytest.approx(200.0)
    assert d["latency_ms"]["p99"] == pytest.approx(298.0)
    assert d["first_localization_s"] == 8.7 and d["workers"] == 2
    assert d["restarts"] == {"streams-1": 0, "simulator": 0}
    assert d["last_fixes"] == [FIX]
