"""Scenario files, built-in scenarios, the simulate command and its SigMF output."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from heimdall.core.errors import ConfigError
from heimdall.infra.cli_simulate import simulate
from heimdall.producers.recordings.sigmf_io import read_sigmf
from heimdall.producers.sim import Simulator, seed_network
from heimdall.producers.sim.library import SCENARIOS, load_scenario
from heimdall.producers.sim.recording import write_simulation_sigmf

T0_NS = 1_760_000_000_000_000_000


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_builtins_simulate(name: str) -> None:
    """Every built-in validates, survives a JSON round trip, and simulates finite chunks
    (one per receiver per channel) with truth for every transmitter."""
    sc = load_scenario(name)
    again = load_scenario.__globals__["parse_scenario"](json.loads(sc.model_dump_json()))
    assert again == sc
    st = Simulator(sc, seed=1).step(T0_NS)
    assert len(st.chunks) == len(sc.receivers) * len(sc.tuned_channels())
    assert all(np.all(np.isfinite(c.iq)) for c in st.chunks)
    assert len(st.truths) == len(sc.transmitters)


def test_seed_network_builtin_is_the_e2e_default() -> None:
    """'seed-network' stays the free-space, ideal-receiver scene the e2e bound assumes."""
    sc = load_scenario("seed-network")
    assert sc == seed_network()
    assert sc.propagation.model.kind == "free_space"
    assert sc.propagation.shadowing is None and sc.propagation.fading is None
    assert len(load_scenario("dense-urban").receivers) == 20
    assert {r.clock.kind for r in load_scenario("hf-tdoa").receivers} == {"gps"}


def test_yaml_file_loads_and_bad_field_names_its_path(tmp_path: Path) -> None:
    """A YAML scenario file loads; a bad value raises ConfigError with one line naming the
    field path, e.g. transmitters[1].tx_power_dbm."""
    doc = json.loads(seed_network().model_dump_json())
    good = tmp_path / "s.yaml"
    good.write_text(yaml.safe_dump(doc))
    assert load_scenario(str(good)) == seed_network()
    doc["transmitters"][1]["tx_power_dbm"] = "loud"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_scenario(bad)
    msg = str(err.value)
    assert "transmitters[1].tx_power_dbm:" in msg
    assert "\n" not in msg
    doc["transmitters"][1]["tx_power_dbm"] = 30
    doc["propagation"] = {"model": {"kind": "hata", "environment": "downtown"}}
    bad.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"propagation\.model\.hata\.environment"):
        load_scenario(bad)
    with pytest.raises(ConfigError, match="unknown scenario"):
        load_scenario("no-such-scenario")


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.with_suffix(".sigmf-data").read_bytes())
    return h.hexdigest()


def test_sigmf_same_seed_same_output(tmp_path: Path) -> None:
    """One SigMF recording per receiver and channel; same seed and start -> byte-identical
    data; another seed -> different data; the recording reads back with the right rate,
    centre frequency and length."""
    sc = load_scenario("hf-tdoa")
    a = write_simulation_sigmf(sc, tmp_path / "a", duration_s=1.0, seed=5, start_t_ns=T0_NS)
    b = write_simulation_sigmf(sc, tmp_path / "b", duration_s=1.0, seed=5, start_t_ns=T0_NS)
    c = write_simulation_sigmf(sc, tmp_path / "c", duration_s=1.0, seed=6, start_t_ns=T0_NS)
    assert len(a) == len(sc.receivers) * len(sc.tuned_channels())
    assert _digest(a) == _digest(b) != _digest(c)
    rec = read_sigmf(a[0])
    assert rec.sample_rate_hz == sc.sample_rate_hz
    assert rec.n_samples == sc.n_samples * 5


def test_simulate_command_writes_sigmf(tmp_path: Path) -> None:
    """The command function, registered on a Typer app, writes the recordings; --sigmf
    without --duration is refused."""
    app = typer.Typer()
    app.command()(simulate)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["simulate", "seed-network", "--duration", "0.4", "--seed", "3", "--sigmf",
         str(tmp_path), "--start-ns", str(T0_NS)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(list(tmp_path.glob("*.sigmf-meta"))) == 14
    res = runner.invoke(app, ["simulate", "seed-network", "--sigmf", str(tmp_path)])
    assert isinstance(res.exception, ConfigError)
