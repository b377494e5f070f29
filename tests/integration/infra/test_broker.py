"""The embedded broker: starts on a free port, answers, stops, and never outlives its parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from heimdall.infra.broker import EmbeddedBroker

pytestmark = pytest.mark.integration


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_start_and_stop() -> None:
    from confluent_kafka.admin import AdminClient

    with EmbeddedBroker() as b:
        pid = b.pid
        assert pid is not None and alive(pid)
        md = AdminClient({"bootstrap.servers": b.bootstrap_servers}).list_topics(timeout=10)
        assert md.brokers
    assert not alive(pid)


def test_broker_dies_with_a_killed_parent() -> None:
    """SIGKILL gives the parent no chance to clean up; PR_SET_PDEATHSIG must."""
    code = (
        "from heimdall.infra.broker import EmbeddedBroker\n"
        "import sys, time\n"
        "b = EmbeddedBroker().start()\n"
        "print(b.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    broker_pid = int(parent.stdout.readline())
    assert alive(broker_pid)
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while alive(broker_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(broker_pid)
