"""The broker gone for a while: the producer buffers (within its bounds), resends when the
broker is back, and every chunk published arrives exactly once.

The outage is a :class:`~tests.pausable_proxy.PausableProxy` in front of a Tansu broker that
advertises the proxy's address: paused, it resets every connection and refuses new ones, as a
broker that went down would (the embedded broker keeps records in memory, so killing it would
lose them). The test's outage is ``HEIMDALL_TEST_BROKER_OUTAGE_S`` seconds (default 8); the
30 s of issue 15 was measured by hand with the same test (README "Outages").
"""

from __future__ import annotations

import collections
import logging
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings, TopicNames, load_settings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import broker_binary, die_with_parent, free_port
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat
from heimdall.schemas.serde import Serde
from tests.pausable_proxy import PausableProxy

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("HEIMDALL_TEST_BROKER_OUTAGE_S", "8"))
RATE_HZ = 50.0  # chunks per second, before, during and after the outage


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[HeimdallSettings, PausableProxy]]:
    tansu_port, proxy_port = free_port(), free_port()
    proc = subprocess.Popen(
        [
            broker_binary(), "broker",
            "--listener-url", f"tcp://127.0.0.1:{tansu_port}",
            "--advertised-listener-url", f"tcp://127.0.0.1:{proxy_port}",
            "--storage-engine", "memory://tansu/",
        ],
        stdout=(tmp_path / "tansu.log").open("ab"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, preexec_fn=die_with_parent,
    )  # fmt: skip
    unique = uuid.uuid4().hex[:10]
    settings = load_settings(
        data_dir=tmp_path / "heimdall",
        topics=TopicNames(**{k: f"t{unique}.{v}" for k, v in TopicNames().model_dump().items()}),
        partitions=2,
        kafka={"bootstrap_servers": f"127.0.0.1:{proxy_port}"},
    )
    try:
        time.sleep(0.3)
        with PausableProxy(proxy_port, tansu_port) as proxy:
            yield settings, proxy
    finally:
        proc.terminate()
        proc.wait(10)


def chunk(seq: int, iq: np.ndarray) -> IqChunk:
    return IqChunk(
        receiver_id=f"rx-{seq % 3}",
        seq=seq,
        t_ns=1_800_000_000_000_000_000 + seq * 20_000_000,
        clock=ClockSource.GPS,
        center_freq_hz=145.5e6,
        sample_rate_hz=12_000.0,
        sample_format=SampleFormat.CF32,
        iq=iq,
        full_scale_dbm=0.0,
        position=Position(lat_deg=45.0, lon_deg=7.5, alt_m=100.0),
    )


def read_ids(settings: HeimdallSettings, topic: str, n: int, timeout_s: float) -> list[str]:
    serde = Serde()
    c = kafka.consumer(settings, f"reader-{uuid.uuid4().hex[:8]}")
    c.subscribe([topic])
    out: list[str] = []
    deadline = time.monotonic() + timeout_s
    quiet_until = None
    try:
        while time.monotonic() < deadline:
            msgs = [m for m in c.consume(500, timeout=0.5) if not m.error()]
            out += [serde.decode(m.value()).event_id for m in msgs]
            if len(out) >= n:  # read on a little: a duplicate would come after
                quiet_until = quiet_until or time.monotonic() + 3.0
                if time.monotonic() > quiet_until:
                    break
    finally:
        c.close()
    return out


@pytest.mark.parametrize("buffer_max_messages", [None, 100], ids=["default-buffer", "full-buffer"])
def test_broker_outage_buffers_resends_and_delivers_each_chunk_once(
    proxied: tuple[HeimdallSettings, PausableProxy],
    caplog: pytest.LogCaptureFixture,
    buffer_max_messages: int | None,
) -> None:
    """With the default bound the outage's chunks wait in the buffer; with a 100-event bound
    the buffer fills, publishing waits (logged) and goes on after the outage: no loss either way.
    """
    settings, proxy = proxied
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    overrides = {}
    if buffer_max_messages is not None:
        overrides["queue.buffering.max.messages"] = buffer_max_messages
    publisher = Publisher(settings, Serde(), kafka.producer(settings, **overrides))
    iq = (np.random.default_rng(5).standard_normal(1200) * 0.1).astype(np.complex64)
    sent: list[str] = []
    stop = threading.Event()

    def publish() -> None:
        seq = 0
        t0 = time.monotonic()
        while not stop.is_set():
            c = chunk(seq, iq)
            publisher.publish(settings.topics.iq, c.receiver_id, c, c.t_ns)
            sent.append(c.event_id)
            seq += 1
            time.sleep(max(0.0, t0 + seq / RATE_HZ - time.monotonic()))

    thread = threading.Thread(target=publish, name="publisher-under-test")
    with caplog.at_level(logging.INFO):
        thread.start()
        time.sleep(2.0)
        delivered_before = publisher.stats.delivered
        proxy.pause()
        time.sleep(OUTAGE_S)
        during = len(sent)
        undelivered = len(publisher.producer)  # buffered, waiting for the broker
        proxy.resume()
        time.sleep(2.0)
        stop.set()
        thread.join(10)
        assert publisher.flush(60.0) == 0
    assert delivered_before > 0
    full = "producer buffer full" in caplog.text
    if buffer_max_messages is None:
        assert undelivered > RATE_HZ * OUTAGE_S / 2, "the outage's chunks were buffered"
        assert not full and publisher.stats.backpressure_waits == 0
    else:
        assert undelivered <= buffer_max_messages
        assert full and publisher.stats.backpressure_waits > 0
    assert len(sent) > during  # publishing went on after the outage
    assert publisher.stats.failed == 0
    assert publisher.stats.delivered == len(sent)
    got = read_ids(settings, settings.topics.iq, len(sent), timeout_s=60)
    twice = [i for i, n in collections.Counter(got).items() if n > 1]
    assert not twice, f"{len(twice)} chunks arrived twice"
    assert set(got) == set(sent) and len(got) == len(sent)
