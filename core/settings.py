"""Typed, frozen settings read from the environment (pydantic-settings).

Every part runs embedded unless its variable points at a real service:

======================== ================================ =====================================
variable                 embedded default                 distributed example
======================== ================================ =====================================
KAFKA_BOOTSTRAP_SERVERS  (unset: start Tansu on loopback) ``kafka-1:9092,kafka-2:9092``
CLICKHOUSE_URL           (unset: chDB in the data dir)    ``https://user@ch.example:8443/rf``
OBJECT_STORE_URL         ``file://<data dir>/objects``    ``s3://heimdall-models``
SCHEMA_REGISTRY_URL      (unset: single-object encoding)  ``http://registry:8081``
======================== ================================ =====================================

Secrets (passwords, registry credentials) are ``SecretStr``: they print as ``**********``
and :meth:`HeimdallSettings.describe` masks a password written inside a URL.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from heimdall.core.errors import ConfigError


def mask_url(url: str | None) -> str | None:
    """Return ``url`` with any password replaced by ``***`` (``http://u:***@host``)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


#: ``KAFKA_SECURITY_PROTOCOL`` values (librdkafka's ``security.protocol``).
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: ``KAFKA_SASL_MECHANISM`` values that librdkafka and aiokafka (Faust) both speak with a
#: username and password.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaSettings(BaseSettings):
    """Where the broker is and how to authenticate (``KAFKA_*``).

    ``security_protocol`` SSL or SASL_SSL encrypts the connection (TLS): the broker's
    certificate is checked against ``ssl_ca_location`` (unset: the system's CA store) and,
    with ``ssl_certificate_location`` and ``ssl_key_location``, this client presents its own
    certificate (mutual TLS). SASL_PLAINTEXT or SASL_SSL authenticates with
    ``sasl_mechanism``, ``sasl_username`` and ``sasl_password``. Passwords are
    :class:`~pydantic.SecretStr`: they never appear in a repr, a log line or a command line.
    """

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True, extra="ignore")

    bootstrap_servers: str | None = Field(
        None, description="host:port list of a real cluster; unset starts the embedded broker"
    )
    security_protocol: str = Field(
        "PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"
    )
    sasl_mechanism: str | None = Field(None, description="PLAIN, SCRAM-SHA-256, SCRAM-SHA-512")
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_ca_location: Path | None = Field(
        None, description="PEM file of the CA(s) that signed the broker's certificate"
    )
    ssl_certificate_location: Path | None = Field(
        None, description="PEM client certificate, for brokers that require client TLS auth"
    )
    ssl_key_location: Path | None = Field(None, description="PEM private key of that certificate")
    ssl_key_password: SecretStr | None = Field(None, description="password of an encrypted key")
    ssl_check_hostname: bool = Field(
        True, description="check the broker's certificate names the host connected to"
    )
    compression_type: str = Field("zstd", description="producer compression: none, lz4, zstd")
    session_timeout_ms: int = Field(6000, description="consumer-group session timeout")
    fetch_max_wait_ms: int = Field(
        100, ge=1, description="longest a fetch waits for data (Tansu always waits this long)"
    )

    @field_validator("security_protocol")
    @classmethod
    def _known_protocol(cls, v: str) -> str:
        v = v.strip().upper()
        if v not in SECURITY_PROTOCOLS:
            raise ValueError(f"must be one of {', '.join(SECURITY_PROTOCOLS)}, not {v!r}")
        return v

    @field_validator("sasl_mechanism")
    @classmethod
    def _known_mechanism(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip().upper()
        if v not in SASL_MECHANISMS:
            raise ValueError(f"must be one of {', '.join(SASL_MECHANISMS)}, not {v!r}")
        return v

    @model_validator(mode="after")
    def _complete(self) -> KafkaSettings:
        if self.embedded and self.security_protocol != "PLAINTEXT":
            raise ValueError(
                f"security_protocol {self.security_protocol} needs KAFKA_BOOTSTRAP_SERVERS: "
                "the embedded broker (Tansu 0.6) speaks only PLAINTEXT on loopback"
            )
        if self.sasl and not (self.sasl_mechanism and self.sasl_username and self.sasl_password):
            raise ValueError(
                f"security_protocol {self.security_protocol} needs KAFKA_SASL_MECHANISM, "
                "KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"
            )
        if (self.ssl_certificate_location is None) != (self.ssl_key_location is None):
            raise ValueError(
                "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION go together"
            )
        for name in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location"):
            path = getattr(self, name)
            if self.tls and path is not None and not Path(path).is_file():
                raise ValueError(f"KAFKA_{name.upper()}: no file {path}")
        return self

    @property
    def embedded(self) -> bool:
        return not self.bootstrap_servers

    @property
    def tls(self) -> bool:
        """Whether connections are encrypted (SSL or SASL_SSL)."""
        return self.security_protocol in ("SSL", "SASL_SSL")

    @property
    def sasl(self) -> bool:
        """Whether connections authenticate with SASL (SASL_PLAINTEXT or SASL_SSL)."""
        return self.security_protocol.startswith("SASL_")

    def client_config(self, bootstrap_servers: str) -> dict[str, Any]:
        """librdkafka settings common to producers, consumers and the admin client.

        The result holds the SASL and key passwords in clear (librdkafka needs them): pass it
        to a client, never log it.
        """
        conf: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl:
            conf["sasl.mechanism"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            assert self.sasl_password is not None  # checked by _complete
            conf["sasl.password"] = self.sasl_password.get_secret_value()
        if self.tls:
            if self.ssl_ca_location is not None:
                conf["ssl.ca.location"] = str(self.ssl_ca_location)
            if self.ssl_certificate_location is not None:
                conf["ssl.certificate.location"] = str(self.ssl_certificate_location)
                conf["ssl.key.location"] = str(self.ssl_key_location)
            if self.ssl_key_password is not None:
                conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none"
            )
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """The same TLS settings as an :class:`ssl.SSLContext` (for aiokafka, i.e. Faust);
        ``None`` unless the protocol is SSL or SASL_SSL."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=str(self.ssl_ca_location) if self.ssl_ca_location else None,
        )
        if self.ssl_certificate_location is not None:
            ctx.load_cert_chain(
                str(self.ssl_certificate_location),
                str(self.ssl_key_location),
                password=(
                    self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
                ),
            )
        ctx.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            ctx.verify_mode = ssl.CERT_REQUIRED  # the chain is still checked
        return ctx

    def to_env(self, include_secrets: bool = False) -> dict[str, str]:
        """The security settings as ``KAFKA_*`` variables, passwords only if asked for."""
        env = {"KAFKA_SECURITY_PROTOCOL": self.security_protocol}
        for name in (
            "sasl_mechanism",
            "sasl_username",
            "ssl_ca_location",
            "ssl_certificate_location",
            "ssl_key_location",
        ):
            value = getattr(self, name)
            if value is not None:
                env[f"KAFKA_{name.upper()}"] = str(value)
        env["KAFKA_SSL_CHECK_HOSTNAME"] = str(self.ssl_check_hostname).lower()
        if include_secrets:
            for name in ("sasl_password", "ssl_key_password"):
                secret = getattr(self, name)
                if secret is not None:
                    env[f"KAFKA_{name.upper()}"] = secret.get_secret_value()
        return env


class ClickHouseSettings(BaseSettings):
    """Measurement history store (``CLICKHOUSE_*``)."""

    model_config = SettingsConfigDict(env_prefix="CLICKHOUSE_", frozen=True, extra="ignore")

    url: str | None = Field(
        None, description="http(s)://[user@]host:port[/database]; unset opens chDB in the data dir"
    )
    password: SecretStr | None = Field(None, description="password for CLICKHOUSE_URL")
    database: str = Field("heimdall", description="database holding Heimdall's tables")

    @model_validator(mode="before")
    @classmethod
    def _password_out_of_url(cls, data: Any) -> Any:
        """A password written in the URL moves to ``password`` so the URL can be shown."""
        if isinstance(data, dict) and data.get("url"):
            parts = urlsplit(str(data["url"]))
            if parts.password is not None:
                data = dict(data)
                data.setdefault("password", parts.password)
                data["url"] = mask_url(str(data["url"]))
        return data

    def url_and_password(self) -> tuple[str | None, str | None]:
        pw = self.password.get_secret_value() if self.password else None
        return (self.url.replace(":***@", "@") if self.url else None), pw


class ObjectStoreSettings(BaseSettings):
    """Model registry and IQ archive (``OBJECT_STORE_*``)."""

    model_config = SettingsConfigDict(env_prefix="OBJECT_STORE_", frozen=True, extra="ignore")

    url: str | None = Field(
        None, description="file://… or s3://bucket/prefix; unset is <data dir>/objects"
    )
    endpoint_url: str | None = Field(None, description="S3 endpoint for MinIO or a local S3 server")
    key: str | None = None
    secret: SecretStr | None = None


class SchemaRegistrySettings(BaseSettings):
    """Confluent Schema Registry (``SCHEMA_REGISTRY_*``); unset: Avro single-object encoding."""

    model_config = SettingsConfigDict(env_prefix="SCHEMA_REGISTRY_", frozen=True, extra="ignore")

    url: str | None = Field(None, description="http(s)://host:port, or mock://name in tests")
    basic_auth: SecretStr | None = Field(None, description="user:password for the registry")

    def client_conf(self) -> dict[str, Any]:
        """``SchemaRegistryClient`` settings: the URL and, when set, the basic auth
        (``basic.auth.user.info``, in clear: pass it to the client, never log it)."""
        conf: dict[str, Any] = {}
        if self.url:
            conf["url"] = self.url
        if self.basic_auth is not None:
            conf["basic.auth.user.info"] = self.basic_auth.get_secret_value()
        return conf


class TopicNames(BaseModel):
    """Topic names (``HEIMDALL_TOPICS__IQ=…`` and so on)."""

    model_config = ConfigDict(frozen=True)

    iq: str = "rf.iq.v1"
    features: str = "rf.features.v1"
    observations: str = "rf.observations.v1"
    localizations: str = "rf.localizations.v1"
    truth: str = "rf.truth.v1"
    receivers: str = "rf.receivers.v1"
    models: str = "rf.models.v1"
    dlq: str = "rf.dlq.v1"
    waterfall: str = "rf.waterfall.v1"
    audio: str = "rf.audio.v1"
    snippets: str = "rf.snippets.v1"
    """GPS-timed IQ chunks of detected emissions, keyed by channel (for in-stream TDOA)."""

    def all(self) -> list[str]:
        return list(self.model_dump().values())


class HeimdallSettings(BaseSettings):
    """Everything Heimdall reads from the environment (``HEIMDALL_*`` plus the service groups)."""

    model_config = SettingsConfigDict(
        env_prefix="HEIMDALL_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    data_dir: Path = Field(Path(".heimdall"), description="embedded state: chDB, objects, logs")
    streams_app_id: str = Field(
        "heimdall-streams", description="Faust app id: consumer group and internal topic prefix"
    )
    partitions: int = Field(3, ge=1, le=256, description="partitions of each topic it creates")
    assoc_window_s: float = Field(1.0, gt=0, description="association window length")
    assoc_min_receivers: int = Field(4, ge=3, description="receivers an observation needs")
    max_chunk_samples: int = Field(1 << 20, description="larger IQ chunks are refused to the DLQ")
    model_name: str = Field("setnet", description="model the localize stage runs (rf.models.v1)")
    track: bool = Field(True, description="also publish each method's estimates tracked in time")
    track_accel_psd: float = Field(
        0.1, gt=0, description="tracker's white-acceleration spectral density, m^2/s^3"
    )
    track_max_gap_s: float = Field(60.0, gt=0, description="a longer gap starts a new track")
    tdoa: bool = Field(
        True, description="forward GPS-timed IQ of detected channels to the in-stream TDOA stage"
    )
    tdoa_window_s: float = Field(
        30.0,
        gt=0,
        description="longest TDOA integration block per channel (it also ends when its "
        "receivers go quiet)",
    )
    tdoa_method: Literal["xcorr", "dcf77-pn"] = Field(
        "xcorr", description="TDOA lags in the stream: xcorr (any emission) or dcf77-pn"
    )
    tdoa_max_receivers: int = Field(
        8,
        ge=3,
        le=64,
        description="most receivers a TDOA block correlates, the strongest by SNR (N receivers "
        "are N(N-1)/2 pairs)",
    )
    batch_max_events: int = Field(
        256, ge=1, le=100_000, description="most events a stream agent takes in one batch"
    )
    restart_max: int = Field(
        5,
        ge=0,
        description="restarts of one child of `heimdall up` within restart_window_s "
        "before its next death counts as a crash loop and the run ends",
    )
    restart_window_s: float = Field(60.0, gt=0, description="crash-loop window, s")
    restart_backoff_s: float = Field(
        1.0, ge=0, description="delay before restarting a dead child, doubled per recent restart"
    )
    restart_backoff_max_s: float = Field(30.0, ge=0, description="longest restart delay, s")
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="serve Prometheus metrics on this port (0: off); `heimdall up` gives its "
        "children the following ports",
    )
    metrics_host: str = Field("127.0.0.1", description="address the metrics endpoint binds")
    log_level: str = Field("WARNING", description="Python logging level")
    topics: TopicNames = Field(default_factory=TopicNames)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    clickhouse: ClickHouseSettings = Field(default_factory=ClickHouseSettings)
    object_store: ObjectStoreSettings = Field(default_factory=ObjectStoreSettings)
    schema_registry: SchemaRegistrySettings = Field(
        default_factory=lambda: SchemaRegistrySettings()
    )

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, v: str) -> str:
        v = v.upper()
        if v not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"HEIMDALL_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, not {v!r}")
        return v

    @property
    def object_store_url(self) -> str:
        if self.object_store.url:
            return self.object_store.url
        return (self.data_dir.resolve() / "objects").as_uri()

    @property
    def chdb_path(self) -> Path:
        return self.data_dir.resolve() / "chdb"

    def to_env(self, include_secrets: bool = False) -> dict[str, str]:
        """The settings as environment variables, for child processes.

        Secrets are written out only with ``include_secrets`` (``heimdall up`` passes them to
        its children in their environment, never on their command line, where ``ps`` shows
        them to every user; a process's environment is readable only by its owner).
        """
        env = {
            f"HEIMDALL_{name.upper()}": str(value)
            for name, value in self.model_dump(
                include={
                    "data_dir",
                    "streams_app_id",
                    "partitions",
                    "assoc_window_s",
                    "assoc_min_receivers",
                    "max_chunk_samples",
                    "log_level",
                    "model_name",
                    "track",
                    "track_accel_psd",
                    "track_max_gap_s",
                    "batch_max_events",
                    "tdoa",
                    "tdoa_window_s",
                    "tdoa_method",
                    "tdoa_max_receivers",
                    "metrics_host",
                }
            ).items()
        }
        env.update(
            {f"HEIMDALL_TOPICS__{k.upper()}": v for k, v in self.topics.model_dump().items()}
        )
        if self.kafka.bootstrap_servers:
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.kafka.bootstrap_servers
        env.update(self.kafka.to_env(include_secrets))
        if self.schema_registry.url:
            env["SCHEMA_REGISTRY_URL"] = self.schema_registry.url
        if include_secrets and self.schema_registry.basic_auth is not None:
            env["SCHEMA_REGISTRY_BASIC_AUTH"] = self.schema_registry.basic_auth.get_secret_value()
        env["KAFKA_FETCH_MAX_WAIT_MS"] = str(self.kafka.fetch_max_wait_ms)
        env["KAFKA_SESSION_TIMEOUT_MS"] = str(self.kafka.session_timeout_ms)
        return env

    def describe(self) -> dict[str, str]:
        """Where each part runs, safe to print (no secrets)."""
        return {
            "kafka": self.kafka.bootstrap_servers or "embedded (Tansu on loopback)",
            "clickhouse": mask_url(self.clickhouse.url) or f"embedded (chDB at {self.chdb_path})",
            "object store": mask_url(self.object_store_url) or "",
            "schema registry": mask_url(self.schema_registry.url)
            or "none (Avro single-object encoding)",
        }


def load_settings(**overrides: Any) -> HeimdallSettings:
    """Read the settings; a wrong variable becomes one :class:`ConfigError` line naming it."""
    from pydantic import ValidationError

    try:
        return HeimdallSettings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = [str(p).upper() for p in err["loc"]]
        prefix = _ENV_PREFIX.get(exc.title)
        if prefix is None and loc and loc[0].lower() in _GROUP_PREFIX:
            prefix, loc = _GROUP_PREFIX[loc[0].lower()], loc[1:]
        where = (prefix or "HEIMDALL_") + "__".join(loc)
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{where.rstrip('_')}: {msg}") from None


#: Environment prefix of each settings group, to name the variable a validation error is about.
_ENV_PREFIX = {
    "KafkaSettings": "KAFKA_",
    "ClickHouseSettings": "CLICKHOUSE_",
    "ObjectStoreSettings": "OBJECT_STORE_",
    "SchemaRegistrySettings": "SCHEMA_REGISTRY_",
}
_GROUP_PREFIX = {
    "kafka": "KAFKA_",
    "clickhouse": "CLICKHOUSE_",
    "object_store": "OBJECT_STORE_",
    "schema_registry": "SCHEMA_REGISTRY_",
}
