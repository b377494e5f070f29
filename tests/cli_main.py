"""Running the real ``heimdall`` entry point (``heimdall.infra.cli:main``) inside a test."""

from __future__ import annotations

import sys

import pytest

from heimdall.infra import cli


def run_main(
    args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> tuple[int, str, str]:
    """``heimdall ARGS`` through ``cli.main`` (the console script): (exit code, stdout,
    stderr). The exit code is the one a shell would see (``SystemExit``; 0 if none)."""
    monkeypatch.setattr(sys, "argv", ["heimdall", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err
