"""Settings: embedded defaults, env overrides, secrets never printed."""

from __future__ import annotations

import pytest

from heimdall.core.errors import ConfigError
from heimdall.core.settings import load_settings, mask_url


def test_embedded_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in (
        "KAFKA_BOOTSTRAP_SERVERS",
        "CLICKHOUSE_URL",
        "OBJECT_STORE_URL",
        "SCHEMA_REGISTRY_URL",
    ):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.kafka.embedded
    assert s.clickhouse.url is None
    assert s.object_store_url.startswith("file://")
    assert s.schema_registry.url is None


def test_env_moves_parts_to_clusters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("CLICKHOUSE_URL", "https://alice:hunter2@ch:8443/rf")
    monkeypatch.setenv("OBJECT_STORE_URL", "s3://models/heimdall")
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://registry:8081")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "heimdall")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    s = load_settings()
    assert not s.kafka.embedded
    assert s.object_store_url == "s3://models/heimdall"
    shown = repr(s) + str(s.describe())
    assert "hunter2" not in shown and "s3cret" not in shown
    assert s.kafka.client_config("k1:9092")["sasl.password"] == "s3cret"


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HEIMDALL_PARTITIONS", "zero")
    with pytest.raises(ConfigError, match="HEIMDALL_PARTITIONS"):
        load_settings()


def test_mask_url() -> None:
    assert mask_url("http://u:p@h:1/db") == "http://u:***@h:1/db"
    assert mask_url("http://h:1") == "http://h:1"


def test_to_env_round_trips_without_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    s = load_settings(partitions=5, kafka={"bootstrap_servers": "b:1", "sasl_password": "s3cret"})
    env = s.to_env()
    assert "s3cret" not in str(env)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    again = load_settings()
    assert again.partitions == 5
    assert again.kafka.bootstrap_servers == "b:1"
    assert again.topics == s.topics
    assert again.data_dir == s.data_dir
