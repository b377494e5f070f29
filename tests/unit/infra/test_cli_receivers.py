"""``heimdall receiver rtltcp|openwebrx|kiwisdr`` through the real CLI app: a receiver without
a position is refused before anything connects (issue 16: at a default 0° N 0° E its
measurements would pull every fix it joins towards the Gulf of Guinea)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from heimdall.infra.cli import app


@pytest.mark.parametrize(
    "args",
    [
        ["receiver", "rtltcp", "--freq", "145e6"],
        ["receiver", "openwebrx", "--url", "ws://127.0.0.1:9/ws/", "--freq", "145e6"],
        ["receiver", "kiwisdr", "--freq", "7.04e6", "--host", "127.0.0.1"],
        ["receiver", "rtltcp", "--freq", "145e6", "--lat", "45.0"],
    ],
)
def test_a_receiver_without_a_position_is_refused(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    missing = "--lon" if "--lat" in args else "--lat"
    assert f"Missing option '{missing}'" in result.output
