"""`heimdall up` as a user runs it: a subprocess that stops on SIGTERM, prints the summary and
leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def children_of(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                parent[int(d)] = int(fields[1])
            except (FileNotFoundError, IndexError, ProcessLookupError):
                continue
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = {c for c, pp in parent.items() if pp == p}
        out |= kids
        todo += list(kids)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_sigterm_stops_everything_and_prints_summary(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CLICKHOUSE_"))}
    env["HEIMDALL_DATA_DIR"] = str(tmp_path / "heimdall")
    env["HEIMDALL_ARCHIVE_ROLL_S"] = "1"  # archive files of the first IQ within a second or two
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "heimdall.infra.cli",
            "up",
            "--workers",
            "2",
            "--summary-json",
            str(tmp_path / "summary.json"),
            "--dashboard-port",
            str(free_port()),
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        kids: set[int] = set()
        # broker, 2 workers, dashboard, archive, sim
        while time.monotonic() < deadline and len(kids) < 6:
            time.sleep(0.5)
            kids = children_of(proc.pid)
        assert len(kids) >= 6, f"children: {kids}"
        # run until IQ has flowed (its first archive file), not for a fixed time: a loaded
        # machine can take more than 8 s to start the simulator
        iq_archive = tmp_path / "heimdall" / "objects" / "archive" / "rf.iq.v1"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not any(iq_archive.rglob("*.avro")):
            time.sleep(0.5)
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert "Heimdall run summary" in out
    assert "events in rf.iq.v1" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["workers"] == 2
    assert summary["events"]["rf.iq.v1"] > 0
    children = {"streams-1", "streams-2", "simulator", "dashboard", "archive"}
    assert set(summary["restarts"]) == children
    leftover = [k for k in kids if alive(k)]
    assert not leftover, f"processes left behind: {leftover}"
