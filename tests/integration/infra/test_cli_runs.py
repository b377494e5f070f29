"""Real runs of the commands that no other test ran (issue 16): ``receiver rtltcp|openwebrx|
kiwisdr``, ``receivers run``, ``tail``, ``models list|promote``, each through the real entry
point (``heimdall.infra.cli:main``) against the embedded broker and the local protocol
stand-ins of rtl_tcp, OpenWebRX and KiwiSDR (``tests/unit/producers/adapters/*_server.py``).
What each command published is read back from its topic. (``eval tdoa`` runs on the shared
DCF77 recordings through the real app in ``tests/unit/infra/test_cli_tdoa.py``.)
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from heimdall.core.settings import HeimdallSettings
from heimdall.ml.registry import ModelRegistry
from heimdall.schemas.models import IqChunk, Measurement, ModelPointer, ReceiverStatus
from heimdall.schemas.serde import Serde
from tests.cli_main import run_main
from tests.integration.producers.adapters._harness import read, serving
from tests.unit.producers.adapters.kiwisdr_server import KiwiTestServer
from tests.unit.producers.adapters.openwebrx_server import OpenWebRxTestServer
from tests.unit.producers.adapters.openwebrx_server import Tone as OwrxTone
from tests.unit.producers.adapters.rtltcp_server import RtlTcpTestServer, Tone

pytestmark = pytest.mark.integration

F_RTL = 145_500_000.0
F_OWRX = 145_010_000.0
F_KIWI = 10_000_000.0


@pytest.fixture
def env(settings: HeimdallSettings, monkeypatch: pytest.MonkeyPatch) -> HeimdallSettings:
    """The test's broker, topics and data directory as the command's environment."""
    for k, v in settings.to_env().items():
        monkeypatch.setenv(k, v)
    return settings


@pytest.fixture
def rtl() -> Iterator[RtlTcpTestServer]:
    server = RtlTcpTestServer(tones=[Tone(F_RTL + 1500, 0.3)], realtime=True)
    with serving(server, name="rtl-tcp-test-server"):
        yield server


@pytest.fixture
def owrx() -> Iterator[OpenWebRxTestServer]:
    server = OpenWebRxTestServer(tones=[OwrxTone(F_OWRX + 1000, 0.1)], fft_compression="none")
    with serving(server, name="owrx-test-server"):
        yield server


@pytest.fixture
def kiwi() -> Iterator[KiwiTestServer]:
    server = KiwiTestServer(tones=[OwrxTone(F_KIWI + 1000, 0.25)], full_scale_dbm=-10.0)
    with serving(server, name="kiwi-test-server"):
        yield server


def _chunks(settings: HeimdallSettings) -> list[IqChunk]:
    serde = Serde()
    return [serde.decode(m.value() or b"", expect=IqChunk)
            for m in read(settings, [settings.topics.iq], 30.0)]  # fmt: skip


def test_receiver_rtltcp_then_tail(
    env: HeimdallSettings,
    rtl: RtlTcpTestServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run_main(
        ["receiver", "rtltcp", "--host", "127.0.0.1", "--port", str(rtl.port),
         "--freq", str(F_RTL), "--gain", "20", "--lat", "45.07", "--lon", "7.68",
         "--id", "rtl-cli", "--duration", "2"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    assert "receivers after 2 s" in err  # the summary table
    chunks = _chunks(env)
    assert chunks and {c.receiver_id for c in chunks} == {"rtl-cli"}
    c = chunks[0]
    assert c.center_freq_hz == F_RTL and c.gain_db == 20.0 and c.position.lat_deg == 45.07
    # tail: the same events as JSON lines
    code, out, err = run_main(
        ["tail", "iq", "--from-beginning", "--max", "2", "--timeout", "30"], capsys, monkeypatch
    )
    assert code == 0, err
    lines = [json.loads(ln) for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 2
    assert all("rtl-cli" in json.dumps(ln) for ln in lines)


def test_receiver_openwebrx(
    env: HeimdallSettings,
    owrx: OpenWebRxTestServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run_main(
        ["receiver", "openwebrx", "--url", owrx.url, "--freq", str(F_OWRX),
         "--lat", "45.0", "--lon", "7.6", "--id", "owrx-cli", "--integration", "0.5",
         "--duration", "3"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    serde = Serde()
    msgs = read(env, [env.topics.features], 30.0)
    ms = [serde.decode(m.value() or b"", expect=Measurement) for m in msgs]
    assert ms and {m.receiver_id for m in ms} == {"owrx-cli"}
    assert all(m.channel_freq_hz == F_OWRX and m.position.lat_deg == 45.0 for m in ms)


def test_receiver_kiwisdr(
    env: HeimdallSettings,
    kiwi: KiwiTestServer,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, _, err = run_main(
        ["receiver", "kiwisdr", "--url", f"http://127.0.0.1:{kiwi.port}/", "--freq",
         str(F_KIWI), "--lat", "52.0", "--lon", "5.0", "--id", "kiwi-cli", "--duration", "3"],
        capsys, monkeypatch,
    )  # fmt: skip
    assert code == 0, err
    chunks = _chunks(env)
    assert chunks and {c.receiver_id for c in chunks} == {"kiwi-cli"}
    assert chunks[0].center_freq_hz == F_KIWI and chunks[0].position.lat_deg == 52.0


def test_receivers_run(
    env: HeimdallSettings,
    rtl: RtlTcpTestServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    net = tmp_path / "net.yaml"
    net.write_text(
        "runtime: {status_interval_s: 0.5}\nreceivers:\n"
        f"  - {{id: rtl-net, kind: rtltcp, address: '127.0.0.1:{rtl.port}',\n"
        f"     position: {{lat: 45.0, lon: 7.0}}, options: {{freq_hz: {F_RTL}}}}}\n"
    )
    code, _, err = run_main(["receivers", "run", str(net), "--duration", "2"], capsys, monkeypatch)
    assert code == 0, err
    assert "receivers after 2 s" in err
    chunks = _chunks(env)
    assert chunks and {c.receiver_id for c in chunks} == {"rtl-net"}
    serde = Serde()
    statuses = [serde.decode(m.value() or b"", expect=ReceiverStatus)
                for m in read(env, [env.topics.receivers], 30.0)]  # fmt: skip
    assert statuses and {s.receiver_id for s in statuses} == {"rtl-net"}


def test_models_list_and_promote(
    env: HeimdallSettings, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry(env.object_store_url)
    first = registry.publish("setnet", b"onnx-1", {"features": 3}, metrics={"median_m": 30.0})
    code, out, err = run_main(["models", "list"], capsys, monkeypatch)
    assert code == 0, err
    assert "setnet" in out and first.version in out and "median_m=30" in out
    code, out, err = run_main(["models", "promote", "setnet"], capsys, monkeypatch)
    assert code == 0, err
    assert f"promoted setnet {first.version} on {env.topics.models}" in " ".join(out.split())
    assert registry.active("setnet") == first
    serde = Serde()
    pointers = [serde.decode(m.value() or b"", expect=ModelPointer)
                for m in read(env, [env.topics.models], 30.0)]  # fmt: skip
    assert [(p.model_name, p.version, p.sha256) for p in pointers] == [
        ("setnet", first.version, first.sha256)
    ]
