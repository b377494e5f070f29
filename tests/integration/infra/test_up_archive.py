"""`heimdall up` runs the archiver: after a short simulated run every event of the five
archived topics is in the object store, once, and `heimdall archive ls` lists them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from heimdall.consumers.archive_store import ArchiveStore
from heimdall.core.settings import load_settings

pytestmark = pytest.mark.integration

ARCHIVED = ("rf.iq.v1", "rf.features.v1", "rf.observations.v1", "rf.localizations.v1",
            "rf.truth.v1")  # fmt: skip


def test_up_leaves_every_event_in_the_archive(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CLICKHOUSE_"))}
    env["HEIMDALL_DATA_DIR"] = str(tmp_path / "heimdall")
    summary = tmp_path / "summary.json"
    up = [sys.executable, "-m", "heimdall.infra.cli", "up", "--fast", "--sim-seconds", "6",
          "--workers", "1", "--no-dashboard", "--summary-json", str(summary)]  # fmt: skip
    proc = subprocess.run(up, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    events = json.loads(summary.read_text())["events"]
    assert events["rf.iq.v1"] > 0 and events["rf.localizations.v1"] > 0

    store = ArchiveStore.from_settings(load_settings(data_dir=tmp_path / "heimdall"))
    for topic in ARCHIVED:
        files = store.files(topic)
        offsets = [
            (f.partition, o) for f in files for o in range(f.first_offset, f.last_offset + 1)
        ]
        assert len(offsets) == len(set(offsets)) == events[topic], topic

    ls = [sys.executable, "-m", "heimdall.infra.cli", "archive", "ls", "--json"]
    out = subprocess.run(ls, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert sum(r["events"] for r in rows) == sum(events[t] for t in ARCHIVED)
