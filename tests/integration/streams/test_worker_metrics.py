"""The stream worker's Prometheus endpoint against the real embedded broker: after a few
chunks and one undecodable event, the counters moved by exactly those amounts, and the lag of
the stream group on ``rf.iq.v1`` is read from the broker."""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import free_port
from heimdall.infra.processes import Child, child_env
from heimdall.producers.publisher import Publisher
from tests.integration.streams.test_worker import chunk, read

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the endpoint: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_worker_counts_events_dead_letters_and_lag(
    settings: HeimdallSettings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"tdoa": False})  # features' outputs: one per chunk
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    rng = np.random.default_rng(3)
    n = 2400
    noise = (rng.normal(size=n) + 1j * rng.normal(size=n)) * np.sqrt(1e-13 / 2)
    tone = np.sqrt(1e-6) * np.exp(2j * np.pi * 1000.0 * np.arange(n) / 12_000.0)
    pub = Publisher(settings)
    t = settings.topics
    good = 3
    for seq in range(good):
        pub.publish(t.iq, "rx-1", chunk("rx-1", seq, noise + tone))
    pub.publish_raw(t.iq, b"rx-2", b"\x07garbage")
    assert pub.flush() == 0

    port = free_port()
    env = child_env({**settings.to_env(), "HEIMDALL_METRICS_PORT": str(port)})
    worker = Child("streams", ["worker"], env, tmp_path / "w.log")
    worker.start()
    try:
        features = read(settings, t.features, good, timeout_s=60)
        dead = read(settings, t.dlq, 1, timeout_s=30)
        assert len(features) == good and len(dead) == 1, worker.tail()
        # the associate stage takes the measurements; the committed offsets reach the end
        deadline = time.monotonic() + 60
        while True:
            samples = scrape(port)
            lag = {
                labels: v
                for (name, labels), v in samples.items()
                if name == "heimdall_consumer_lag_events" and dict(labels)["topic"] == t.iq
            }
            settled = value(samples, "heimdall_stage_events_in_total", stage="associate") == good
            if (settled and len(lag) == settings.partitions and not any(lag.values())) or (
                time.monotonic() > deadline
            ):
                break
            time.sleep(0.5)
    finally:
        worker.stop()
    assert value(samples, "heimdall_stage_events_in_total", stage="features") == good + 1
    assert value(samples, "heimdall_stage_events_out_total", stage="features") == good
    assert value(samples, "heimdall_stage_dead_letters_total", stage="features") == 1
    assert value(samples, "heimdall_stage_events_in_total", stage="associate") == good
    assert value(samples, "heimdall_stage_dead_letters_total", stage="associate") == 0
    assert value(samples, "heimdall_stage_events_in_total", stage="localize") == 0
    # one histogram observation per batch, as many batches as the features stage took
    batches = value(samples, "heimdall_stage_batch_seconds_count", stage="features")
    assert 1 <= batches <= good + 1
    group = settings.streams_app_id
    assert {dict(labels)["group"] for labels in lag} == {group}
    assert sorted(int(dict(labels)["partition"]) for labels in lag) == list(
        range(settings.partitions)
    )
    assert not any(lag.values()), lag
