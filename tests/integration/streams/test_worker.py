"""The Faust worker against the real embedded broker: good chunks become measurements, bad
ones go to the dead-letter topic with their reason, and the stream keeps running."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.processes import Child, child_env
from heimdall.producers.publisher import Publisher
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.models import ClockSource, IqChunk, Measurement, Position, SampleFormat
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration


def chunk(rx: str, seq: int, iq: np.ndarray, rate_hz: float = 12_000.0) -> IqChunk:
    return IqChunk(
        receiver_id=rx,
        seq=seq,
        t_ns=1_800_000_000_000_000_000 + seq * 200_000_000,
        clock=ClockSource.GPS,
        center_freq_hz=145.5e6,
        sample_rate_hz=rate_hz,
        sample_format=SampleFormat.CF32,
        iq=iq.astype(np.complex64),
        full_scale_dbm=0.0,
        position=Position(lat_deg=45.0, lon_deg=7.5, alt_m=100.0),
    )


def read(settings: HeimdallSettings, topic: str, n: int, timeout_s: float) -> list:
    c = kafka.consumer(settings, f"reader-{topic}")
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(out) < n and time.monotonic() < deadline:
            out += [m for m in c.consume(100, timeout=0.5) if not m.error()]
    finally:
        c.close()
    return out


def test_good_chunks_measured_bad_ones_dead_lettered(
    settings: HeimdallSettings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"max_chunk_samples": 4800})
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    rng = np.random.default_rng(7)
    n = 2400
    noise = (rng.normal(size=n) + 1j * rng.normal(size=n)) * np.sqrt(1e-13 / 2)  # -100 dBm
    tone = np.sqrt(1e-6) * np.exp(2j * np.pi * 1000.0 * np.arange(n) / 12_000.0)  # -60 dBm
    nan = noise.copy()
    nan[10] = np.nan
    pub = Publisher(settings)
    t = settings.topics
    pub.publish(t.iq, "rx-1", chunk("rx-1", 0, noise + tone))
    pub.publish_raw(t.iq, b"rx-2", b"\x07garbage")
    pub.publish(t.iq, "rx-3", chunk("rx-3", 0, nan))
    pub.publish(t.iq, "rx-4", chunk("rx-4", 0, np.zeros(5000) + 1e-6))  # too many samples
    pub.publish(t.iq, "rx-5", chunk("rx-5", 0, noise, rate_hz=1e12))  # absurd sample rate
    pub.publish(t.iq, "rx-1", chunk("rx-1", 1, noise + tone))  # the stream goes on
    assert pub.flush() == 0

    worker = Child("streams", ["worker"], child_env(settings.to_env()), tmp_path / "w.log")
    worker.start()
    try:
        features = read(settings, t.features, 2, timeout_s=60)
        dead = read(settings, t.dlq, 4, timeout_s=30)
    finally:
        worker.stop()
    assert len(features) == 2, worker.tail()
    m = Serde().decode(features[0].value(), expect=Measurement)
    assert m.receiver_id == "rx-1" and m.detected
    assert m.power_dbm == pytest.approx(-60.0, abs=0.2)
    reasons = {
        d.key: d for d in (DeadLetter.from_message(x.key(), x.value(), x.headers()) for x in dead)
    }
    assert set(reasons) == {b"rx-2", b"rx-3", b"rx-4", b"rx-5"}
    assert "magic" in reasons[b"rx-2"].reason.lower()
    assert "nan" in reasons[b"rx-3"].reason.lower()
    assert "samples" in reasons[b"rx-4"].reason
    assert "sample_rate_hz" in reasons[b"rx-5"].reason
    assert reasons[b"rx-2"].value == b"\x07garbage"  # untouched
    assert {d.stage for d in reasons.values()} == {"features"}
    assert all(d.topic == t.iq for d in reasons.values())
