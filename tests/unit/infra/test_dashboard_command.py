"""``python -m heimdall.infra.dashboard`` (what ``heimdall up`` starts): a clear one-line
error and exit status 2 when it may not or cannot start."""

from __future__ import annotations

import pytest

from heimdall.infra.dashboard import main


def test_open_host_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HEIMDALL_DASHBOARD_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["--host", "0.0.0.0", "--port", "0"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "HEIMDALL_DASHBOARD_TOKEN" in err and "0.0.0.0" in err


def test_no_broker_is_one_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    with pytest.raises(SystemExit) as exc:
        main(["--port", "0"])
    assert exc.value.code == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err
