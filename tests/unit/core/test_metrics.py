"""The metric helpers: lag arithmetic, RSS from /proc, the endpoint, the runtime collector."""

from __future__ import annotations

import os
import socket
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import OFFSET_INVALID, TopicPartition
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from heimdall.core import metrics
from heimdall.core.errors import ConfigError
from heimdall.core.settings import load_settings


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# -- lag ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("committed", "low", "high", "lag"),
    [
        (10, 0, 25, 15),  # behind by the events after the committed offset
        (25, 0, 25, 0),  # caught up
        (OFFSET_INVALID, 0, 25, 25),  # nothing committed: everything held is ahead
        (OFFSET_INVALID, 5, 25, 20),  # ... from the first offset still held
        (3, 10, 25, 15),  # committed before the retention cut: from the low watermark
        (30, 0, 25, 0),  # a watermark read before the commit's: never negative
    ],
)
def test_partition_lag(committed: int, low: int, high: int, lag: int) -> None:
    assert metrics.partition_lag(committed, low, high) == lag


class FakeConsumer:
    """The three calls :meth:`LagSampler.sample` makes, answering from dicts."""

    def __init__(self, partitions: dict[str, int], committed: dict, marks: dict) -> None:
        self.partitions = partitions
        self._committed = committed
        self.marks = marks

    def list_topics(self, topic: str, timeout: float) -> Any:
        if topic not in self.partitions:
            return SimpleNamespace(topics={})
        meta = SimpleNamespace(partitions=dict.fromkeys(range(self.partitions[topic])), error=None)
        return SimpleNamespace(topics={topic: meta})

    def committed(self, tps: list[TopicPartition], timeout: float) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self._committed.get((tp.topic, tp.partition)))
            if (tp.topic, tp.partition) in self._committed
            else TopicPartition(tp.topic, tp.partition, OFFSET_INVALID)
            for tp in tps
        ]

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> Any:
        return self.marks[(tp.topic, tp.partition)]


def test_lag_sampler_sets_the_gauge_per_partition() -> None:
    fake = FakeConsumer(
        {"unit-a": 2},
        committed={("unit-a", 0): 7},
        marks={("unit-a", 0): (0, 10), ("unit-a", 1): (2, 6)},
    )
    sampler = metrics.LagSampler(None, "unit-group", ["unit-a", "unit-missing"])
    assert sampler.sample(fake) == {("unit-a", 0): 3, ("unit-a", 1): 4}
    lag = "heimdall_consumer_lag_events"
    assert sample(lag, group="unit-group", topic="unit-a", partition="0") == 3
    assert sample(lag, group="unit-group", topic="unit-a", partition="1") == 4


# -- counting ----------------------------------------------------------------------------


def test_record_batch_moves_each_counter_by_its_amount() -> None:
    stage = "unit-stage"
    before = sample("heimdall_stage_batch_seconds_count", stage=stage)
    metrics.record_batch(stage, n_in=5, n_out=3, n_dead=2, seconds=0.02)
    metrics.record_batch(stage, n_in=1, n_out=0, n_dead=1, seconds=0.5)
    assert sample("heimdall_stage_events_in_total", stage=stage) == 6
    assert sample("heimdall_stage_events_out_total", stage=stage) == 3
    assert sample("heimdall_stage_dead_letters_total", stage=stage) == 3
    assert sample("heimdall_stage_batch_seconds_count", stage=stage) == before + 2
    assert sample("heimdall_stage_batch_seconds_sum", stage=stage) == pytest.approx(0.52)
    # 0.02 s is in the 0.025 s bucket, 0.5 s is not
    assert sample("heimdall_stage_batch_seconds_bucket", stage=stage, le="0.025") == 1


def test_latency_is_publication_minus_event_time_never_negative() -> None:
    method = "unit-method"
    metrics.observe_latency(method, t_event_s=1000.0, now_s=1001.5)
    metrics.observe_latency(method, t_event_s=1000.0, now_s=999.0)  # clock behind: 0
    name = "heimdall_chunk_to_localization_seconds"
    assert sample(f"{name}_count", method=method) == 2
    assert sample(f"{name}_sum", method=method) == pytest.approx(1.5)
    assert sample(f"{name}_bucket", method=method, le="0.1") == 1
    assert sample(f"{name}_bucket", method=method, le="2.0") == 2


def test_active_model_reports_only_the_last_one() -> None:
    name = "heimdall_active_model_info"
    metrics.set_active_model("unit-net", "v1")
    assert sample(name, model_name="unit-net", version="v1") == 1
    metrics.set_active_model("unit-net", "v2")
    assert REGISTRY.get_sample_value(name, {"model_name": "unit-net", "version": "v1"}) is None
    assert sample(name, model_name="unit-net", version="v2") == 1


# -- memory ------------------------------------------------------------------------------


def test_rss_reads_vmrss_in_kib(tmp_path: Path) -> None:
    (tmp_path / "42").mkdir()
    (tmp_path / "42" / "status").write_text("Name:\ttansu\nVmPeak:\t 9000 kB\nVmRSS:\t  1536 kB\n")
    assert metrics.rss_bytes(42, proc=tmp_path) == 1536 * 1024
    assert metrics.rss_bytes(43, proc=tmp_path) is None  # gone
    (tmp_path / "44").mkdir()
    (tmp_path / "44" / "status").write_text("Name:\tzombie\n")
    assert metrics.rss_bytes(44, proc=tmp_path) is None


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_rss_of_this_process_is_its_resident_pages() -> None:
    page = os.sysconf("SC_PAGE_SIZE")
    rss = metrics.rss_bytes(os.getpid())
    resident = int(Path("/proc/self/statm").read_text().split()[1]) * page
    assert rss is not None
    # the same counter read twice a few microseconds apart (the interpreter may map a page)
    assert abs(rss - resident) <= 64 * page


def test_runtime_collector_reports_restarts_and_memory(tmp_path: Path) -> None:
    collector = metrics.RuntimeCollector(
        restarts=lambda: {"streams": 2, "archive": 0}, pids=lambda: {"me": os.getpid(), "x": None}
    )
    families = {f.name: f for f in collector.collect()}
    restarts = {s.labels["child"]: s.value for s in families["heimdall_child_restarts"].samples
                if s.name.endswith("_total")}  # fmt: skip
    assert restarts == {"archive": 0.0, "streams": 2.0}
    rss = {s.labels["process"]: s.value for s in families["heimdall_process_rss_bytes"].samples}
    assert set(rss) == {"me"} and rss["me"] > 0


# -- the endpoint ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_off_busy_and_idempotent() -> None:
    assert metrics.serve(0) is None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=r"HEIMDALL_METRICS_PORT.*127\.0\.0\.1"):
            metrics.serve(port)
    port = free_port()
    try:
        assert metrics.serve(port) == port
        assert metrics.serve(port + 1) == port  # one endpoint per process
        metrics.record_batch("unit-served", 4, 4, 0, 0.01)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    finally:
        metrics.stop_serving()
    samples = {
        (s.name, s.labels.get("stage")): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }
    assert samples[("heimdall_stage_events_in_total", "unit-served")] == 4


def test_settings_metrics_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HEIMDALL_METRICS_PORT", raising=False)
    s = load_settings(metrics_port=9400)
    assert s.metrics_port == 9400 and s.metrics_host == "127.0.0.1"
    assert load_settings().metrics_port == 0  # off unless set
    assert s.to_env()["HEIMDALL_METRICS_HOST"] == "127.0.0.1"
    with pytest.raises(ConfigError, match="HEIMDALL_METRICS_PORT"):
        load_settings(metrics_port=70000)
