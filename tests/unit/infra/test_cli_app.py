"""The real ``heimdall`` entry point (``heimdall.infra.cli:main``, the console script) for every
registered command: ``--help``, and bad input giving one line and the documented exit code.

``main`` runs typer's app and maps every error Heimdall raises on purpose
(:class:`~heimdall.core.errors.HeimdallError`) to ``error: <one line>`` on stderr and exit code
2, the code click gives a usage error (a missing argument, a value of the wrong type). Each
case here runs ``main`` itself in this process (``sys.argv`` set, no broker: every case fails
before anything would connect), so the registration, the error mapping and the exit codes
are the ones a user gets. :func:`test_every_registered_command_has_cases` fails when a
command is registered without a case here. The commands' real runs against a broker are in
``tests/integration/infra/test_cli_runs.py``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from heimdall.infra import cli
from tests.cli_main import run_main

HAVE_TORCH = importlib.util.find_spec("torch") is not None
REPO = Path(__file__).resolve().parents[3]
#: Exit code of a usage error (click) and of a HeimdallError (``cli.main``).
EXIT_BAD_INPUT = 2

#: command → (arguments of a bad invocation, what its one error line says). Paths under
#: ``MISSING`` do not exist; settings come from the environment of each case.
MISSING = "/nonexistent-heimdall-test"
BAD: dict[str, tuple[list[str], str]] = {
    "up": (["--network", f"{MISSING}/net.yaml"], "cannot read the network file"),
    "dashboard": (["--port", "http"], "Invalid value for '--port'"),
    "worker": ([], "HEIMDALL_PARTITIONS: Input should be a valid integer"),
    "sink": ([], "HEIMDALL_PARTITIONS: Input should be a valid integer"),
    "tail": (["iq", "--max", "1"], "KAFKA_BOOTSTRAP_SERVERS is not set"),
    "simulate": (["no-such-scenario"], "no-such-scenario"),
    "train": (
        ["--source", "archive"],
        "--source archive needs --from and --to" if HAVE_TORCH else "train needs torch",
    ),
    "replay": (["iq", "--from", "yesterday", "--to", "now"], "time 'yesterday'"),
    "models list": (["--bogus"], "No such option: --bogus"),
    "models promote": (["no-such-model"], "no model named 'no-such-model'"),
    "archive": (["--bogus"], "No such option: --bogus"),
    "archive ls": (["--from", "yesterday"], "time 'yesterday'"),
    "topics ensure": ([], "KAFKA_BOOTSTRAP_SERVERS is not set"),
    "receiver rtltcp": (
        ["--freq", "145e6", "--lat", "45", "--lon", "7", "--sample-rate", "500000"],
        "sample_rate_hz: 500000 is not a rate the RTL2832U supports",
    ),
    "receiver openwebrx": (
        ["--url", "ws://127.0.0.1:9/ws/", "--freq", "145e6", "--lat", "45", "--lon", "7",
         "--measure", "both"],
        "Invalid value for '--measure'",
    ),
    "receiver kiwisdr": (
        ["--freq", "7.04e6", "--lat", "45", "--lon", "7"],
        "give --host (and --port) or --url",
    ),
    "receiver kiwi-wav": ([f"{MISSING}/x.wav"], MISSING),
    "receiver sigmf": ([f"{MISSING}/x.sigmf-meta"], MISSING),
    "receivers run": ([f"{MISSING}/net.yaml"], "cannot read the network file"),
    "record sigmf": (
        ["rx-1", f"{MISSING}/out", "--from-ns", "2", "--to-ns", "1"],
        "--to-ns must be after --from-ns",
    ),
    "eval tdoa": ([f"{MISSING}/a.wav", "--method", "gcc"], "--method 'gcc': xcorr or dcf77-pn"),
    "eval powder": (["--split", "random_test", "--train", f"{MISSING}/t.csv"], "no such file"),
    "eval sim": (["--scenario", "no-such-scenario"], "no-such-scenario"),
}  # fmt: skip


def registered_commands() -> list[str]:
    """Every command and subcommand of the app, space-separated (groups with a callback too)."""
    out: list[str] = []

    def walk(command: Any, path: list[str]) -> None:
        if not hasattr(command, "list_commands"):
            out.append(" ".join(path))
            return
        if path and getattr(command, "invoke_without_command", False):
            out.append(" ".join(path))
        ctx = command.context_class(command)
        for name in command.list_commands(ctx):  # the lazy ones too (train)
            walk(command.get_command(ctx, name), [*path, name])

    walk(typer.main.get_command(cli.app), [])
    return sorted(out)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty data directory, the embedded defaults (no broker named), a wide terminal."""
    for k in [k for k in os.environ if k.startswith(("KAFKA_", "HEIMDALL_", "OBJECT_STORE_"))]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("HEIMDALL_DATA_DIR", str(tmp_path / "heimdall"))
    monkeypatch.chdir(tmp_path)


