"""One options model per adapter (issue 16, item 2): the flags of ``heimdall receiver KIND``,
the keys of a network file's ``options`` and the adapter's config are the same set of fields
with the same defaults, because all three are made from the adapter's model.

The CLI side runs the real app (typer's runner on ``heimdall.infra.cli.app``) with only the
Kafka side (topic creation, the run loop, the publisher) replaced by a recorder: what the
command would run is compared with what the network file builds from the same receiver.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
import typer
from pydantic import BaseModel
from typer.testing import CliRunner

from heimdall.core.errors import ConfigError
from heimdall.infra import cli_receivers
from heimdall.infra.cli import app
from heimdall.infra.cli_options import flag_of
from heimdall.producers.adapters.base import ReceiverAdapter
from heimdall.producers.adapters.options import AdapterConfig
from heimdall.producers.adapters.runtime import RunSummary
from heimdall.producers.network import KINDS, build_adapters, load_network

#: kind → (address in a network file, the same receiver's connection flags, frequency, Hz)
CASES = {
    "rtltcp": ("10.1.2.3:7373", ["--host", "10.1.2.3", "--port", "7373"], 145.5e6),
    "openwebrx": ("ws://10.1.2.3:8073/ws/", ["--url", "ws://10.1.2.3:8073/ws/"], 145.5e6),
    "kiwisdr": ("10.1.2.3:8074", ["--host", "10.1.2.3", "--port", "8074"], 7.04e6),
}
#: options of every receiver command that are the receiver's, not the adapter's
RECEIVER_LEVEL = {"receiver_id", "lat", "lon", "alt", "calibration", "duration"}
#: options of a command that are shorthands for fields (``--cf32``; ``--url`` instead of
#: ``--host``/``--port``)
SHORTHANDS = {"rtltcp": {"cf32"}, "openwebrx": set(), "kiwisdr": {"url"}}


def _command(kind: str) -> Any:
    """The click command typer made (typer bundles its own click: duck-typed)."""
    group: Any = typer.main.get_command(app)
    return group.commands["receiver"].commands[kind]


def _config(kind: str) -> type[AdapterConfig]:
    model = KINDS[kind].options
    assert model is not None and issubclass(model, AdapterConfig)
    return model


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


@pytest.mark.parametrize("kind", sorted(CASES))
def test_cli_flags_are_the_model_fields_with_their_defaults(kind: str) -> None:
    model = _config(kind)
    options = {p.name: p for p in _command(kind).params if p.param_type_name == "option" and p.name}
    assert set(options) - RECEIVER_LEVEL - SHORTHANDS[kind] == set(model.model_fields)
    for name, field in model.model_fields.items():
        opt = options[name]
        assert flag_of(model, name) in opt.opts, name
        assert opt.help == " ".join(str(field.description).replace("``", "").split()), name
        if field.is_required():
            # required in the model; the CLI may let another flag give it (kiwisdr --url)
            assert opt.required or (kind, name) == ("kiwisdr", "host"), name
        else:
            assert not opt.required, name
            assert _plain(opt.default) == _plain(field.default), name
    assert options["lat"].required and options["lon"].required


@pytest.mark.parametrize("kind", sorted(CASES))
def test_network_options_are_the_model_fields_but_the_address(kind: str) -> None:
    model = _config(kind)
    assert set(model.option_fields()) | set(model.connection_fields) == set(model.model_fields)
    assert not set(model.option_fields()) & set(model.connection_fields)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[ReceiverAdapter]]:
    """The adapters ``heimdall receiver KIND`` would run (no broker: the run is recorded)."""
    adapters: list[ReceiverAdapter] = []

    def run(settings: Any, a: list[ReceiverAdapter], **kw: Any) -> RunSummary:
        adapters.extend(a)
        return RunSummary()

    monkeypatch.setattr(cli_receivers, "run_adapters", run)
    monkeypatch.setattr(cli_receivers, "_prepare", lambda settings: None)
    monkeypatch.setattr(cli_receivers, "Publisher", lambda settings: None)
    yield adapters


def _network(tmp_path: Path, kind: str, options: dict[str, Any]) -> ReceiverAdapter:
    address = CASES[kind][0]
    rx = {"id": "r", "kind": kind, "address": address, "position": {"lat": 45, "lon": 7}}
    path = tmp_path / "net.json"
    path.write_text(json.dumps({"receivers": [{**rx, "options": options}]}))
    adapters, _ = build_adapters(load_network(path))
    return adapters[0]


def _cli(kind: str, args: list[str], ran: list[ReceiverAdapter]) -> ReceiverAdapter:
    _, connection, _ = CASES[kind]
    cmd = ["receiver", kind, *connection, "--lat", "45", "--lon", "7", "--id", "r", *args]
    result = CliRunner().invoke(app, cmd)
    assert result.exit_code == 0, result.output
    return ran.pop()


@pytest.mark.parametrize("kind", sorted(CASES))
def test_the_cli_and_the_network_file_make_the_same_adapter_config(
    kind: str, tmp_path: Path, ran: list[ReceiverAdapter]
) -> None:
    model = _config(kind)
    address, _, freq_hz = CASES[kind]
    expected = model.model_validate({"freq_hz": freq_hz, **model.from_address(address)})
    # defaults: only the required field given
    by_cli = _cli(kind, ["--freq", str(freq_hz)], ran)
    by_file = _network(tmp_path, kind, {"freq_hz": freq_hz})
    assert by_cli.config == by_file.config == expected  # type: ignore[attr-defined]
    # every option set away from its default reaches the adapter the same way by both
    changed = _changed(model, freq_hz)
    by_file = _network(tmp_path, kind, changed)
    args = [a for name, v in changed.items() for a in _flag(model, name, v)]
    by_cli = _cli(kind, args, ran)
    assert by_cli.config == by_file.config  # type: ignore[attr-defined]
    got = by_file.config.model_dump(mode="json")  # type: ignore[attr-defined]
    assert {k: got[k] for k in changed} == changed


def _changed(model: type[BaseModel], freq_hz: float) -> dict[str, Any]:
    """A valid value other than the default for every option field (checked by the model)."""
    special: dict[str, Any] = {
        "freq_hz": freq_hz * 1.001,
        "sample_rate_hz": 2_400_000,
        "tune_offset_hz": 250_000.0,
        "channel_rate_hz": 24_000,
        "sample_format": "cf32",
        "measure": "fft",
        "profile": "sdr|2m",
        "mod": "am",
        "low_cut_hz": -4000.0,
        "high_cut_hz": 4500.0,
        "fft_voverlap_factor": 0.5,
        "noise_span": 0.5,
        "max_solution_age_s": 100,
        "password": "pw",
        "user": "someone",
        "client_name": "tester",
    }
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if name in getattr(model, "connection_fields", ()):
            continue
        if name in special:
            out[name] = special[name]
        elif field.annotation is bool:
            out[name] = not field.default
        elif field.default is None or isinstance(field.default, str):
            out[name] = 3.5 if "float" in str(field.annotation) else "key"
        else:
            out[name] = type(field.default)(field.default * 2 + 1)
    return out


def _flag(model: type[AdapterConfig], name: str, value: Any) -> list[str]:
    flag = flag_of(model, name)
    if isinstance(value, bool):
        return [flag if value else f"--no-{flag.removeprefix('--')}"]
    return [flag, str(value)]


@pytest.mark.parametrize("kind", sorted(CASES))
def test_a_connection_field_in_the_file_options_is_refused(kind: str, tmp_path: Path) -> None:
    model = _config(kind)
    field = model.connection_fields[0]
    with pytest.raises(ConfigError, match=rf"receivers\[0\]\.options\.{field}: give it as"):
        _network(tmp_path, kind, {"freq_hz": CASES[kind][2], field: "x"})


def test_a_kiwisdr_without_host_or_url_is_one_line(ran: list[ReceiverAdapter]) -> None:
    with pytest.raises(ConfigError, match="give --host"):
        cli_receivers.COMMANDS["kiwisdr"].build(
            {"receiver_id": "k", "lat": 1.0, "lon": 2.0, "alt": 0.0, "calibration": 0.0,
             "duration": None, "host": None, "url": None, "freq_hz": 7e6}
        )  # fmt: skip
