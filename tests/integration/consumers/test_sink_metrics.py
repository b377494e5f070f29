"""The ClickHouse sink's metrics against the real broker and chDB: rows per table, events in,
out and dead-lettered, moved by exactly what the sink did, and a flush-time observation per
flush that inserted rows (the sink runs in this process: the default registry is read
directly)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import REGISTRY

from heimdall.consumers.clickhouse_sink import STAGE
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.serde import Serde
from tests.integration.consumers.conftest import SinkThread
from tests.integration.consumers.test_clickhouse_sink import ROLES, events, produce

pytestmark = pytest.mark.integration


def snapshot() -> dict[str, float]:
    def get(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    out = {f"rows {t}": get("heimdall_sink_rows_total", table=t) for t in ROLES}
    out["in"] = get("heimdall_stage_events_in_total", stage=STAGE)
    out["out"] = get("heimdall_stage_events_out_total", stage=STAGE)
    out["dead"] = get("heimdall_stage_dead_letters_total", stage=STAGE)
    out["flushes"] = get("heimdall_sink_flush_seconds_count")
    out["flush s"] = get("heimdall_sink_flush_seconds_sum")
    return out


def test_sink_metrics_count_rows_dead_letters_and_flushes(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread], group_id: str
) -> None:
    serde = Serde()
    n = 5
    items, expected = events(serde, n)
    produce(ch_settings, [*items, ("features", b"k-garbage", b"\x7fnot avro")])
    before = snapshot()
    st = run_sink(serde, group_id=group_id, batch_size=1000)
    st.wait_for("good rows", lambda: st.sink.stats.rows == expected)
    st.wait_for("dead letter", lambda: st.sink.stats.dlq == 1)
    st.finish()
    after = snapshot()
    moved = {k: after[k] - before[k] for k in after}
    flushes, flush_s = moved.pop("flushes"), moved.pop("flush s")
    assert moved == {
        **{f"rows {t}": n for t in ROLES},
        "in": len(items) + 1,
        "out": len(items),
        "dead": 1,
    }
    # one observation per flush that inserted rows (a flush of dead letters alone has none)
    assert 1 <= flushes <= st.sink.stats.flushes
    assert flush_s > 0
