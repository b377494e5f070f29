"""``heimdall up``'s metrics ports: its own, then one per serving child in start order."""

from __future__ import annotations

from pathlib import Path

from heimdall.core.settings import load_settings
from heimdall.infra.runtime import Runtime, UpOptions


def test_children_get_the_ports_after_ups(tmp_path: Path) -> None:
    rt = Runtime(load_settings(data_dir=tmp_path, metrics_port=9400), UpOptions())
    env = {"HEIMDALL_METRICS_PORT": "9400", "OTHER": "x"}
    rt.metrics_ports["up"] = 9400  # what _start_metrics records once it serves
    first = rt._metrics_env("streams-1", env)
    second = rt._metrics_env("streams-2", env)
    archive = rt._metrics_env("archive", env)
    assert [e["HEIMDALL_METRICS_PORT"] for e in (first, second, archive)] == [
        "9401",
        "9402",
        "9403",
    ]
    assert first["OTHER"] == "x" and env["HEIMDALL_METRICS_PORT"] == "9400"  # env untouched
    assert rt.metrics_ports == {"up": 9400, "streams-1": 9401, "streams-2": 9402, "archive": 9403}


def test_off_means_off_for_every_child(tmp_path: Path) -> None:
    rt = Runtime(load_settings(data_dir=tmp_path, metrics_port=0), UpOptions())
    # a port inherited from the shell must not be reused by the children
    env = rt._metrics_env("streams", {"HEIMDALL_METRICS_PORT": "9400"})
    assert env["HEIMDALL_METRICS_PORT"] == "0"
    assert rt.metrics_ports == {}
