"""The conftest's ``_no_leftovers`` fixture really fails a test that leaves a child process
running (issue 16), and passes one that waits for its child.

Runs pytest in a subprocess on a copy of ``tests/conftest.py`` and two small tests.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import live_children

CONFTEST = Path(__file__).parents[1] / "conftest.py"
REPO = Path(__file__).parents[2]

TESTS = """
import subprocess, sys

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]

def test_leaves_a_child():
    subprocess.Popen(SLEEP)  # never waited

def test_waits_for_its_child():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
"""


def test_a_test_leaving_a_child_process_fails(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(CONFTEST.read_text())
    (tmp_path / "test_leftovers.py").write_text(TESTS)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "2 passed, 1 error" in out, out  # the test body passes; its teardown fails
    assert "ERROR at teardown of test_leaves_a_child" in out, out
    assert "test left child processes running: pid " in out and "time.sleep(60)" in out, out


def test_live_children_sees_a_running_child_and_not_a_finished_one() -> None:
    if not Path("/proc/self/stat").exists():
        pytest.skip("no /proc on this system: child processes are not checked")
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert p.pid in live_children()
    finally:
        p.kill()
        p.wait()
    assert p.pid not in live_children()
