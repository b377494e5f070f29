"""`heimdall sink` as its own process (the distributed mode's ClickHouse writer)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.processes import child_env
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import Position, Truth

pytestmark = pytest.mark.integration


def test_sink_process_writes_and_stops_on_sigterm(
    settings: HeimdallSettings, tmp_path: Path
) -> None:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    pub = Publisher(settings)
    for i in range(3):
        truth = Truth(source_id=f"tx-{i}", t_ns=1_800_000_000_000_000_000 + i,
                      position=Position(lat_deg=45.0, lon_deg=7.0, alt_m=0.0), freq_hz=145.5e6,
                      channel_id="145.5000MHz")  # fmt: skip
        pub.publish(settings.topics.truth, truth.source_id, truth, truth.t_ns)
    assert pub.flush() == 0
    group = f"sink-{tmp_path.name}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "heimdall.infra.cli", "sink", "--group-id", group],
        env=child_env(settings.to_env()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        # the sink commits only after writing: wait until its group has committed all three
        probe = kafka.consumer(settings, group)
        parts = [TopicPartition(settings.topics.truth, p) for p in range(settings.partitions)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            done = sum(max(tp.offset, 0) for tp in probe.committed(parts, timeout=5))
            if done >= 3:
                break
            time.sleep(0.5)
        probe.close()
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "'truth': 3" in out, out
