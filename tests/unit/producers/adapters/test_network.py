"""The receiver network file: validation with one-line errors naming the field path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from heimdall.core.errors import ConfigError
from heimdall.core.settings import HeimdallSettings
from heimdall.producers.adapters.rtltcp import RtlTcpAdapter
from heimdall.producers.network import (
    build_adapters,
    load_network,
    parse_network,
    run_network,
    split_host_port,
)

GOOD = """
name: turin-vhf
runtime: {stall_timeout_s: 5, backoff_cap_s: 30}
receivers:
  - id: rtl-lingotto
    kind: rtltcp
    address: 192.168.1.20:1234
    position: {lat: 45.0318, lon: 7.6650, alt: 240}
    antenna: discone
    calibration_offset_db: -3.5
    bands: [[144e6, 146e6], {low_hz: 430e6, high_hz: 440e6}]
    options: {freq_hz: 145.5e6, gain_db: 29.7}
  - id: kiwi-superga
    kind: kiwisdr
    url: http://kiwi.example:8073
    position: {lat: 45.08, lon: 7.77}
    options: {freq_hz: 7.1e6}
  - id: sim-1
    kind: sim
    position: {lat: 45.1, lon: 7.7}
  - id: rtl-off
    kind: rtltcp
    address: "[::1]:1235"
    enabled: false
    position: {lat: 45.1, lon: 7.7}
    options: {freq_hz: 145.5e6}
"""


def write(tmp_path: Path, text: str, name: str = "net.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_a_good_file_builds_the_runnable_adapters_and_names_the_others(tmp_path: Path) -> None:
    net = load_network(write(tmp_path, GOOD))
    assert net.name == "turin-vhf" and len(net.receivers) == 4
    adapters, skipped = build_adapters(net)
    assert len(adapters) == 2
    assert type(adapters[1]).__name__ == "KiwiSdrAdapter"
    a = adapters[0]
    assert isinstance(a, RtlTcpAdapter)
    assert a.info.receiver_id == "rtl-lingotto" and a.info.url == "192.168.1.20:1234"
    assert (a.config.host, a.config.port, a.config.gain_db) == ("192.168.1.20", 1234, 29.7)
    assert a.info.position.alt_m == 240.0 and a.info.calibration_offset_db == -3.5
    assert [(b.low_hz, b.high_hz) for b in a.info.bands] == [(144e6, 146e6), (430e6, 440e6)]
    assert a.options.stall_timeout_s == 5 and a.options.backoff_cap_s == 30
    assert len(skipped) == 1
    assert skipped[0].startswith("receivers[2] 'sim-1': kind 'sim' cannot run yet")
    assert "kiwisdr" in skipped[0] and "rtltcp" in skipped[0]  # says which kinds can run


def test_json_works_too(tmp_path: Path) -> None:
    rx = {"id": "r", "kind": "rtltcp", "address": "h", "position": {"lat": 1, "lon": 2}}
    doc = {"receivers": [{**rx, "options": {"freq_hz": 1e8}}]}
    net = load_network(write(tmp_path, json.dumps(doc), "net.json"))
    adapters, _ = build_adapters(net)
    assert isinstance(adapters[0], RtlTcpAdapter) and adapters[0].config.port == 1234


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            ("lat: 45.08,", "lat: 91,"),
            "receivers[1].position.lat: Input should be less than or equal to 90 (got 91)",
        ),
        (
            ("kind: kiwisdr", "kind: kiwi"),
            "receivers[1].kind: Input should be 'openwebrx', 'kiwisdr', 'rtltcp', 'sigmf', "
            "'kiwi-wav' or 'sim' (got 'kiwi')",
        ),
        (
            ("options: {freq_hz: 145.5e6, gain_db: 29.7}", "options: {gain_db: 29.7}"),
            "receivers[0].options.freq_hz: Field required",
        ),
        (
            ("gain_db: 29.7}", "gain_db: 29.7, gian: 3}"),
            "receivers[0].options.gian: Extra inputs are not permitted",
        ),
        (
            ("antenna: discone", "antena: discone"),
            "receivers[0].antena: Extra inputs are not permitted",
        ),
        (
            ("id: sim-1", "id: kiwi-superga"),
            "receivers: receiver id 'kiwi-superga' appears more than once",
        ),
        (
            ("[[144e6, 146e6],", "[[146e6, 144e6],"),
            "receivers[0].bands[0]: high_hz 1.44e+08 must be above low_hz 1.46e+08",
        ),
        (
            ("stall_timeout_s: 5", "stall_timeout_s: -5"),
            "runtime.stall_timeout_s: Input should be greater than 0 (got -5)",
        ),
    ],
)
def test_mistakes_are_one_line_naming_the_field(
    tmp_path: Path, edit: tuple[str, str], message: str
) -> None:
    text = GOOD.replace(*edit)
    assert text != GOOD
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_network(path)
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}: "), msg
    assert msg.removeprefix(f"{path}: ").startswith(message), msg


def test_unreadable_and_unparsable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the network file"):
        load_network(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="not valid yaml"):
        load_network(write(tmp_path, "receivers: [\n  - id: x\n  kind"))
    with pytest.raises(ConfigError, match=r"\(top level\): Input should be a valid dictionary"):
        parse_network(["not", "a", "mapping"])
    with pytest.raises(ConfigError, match="receivers: Field required"):
        parse_network({})


def test_inconsistent_kind_options_name_the_receiver(tmp_path: Path) -> None:
    net = load_network(write(tmp_path, GOOD.replace("gain_db: 29.7}", "sample_rate_hz: 1024000}")))
    with pytest.raises(ConfigError, match=r"receivers\[0\] 'rtl-lingotto': sample_rate_hz: "
                       "1024000 is not an integer multiple"):  # fmt: skip
        build_adapters(net)


def test_a_network_with_nothing_runnable_says_why(settings_free: HeimdallSettings) -> None:
    net = parse_network({"receivers": [{"id": "k", "kind": "sim",
                                        "position": {"lat": 1, "lon": 2}}]})  # fmt: skip
    with pytest.raises(ConfigError, match="no receiver of the network can run: receivers"):
        run_network(settings_free, net)


@pytest.fixture
def settings_free() -> HeimdallSettings:
    return HeimdallSettings(kafka={"bootstrap_servers": "127.0.0.1:9"})


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.2:1235", ("10.0.0.2", 1235)),
        ("rtl.local", ("rtl.local", 1234)),
        ("rtl_tcp://rtl.local:7373/", ("rtl.local", 7373)),
        ("[::1]:1240", ("::1", 1240)),
        ("[fe80::1]", ("fe80::1", 1234)),
    ],
)
def test_host_port(address: str, expected: tuple[str, int]) -> None:
    assert split_host_port(address, 1234) == expected
