"""``heimdall train --source archive``: bad time ranges are one line and exit code 2 (no
broker: the archive is the object store of an empty data directory)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")

ROOT = Path(__file__).resolve().parents[3]


def _train(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "CLICKHOUSE_"))}
    env["HEIMDALL_DATA_DIR"] = str(tmp_path / "heimdall")
    env["COLUMNS"] = "400"  # one line, whatever the terminal
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "heimdall.infra.cli", "train", "--quiet", *args]
    return subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--from", "2026-12-04T08:00", "--to", "2026-12-04T09:00"],
            "error: no observation in the archive [2026-12-04T08:00:00+00:00, "
            "2026-12-04T09:00:00+00:00) has a truth of its channel (0 observations read)",
        ),
        (
            ["--from", "2026-12-04T09:00", "--to", "2026-12-04T08:00"],
            "error: empty time range [2026-12-04T09:00:00+00:00, 2026-12-04T08:00:00+00:00): "
            "--to must follow --from",
        ),
        (["--from", "yesterday"], "error: time 'yesterday': expected ISO 8601"),
        ([], "error: --source archive needs --from and --to"),
    ],
)
def test_bad_ranges_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    proc = _train(tmp_path, "--source", "archive", *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), proc.stderr
