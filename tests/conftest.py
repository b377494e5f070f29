"""Shared fixtures.

* ``broker``: one real embedded Tansu broker for the whole session (integration tests).
* ``settings``: settings pointing at that broker, with unique topic names per test
  (``topics``) so tests never see each other's events.
* ``group_id``: a unique consumer group per test.
* every test fails if it leaves threads, child processes or environment variables behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from heimdall.core.settings import HeimdallSettings, TopicNames, load_settings
from heimdall.infra.broker import EmbeddedBroker


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log_path = tmp_path_factory.mktemp("broker") / "tansu.log"
    with EmbeddedBroker(log_path=log_path) as b:
        yield b


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture
def topics(unique: str) -> TopicNames:
    return TopicNames(**{k: f"t{unique}.{v}" for k, v in TopicNames().model_dump().items()})


@pytest.fixture
def group_id(unique: str) -> str:
    return f"g-{unique}"


@pytest.fixture
def settings(
    broker: EmbeddedBroker, topics: TopicNames, unique: str, tmp_path: Path
) -> HeimdallSettings:
    return load_settings(
        data_dir=tmp_path / "heimdall",
        streams_app_id=f"heimdall-streams-{unique}",
        topics=topics,
        partitions=2,
        kafka={"bootstrap_servers": broker.bootstrap_servers},
    )


#: Python's own helper processes, started once on first use and kept for the session.
_SESSION_HELPERS = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


def live_children(pid: int | None = None) -> dict[int, str]:
    """The live (not zombie) child processes of ``pid`` (default: this one): pid → cmdline.

    Read from ``/proc/<pid>/stat`` (``pid (comm) state ppid ...``; ``comm`` may hold spaces
    and parentheses, hence the split on the last ``)``). Empty where there is no ``/proc``.
    """
    me = os.getpid() if pid is None else pid
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir() if Path("/proc/self/stat").exists() else ():
        if not entry.name.isdigit():
            continue
        try:
            state, ppid = (entry / "stat").read_text().rpartition(")")[2].split()[:2]
            if int(ppid) != me or state in ("Z", "X"):
                continue
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):  # it ended while being read
            continue
        if not any(h in cmd for h in _SESSION_HELPERS):
            out[int(entry.name)] = cmd.strip()
    return out


def _ended(pids: set[int], timeout_s: float) -> set[int]:
    """``pids`` still running after up to ``timeout_s`` (a child on its way out may finish)."""
    deadline = time.monotonic() + timeout_s
    while (left := pids & live_children().keys()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@pytest.fixture(autouse=True)
def _no_leftovers() -> Iterator[None]:
    """Fail a test that leaves threads, child processes or env vars behind.

    Processes of fixtures of a wider scope (the session's broker) are started before this
    fixture looks, so they are not the test's. A child the test left running is killed
    (SIGKILL, after SIGTERM) so that it cannot disturb the next tests, and the test fails
    naming it.
    """
    env_before = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    threads_before = set(threading.enumerate())
    children_before = live_children()
    yield
    env_after = {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"}
    changed = {
        k for k in env_before.keys() | env_after.keys() if env_before.get(k) != env_after.get(k)
    }
    for k in changed:
        if k in env_before:
            os.environ[k] = env_before[k]
        else:
            os.environ.pop(k, None)
    leftover = []
    for t in set(threading.enumerate()) - threads_before:
        t.join(timeout=5.0)
        if t.is_alive() and not t.daemon:
            leftover.append(t.name)
    new = {p: c for p, c in live_children().items() if p not in children_before}
    left_procs = _ended(set(new), timeout_s=5.0)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in left_procs & live_children().keys():
            os.kill(p, sig)
        _ended(left_procs, timeout_s=2.0)
    for p in left_procs:  # reap them: they were this process's children
        with contextlib.suppress(ChildProcessError):
            os.waitpid(p, os.WNOHANG)
    assert not changed, f"test changed environment variables {sorted(changed)}"
    assert not leftover, f"test left threads running: {leftover}"
    assert not left_procs, "test left child processes running: " + "; ".join(
        f"pid {p}: {new[p][:120]}" for p in sorted(left_procs)
    )
