"""SASL settings reach the real embedded broker.

Tansu 0.6.0 with ``--authentication`` requires SASL and offers only SCRAM-SHA-256 (PLAIN gets
"NoSharedMechanism"), but with the memory engine no user can be created (creating SCRAM
credentials needs an already authenticated connection). So this checks what can be checked:
our SASL_PLAINTEXT settings negotiate SCRAM-SHA-256 with the broker and are refused as an
unknown user, while a PLAINTEXT client is refused outright; the password appears in no log.
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import KafkaException

from heimdall.core import kafka
from heimdall.core.settings import load_settings
from heimdall.infra.broker import broker_command, die_with_parent, free_port

pytestmark = pytest.mark.integration

PASSWORD = "sasl-pw-0d3a"


@pytest.fixture(scope="module")
def auth_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path_factory.mktemp("tansu-auth") / "tansu.log"
    url = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(
        broker_command(url, "--authentication"),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    try:
        time.sleep(0.3)
        yield f"127.0.0.1:{port}", log
    finally:
        proc.terminate()
        proc.wait(10)


def _librdkafka_lines(admin: object, caplog: pytest.LogCaptureFixture) -> str:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and "SASL" not in caplog.text:
        admin.poll(0.2)  # type: ignore[attr-defined]  # serves the logger callback
    return caplog.text


def test_sasl_scram_settings_reach_the_broker(
    auth_broker: tuple[str, Path], caplog: pytest.LogCaptureFixture
) -> None:
    servers, log = auth_broker
    settings = load_settings(
        kafka={
            "bootstrap_servers": servers,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": "heimdall",
            "sasl_password": PASSWORD,
        }
    )
    with caplog.at_level(logging.DEBUG, logger="heimdall.kafka.librdkafka"):
        admin = kafka.admin(settings)
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=3)
        text = _librdkafka_lines(admin, caplog)
    assert "SASL SCRAM authentication failed: broker responded with unknown-user" in text
    assert PASSWORD not in text
    assert PASSWORD not in log.read_text(errors="replace")


def test_plaintext_is_refused_when_the_broker_requires_authentication(
    auth_broker: tuple[str, Path],
) -> None:
    settings = load_settings(kafka={"bootstrap_servers": auth_broker[0]})
    with pytest.raises(KafkaException):
        kafka.admin(settings).list_topics(timeout=3)