def test_every_registered_command_has_cases() -> None:
    commands = registered_commands()
    assert len(commands) >= 22
    assert sorted(BAD) == commands, "commands without a case here: " + ", ".join(
        sorted(set(commands) - set(BAD))
    )


@pytest.mark.parametrize("command", registered_commands())
def test_help(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run_main([*command.split(), "--help"], capsys, monkeypatch)
    assert code == 0, err
    assert "Usage:" in out and command.split()[-1] in out


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input_is_one_line_and_exit_code_2(
    command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args, message = BAD[command]
    if command in ("worker", "sink"):
        monkeypatch.setenv("HEIMDALL_PARTITIONS", "many")
    code, out, err = run_main([*command.split(), *args], capsys, monkeypatch)
    assert code == EXIT_BAD_INPUT, (out, err)
    assert any(message in ln for ln in err.splitlines()), err
    if err.startswith("error: "):  # a HeimdallError: exactly one line, nothing else
        assert err.count("\n") == 1 and "Traceback" not in err, err
    else:  # a usage error: click's box, the error on one line of it
        assert "Usage:" in err and "Traceback" not in err, err


def test_eval_powder_with_a_missing_csv_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["eval", "powder", "--train", f"{MISSING}/t.csv", "--test", f"{MISSING}/u.csv"]
    code, _, err = run_main(args, capsys, monkeypatch)
    assert code == EXIT_BAD_INPUT and err.count("\n") == 1, err
    assert err.startswith("error: --train ") and "t.csv: no such file" in err, err


def test_eval_tdoa_reports_unreadable_recordings_and_exits_1(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unreadable WAVs are problems (one line each, the others still used), not a usage
    error: with fewer than 3 usable recordings there is no fix and the exit code is 1."""
    code, _, err = run_main(["eval", "tdoa", f"{MISSING}/a.wav"], capsys, monkeypatch)
    assert code == 1, err
    assert err.splitlines() == [
        f"problem: a.wav: {MISSING}/a.wav: cannot read: No such file or directory",
        "problem: _fix: only 0 usable recordings: 2-D TDOA needs 3",
    ]


def test_an_error_message_is_printed_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Brackets in a message are text (rich markup would eat ``[and 1 more error]``), and a
    message longer than any terminal stays on one line."""
    net = tmp_path / "net.yaml"
    net.write_text("receivers:\n  - {id: a, kind: rtltcp, antena: x, bogus: y}\n")
    code, _, err = run_main(["receivers", "run", str(net)], capsys, monkeypatch)
    assert code == EXIT_BAD_INPUT
    assert err.endswith("[and 2 more errors]\n") and err.count("\n") == 1, err
    assert len(err) > 100, err


#: Run in a fresh interpreter: torch made unimportable, as where it is not installed.
BLOCK_TORCH = """
import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _NoTorch())
"""


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "HEIMDALL_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env["HEIMDALL_DATA_DIR"] = str(tmp_path / "heimdall")
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_up_and_the_commands_it_starts_never_import_torch(tmp_path: Path) -> None:
    """``heimdall up`` and its children (``receivers run``, ``simulate``, the worker, the
    dashboard, the archiver) load no torch: ``make demo`` installs no train extra."""
    code = """
import importlib, sys
from heimdall.infra import cli
from tests.cli_main import run_main
for argv in (["up", "--help"], ["receivers", "run", "--help"], ["simulate", "--help"]):
    sys.argv = ["heimdall", *argv]
    try:
        cli.main()
    except SystemExit as exc:
        assert exc.code == 0, argv
for m in ("heimdall.infra.runtime", "heimdall.streams.worker", "heimdall.infra.dashboard",
          "heimdall.consumers.archive", "heimdall.infra.summary"):
    importlib.import_module(m)
print("torch imported:", "torch" in sys.modules, file=sys.stderr)
"""
    run = _python(code, tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().endswith("torch imported: False"), run.stderr


def test_train_without_torch_is_one_line(tmp_path: Path) -> None:
    code = (
        BLOCK_TORCH
        + """
from heimdall.infra import cli
from tests.cli_main import run_main
sys.argv = ["heimdall", "train", "--samples", "10"]
cli.main()
"""
    )
    run = _python(code, tmp_path)
    assert run.returncode == EXIT_BAD_INPUT, run.stderr
    assert run.stderr == (
        "error: heimdall train needs torch, which is not installed: install the train extra "
        "(pip install -e '.[train]')\n"
    )
