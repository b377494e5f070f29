"""Supervision in ``heimdall up`` against the real broker: a stream worker killed with SIGKILL
is restarted, counted once in the summary, and chunks published after the restart still
become measurements and localizations."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.infra.processes import Child
from heimdall.infra.runtime import Runtime, UpOptions
from heimdall.infra.summary import Summary
from heimdall.schemas.models import Localization, Measurement
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration


def read_all(settings: HeimdallSettings, topic: str, quiet_s: float = 3.0) -> list[Any]:
    """Every event of ``topic``, decoded, until nothing more arrives for ``quiet_s``."""
    serde = Serde()
    c = kafka.consumer(settings, f"reader-{topic}-{time.monotonic_ns()}")
    c.subscribe([topic])
    out: list[Any] = []
    last = time.monotonic() + 20.0  # the group join comes first
    try:
        while time.monotonic() - last < quiet_s:
            msgs = [m for m in c.consume(500, timeout=0.5) if not m.error()]
            if msgs:
                last = time.monotonic()
            out += [serde.decode(m.value()) for m in msgs]
    finally:
        c.close()
    return out


def wait_for(what: str, cond: Any, timeout_s: float, runtime: Runtime) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {c.name}\n{c.tail()}" for c in runtime.children)
            raise AssertionError(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.2)


def test_killed_worker_is_restarted_and_measurements_keep_flowing(
    settings: HeimdallSettings,
) -> None:
    settings = settings.model_copy(update={"restart_backoff_s": 0.5})
    opts = UpOptions(live=False, workers=1, realtime=True, seed=3)
    runtime = Runtime(settings, opts, Console(file=io.StringIO(), width=120))
    result: dict[str, Summary | BaseException] = {}

    def run() -> None:
        try:
            result["summary"] = runtime.run()
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run, name="heimdall-up-under-test")
    thread.start()
    try:

        def localizations() -> int:
            return runtime.monitor.stats.localizations if runtime.monitor else 0

        wait_for("a first localization", lambda: localizations() > 0, 90, runtime)
        worker = runtime._workers()[0]
        assert worker.proc is not None
        os.kill(worker.proc.pid, signal.SIGKILL)
        killed_ns = time.time_ns()
        wait_for(
            "the restart", lambda: runtime.supervisor.restarts.get("streams") == 1, 30, runtime
        )
        restarted_ns = time.time_ns()
        assert worker.running
        n_before = localizations()
        wait_for(
            "localizations after the restart", lambda: localizations() > n_before + 4, 90, runtime
        )
    finally:
        runtime.stop_event.set()
        thread.join(timeout=120)
    assert not thread.is_alive()
    assert "error" not in result, repr(result.get("error"))
    summary = result["summary"]
    assert isinstance(summary, Summary)
    assert summary.restarts == {"streams": 1, "simulator": 0, "archive": 0}
    assert summary.to_json()["restarts"] == {"streams": 1, "simulator": 0, "archive": 0}
    assert runtime.failure is None

    t = settings.topics
    measurements = [m for m in read_all(settings, t.features) if isinstance(m, Measurement)]
    fixes = [x for x in read_all(settings, t.localizations) if isinstance(x, Localization)]
    # chunks published after the restart were measured (by the new worker) ...
    after = [m for m in measurements if m.chunk_published_ns > restarted_ns]
    assert len(after) > 0
    assert all(m.published_ns > killed_ns for m in after)
    # ... and localized; and the rows reached ClickHouse
    assert sum(1 for x in fixes if x.published_ns > restarted_ns) > 0
    assert summary.rows["features"] >= len({m.chunk_id + m.channel_id for m in after})


def test_embedded_broker_death_ends_the_run_with_one_line_and_the_summary(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    settings = load_settings(
        data_dir=tmp_path / "heimdall", partitions=1, kafka={"bootstrap_servers": None}
    )
    out = io.StringIO()
    opts = UpOptions(live=False, workers=1, realtime=True, duration_s=120.0)
    runtime = Runtime(settings, opts, Console(file=out, width=200))
    result: dict[str, Summary | BaseException] = {}

    def run() -> None:
        try:
            result["summary"] = runtime.run()
        except BaseException as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=run, name="heimdall-up-under-test")
    thread.start()
    try:

        def counted() -> bool:
            stats = runtime.monitor.stats if runtime.monitor else None
            return stats is not None and stats.topic_counts.get(settings.topics.iq, 0) > 0

        wait_for("events counted", counted, 90, runtime)
        assert runtime.broker is not None and runtime.broker.pid is not None
        os.kill(runtime.broker.pid, signal.SIGKILL)
        thread.join(timeout=90)  # it ends by itself, long before its 120 s duration
        ended_by_itself = not thread.is_alive()
    finally:
        runtime.stop_event.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert "error" not in result, repr(result.get("error"))
    summary = result["summary"]
    assert isinstance(summary, Summary)
    assert runtime.failure is not None
    assert runtime.failure.startswith("the embedded broker exited with -9")
    assert runtime.failure in " ".join(out.getvalue().split())
    assert summary.topic_counts.get(settings.topics.iq, 0) > 0  # the last counts seen
    assert ended_by_itself
    err = capfd.readouterr().err
    assert "%3|" not in err and "Traceback" not in err, err[-2000:]


class RuntimeWithBrokenChild(Runtime):
    """``up`` with one more child that always fails at once (a module that does not exist)."""

    def _start_dashboard(self, env: dict[str, str]) -> None:
        broken = Child("broken", [], env, self.logs / "broken.log", module="heimdall.no_such")
        self.children.append(broken.start())


def test_a_crash_loop_ends_the_run_with_the_child_and_its_exit_code(
    settings: HeimdallSettings,
) -> None:
    settings = settings.model_copy(
        update={"restart_max": 2, "restart_backoff_s": 0.2, "restart_window_s": 60.0}
    )
    out = io.StringIO()
    opts = UpOptions(live=False, workers=1, simulate=False, duration_s=120.0)
    runtime = RuntimeWithBrokenChild(settings, opts, Console(file=out, width=200))
    summary = runtime.run()  # ends by itself, long before its duration
    assert runtime.failure == (
        "broken is in a crash loop: it exited with 1 after 2 restarts within 60 s; giving up"
    )
    text = out.getvalue()
    assert runtime.failure in text
    assert text.count("broken exited with 1: restarting in") == 2
    assert "No module named heimdall.no_such" in text  # the last lines of its log
    assert summary.restarts == {"streams": 0, "broken": 2, "archive": 0}
    assert summary.wall_s < opts.duration_s  # type: ignore[operator]
