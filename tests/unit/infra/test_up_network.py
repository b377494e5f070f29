"""``heimdall up --network FILE``: the options it cannot be combined with, the file checked
before anything starts, and the producer child it runs instead of the simulator."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from heimdall.core.errors import ConfigError
from heimdall.core.settings import load_settings
from heimdall.infra import runtime
from heimdall.infra.cli import app
from heimdall.infra.runtime import Runtime, UpOptions

NET = """
receivers:
  - {id: r, kind: rtltcp, address: 127.0.0.1:9, position: {lat: 1, lon: 2},
     options: {freq_hz: 1e8}}
"""


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--scenario", "hf-tdoa"], "--scenario"),
        (["--no-sim"], "--no-sim"),
        (["--sim-seconds", "10"], "--sim-seconds"),
        (["--fast", "--no-sim"], "--no-sim, --fast"),
    ],
)
def test_network_excludes_the_simulator_options(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    net = tmp_path / "net.yaml"
    net.write_text(NET)
    r = CliRunner().invoke(app, ["up", "--network", str(net), *flags])
    assert isinstance(r.exception, ConfigError)
    msg = str(r.exception)
    assert msg.startswith("--network runs a network file instead of the simulator: it cannot ")
    assert f"be combined with {named} (" in msg and "\n" not in msg


def test_a_bad_network_file_is_one_line_before_anything_starts(
    tmp_path: Path, monkeypatch: Any
) -> None:
    net = tmp_path / "net.yaml"
    net.write_text(NET.replace("lat: 1", "lat: 100"))
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(
        app, ["up", "--network", str(net)], env={"HEIMDALL_DATA_DIR": ".heimdall"}
    )
    assert isinstance(r.exception, ConfigError)
    assert str(r.exception).startswith(
        f"{net}: receivers[0].position.lat: Input should be less than or equal to 90 (got 100)"
    )
    assert not (tmp_path / ".heimdall").exists()


def test_the_network_runs_as_the_producer_child(tmp_path: Path, monkeypatch: Any) -> None:
    started: list[tuple[str, list[str]]] = []

    class FakeChild:
        def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
            self.name, self.args = name, args

        def start(self) -> FakeChild:
            started.append((self.name, self.args))
            return self

    monkeypatch.setattr(runtime, "Child", FakeChild)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(data_dir=tmp_path / "h")
    rt = Runtime(settings, UpOptions(network=Path("nets/a.yaml"), simulate=False))
    rt._start_producers({})
    assert started == [("network", ["receivers", "run", str(tmp_path / "nets" / "a.yaml")])]
    assert rt._simulator() is rt.children[0]  # watched like the simulator: its end drains
    started.clear()
    Runtime(settings, UpOptions(sim_seconds=5, realtime=False))._start_producers({})
    assert started == [
        ("simulator", ["simulate", "seed-network", "--seed", "1", "--duration", "5", "--fast"])
    ]
