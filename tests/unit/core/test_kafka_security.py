"""KAFKA_SECURITY_PROTOCOL and friends map to librdkafka, to an SSLContext for Faust, and to
child environments, and secrets stay out of reprs, logs and command lines (no broker)."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import faust
import pytest

from heimdall.core.errors import ConfigError
from heimdall.core.settings import KafkaSettings, load_settings
from heimdall.streams.app import faust_broker_options
from tests.tls_certs import TlsFiles, make_tls_files

SASL_PW = "sasl-pw-5f1c"
KEY_PW = "key-pw-9a7e"
REG_AUTH = "reguser:reg-pw-77d2"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _kafka(**kw: object) -> KafkaSettings:
    return load_settings(kafka={"bootstrap_servers": "k:9093", **kw}).kafka


def test_plaintext_has_no_security_keys() -> None:
    conf = _kafka().client_config("k:9093")
    assert conf == {"bootstrap.servers": "k:9093", "security.protocol": "PLAINTEXT"}
    assert _kafka().ssl_context() is None


def test_ssl_with_client_certificate_maps_to_librdkafka(tls: TlsFiles) -> None:
    k = _kafka(
        security_protocol="ssl",
        ssl_ca_location=tls.ca_cert,
        ssl_certificate_location=tls.client_cert,
        ssl_key_location=tls.client_key,
    )
    conf = k.client_config("k:9093")
    assert conf["security.protocol"] == "SSL"
    assert conf["ssl.ca.location"] == str(tls.ca_cert)
    assert conf["ssl.certificate.location"] == str(tls.client_cert)
    assert conf["ssl.key.location"] == str(tls.client_key)
    assert conf["ssl.endpoint.identification.algorithm"] == "https"
    assert "sasl.mechanism" not in conf


def test_sasl_ssl_maps_both(tls: TlsFiles) -> None:
    k = _kafka(
        security_protocol="SASL_SSL",
        sasl_mechanism="scram-sha-512",
        sasl_username="heimdall",
        sasl_password=SASL_PW,
        ssl_ca_location=tls.ca_cert,
        ssl_check_hostname=False,
    )
    conf = k.client_config("k:9093")
    assert conf["sasl.mechanism"] == "SCRAM-SHA-512"
    assert conf["sasl.username"] == "heimdall"
    assert conf["sasl.password"] == SASL_PW
    assert conf["ssl.ca.location"] == str(tls.ca_cert)
    assert conf["ssl.endpoint.identification.algorithm"] == "none"


def test_sasl_plaintext_has_no_tls_keys() -> None:
    k = _kafka(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="u",
        sasl_password=SASL_PW,
    )
    conf = k.client_config("k:9093")
    assert not any(key.startswith("ssl.") for key in conf)
    assert k.ssl_context() is None


@pytest.mark.parametrize(
    ("kafka", "names"),
    [
        ({"security_protocol": "TLS"}, "KAFKA_SECURITY_PROTOCOL"),
        ({"sasl_mechanism": "GSSAPI"}, "KAFKA_SASL_MECHANISM"),
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "KAFKA_SASL_PASSWORD"),
        ({"security_protocol": "SSL", "ssl_ca_location": "/nonexistent/ca.pem"}, "no file"),
        ({"ssl_certificate_location": "/x.pem"}, "KAFKA_SSL_KEY_LOCATION"),
    ],
)
def test_bad_security_settings_are_one_clear_line(kafka: dict[str, str], names: str) -> None:
    with pytest.raises(ConfigError, match=names) as err:
        load_settings(kafka={"bootstrap_servers": "k:9093", **kafka})
    assert "\n" not in str(err.value)


def test_the_embedded_broker_is_plaintext_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SSL")
    with pytest.raises(ConfigError, match="needs KAFKA_BOOTSTRAP_SERVERS"):
        load_settings()


def test_bad_protocol_from_env_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "tls")
    with pytest.raises(ConfigError, match=r"^KAFKA_SECURITY_PROTOCOL: must be one of"):
        load_settings()


def test_ssl_context_verifies_the_broker_and_carries_the_client_cert(tls: TlsFiles) -> None:
    k = _kafka(
        security_protocol="SSL",
        ssl_ca_location=tls.ca_cert,
        ssl_certificate_location=tls.client_cert,
        ssl_key_location=tls.client_key,
    )
    ctx = k.ssl_context()
    assert ctx is not None
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert [c["subject"] for c in ctx.get_ca_certs()] == [((("commonName", "heimdall test CA"),),)]


def test_faust_gets_ssl_credentials(tls: TlsFiles) -> None:
    s = load_settings(
        kafka={
            "bootstrap_servers": "a:1,b:2",
            "security_protocol": "SSL",
            "ssl_ca_location": str(tls.ca_cert),
        }
    )
    opts = faust_broker_options(s)
    assert opts["broker"] == "heimdall://a:1;heimdall://b:2"
    creds = opts["broker_credentials"]
    assert isinstance(creds, faust.SSLCredentials)
    assert creds.protocol.value == "SSL"
    assert isinstance(creds.context, ssl.SSLContext)


@pytest.mark.parametrize(("protocol", "tls_on"), [("SASL_SSL", True), ("SASL_PLAINTEXT", False)])
def test_faust_gets_sasl_credentials(tls: TlsFiles, protocol: str, tls_on: bool) -> None:
    s = load_settings(
        kafka={
            "bootstrap_servers": "a:1",
            "security_protocol": protocol,
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": "heimdall",
            "sasl_password": SASL_PW,
            "ssl_ca_location": str(tls.ca_cert),
        }
    )
    creds = faust_broker_options(s)["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.protocol.value == protocol
    assert creds.mechanism.value == "SCRAM-SHA-256"
    assert creds.password == SASL_PW
    assert (creds.ssl_context is not None) == tls_on
    assert SASL_PW not in repr(creds)


def test_faust_plaintext_has_no_credentials() -> None:
    assert "broker_credentials" not in faust_broker_options(load_settings())


def test_registry_basic_auth_reaches_the_client_conf() -> None:
    s = load_settings(schema_registry={"url": "http://reg:8081", "basic_auth": REG_AUTH})
    assert s.schema_registry.client_conf() == {
        "url": "http://reg:8081",
        "basic.auth.user.info": REG_AUTH,
    }
    assert load_settings().schema_registry.client_conf() == {}


def test_secrets_stay_out_of_repr_logs_and_describe(
    tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    s = load_settings(
        kafka={
            "bootstrap_servers": "k:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "PLAIN",
            "sasl_username": "u",
            "sasl_password": SASL_PW,
            "ssl_ca_location": str(tls.ca_cert),
            "ssl_key_password": KEY_PW,
        },
        schema_registry={"url": "http://reg:8081", "basic_auth": REG_AUTH},
    )
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("heimdall.test").info("settings %s %r %s", s, s, s.describe())
    shown = repr(s) + str(s) + str(s.describe()) + caplog.text + s.model_dump_json()
    for secret in (SASL_PW, KEY_PW, REG_AUTH):
        assert secret not in shown


def test_to_env_writes_secrets_only_when_asked_and_round_trips(
    tls: TlsFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = load_settings(
        kafka={
            "bootstrap_servers": "k:9093",
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-256",
            "sasl_username": "u",
            "sasl_password": SASL_PW,
            "ssl_ca_location": str(tls.ca_cert),
            "ssl_certificate_location": str(tls.client_cert),
            "ssl_key_location": str(tls.client_key),
            "ssl_key_password": KEY_PW,
        },
        schema_registry={"url": "http://reg:8081", "basic_auth": REG_AUTH},
    )
    public = s.to_env()
    for secret in (SASL_PW, KEY_PW, REG_AUTH):
        assert secret not in str(public)
    env = s.to_env(include_secrets=True)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    again = load_settings()
    assert again.kafka == s.kafka
    assert again.schema_registry == s.schema_registry


def test_tls_file_paths_are_paths(tls: TlsFiles) -> None:
    k = _kafka(security_protocol="SSL", ssl_ca_location=str(tls.ca_cert))
    assert k.ssl_ca_location == Path(tls.ca_cert)
