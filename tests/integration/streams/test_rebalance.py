"""Two Faust workers share the partitions of a live stream; partitions move between them twice
(a second worker joins, then the first leaves) while chunks keep arriving. Every chunk must
become exactly one measurement: none lost, none measured twice.

The agents ack and commit a batch only after its outputs are delivered
(:mod:`heimdall.streams.batching`); a revocation first processes and commits what is queued,
and after an assignment no event reaches an agent before the partitions are sought to their
committed offsets (:mod:`heimdall.streams.transport`). On failure the message names the
partition and offset of each chunk lost or measured twice.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.processes import Child, child_env
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import ClockSource, IqChunk, Measurement, Position, SampleFormat
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration

N_RECEIVERS = 8
RATE_HZ = 12_000.0
CHUNK_S = 0.2


def chunk(rx: int, seq: int, rng: np.random.Generator) -> IqChunk:
    n = int(RATE_HZ * CHUNK_S)
    iq = (rng.normal(size=n) + 1j * rng.normal(size=n)) * np.sqrt(1e-12 / 2)
    iq += np.sqrt(1e-8) * np.exp(2j * np.pi * 500.0 * np.arange(n) / RATE_HZ)
    return IqChunk(
        receiver_id=f"rx-{rx}",
        seq=seq,
        t_ns=1_800_000_000_000_000_000 + seq * int(CHUNK_S * 1e9),
        clock=ClockSource.GPS,
        center_freq_hz=145.5e6 + 25e3 * (rx % 4),
        sample_rate_hz=RATE_HZ,
        sample_format=SampleFormat.CI16,
        iq=iq.astype(np.complex64),
        full_scale_dbm=-30.0,
        position=Position(lat_deg=45.0 + 0.01 * rx, lon_deg=7.5, alt_m=100.0),
    )


class Feeder(threading.Thread):
    """Publishes one step (a chunk per receiver) every 50 ms until stopped; keeps the ids."""

    def __init__(self, settings: HeimdallSettings) -> None:
        super().__init__(name="rebalance-feeder")
        self.settings = settings
        self.ids: list[str] = []
        self.what: dict[str, str] = {}
        self.halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            pub = Publisher(self.settings)
            rng = np.random.default_rng(3)
            seq = 0
            while not self.halt.is_set():
                for rx in range(N_RECEIVERS):
                    c = chunk(rx, seq, rng)
                    pub.publish(self.settings.topics.iq, c.receiver_id, c)
                    self.ids.append(c.event_id)
                    self.what[c.event_id] = f"{c.receiver_id} seq {seq}"
                seq += 1
                self.halt.wait(0.05)
            assert pub.flush() == 0
        except BaseException as exc:  # reported by the test
            self.error = exc


def positions(settings: HeimdallSettings, chunk_ids: set[str]) -> dict[str, tuple[int, int]]:
    """(partition, offset) in rf.iq of each of ``chunk_ids``: to name them in a failure."""
    consumer = kafka.consumer(settings, "rebalance-positions")
    consumer.subscribe([settings.topics.iq])
    serde = Serde()
    found: dict[str, tuple[int, int]] = {}
    deadline = time.monotonic() + 20.0
    try:
        while len(found) < len(chunk_ids) and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                if not msg.error():
                    c = serde.decode(msg.value(), expect=IqChunk)
                    if c.event_id in chunk_ids:
                        found[c.event_id] = (msg.partition(), msg.offset())
    finally:
        consumer.close()
    return found


class Reader:
    """Reads rf.features from the beginning, counting measurements per source chunk."""

    def __init__(self, settings: HeimdallSettings, group_id: str = "rebalance-reader") -> None:
        self.consumer = kafka.consumer(settings, group_id)
        self.consumer.subscribe([settings.topics.features])
        self.serde = Serde()
        self.chunk_ids: Counter[str] = Counter()

    def poll(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for msg in self.consumer.consume(500, timeout=0.2):
                if not msg.error():
                    m = self.serde.decode(msg.value(), expect=Measurement)
                    assert msg.key() == m.channel_id.encode()  # keyed where it is made
                    self.chunk_ids[m.chunk_id] += 1


def test_two_workers_share_partitions_nothing_lost_nothing_twice(
    settings: HeimdallSettings, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"partitions": 4})
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    env = child_env(settings.to_env())
    a = Child("worker-a", ["worker"], env, tmp_path / "a.log")
    b = Child("worker-b", ["worker"], env, tmp_path / "b.log")
    feeder = Feeder(settings)
    reader = Reader(settings)
    try:
        a.start()
        feeder.start()

        def wait_for_growth(timeout_s: float) -> None:
            before = sum(reader.chunk_ids.values())
            deadline = time.monotonic() + timeout_s
            while sum(reader.chunk_ids.values()) < before + 50:
                assert time.monotonic() < deadline, f"no progress\n{a.tail()}\n{b.tail()}"
                assert feeder.error is None, feeder.error
                reader.poll(0.5)

        wait_for_growth(60.0)  # worker A alone
        b.start()
        reader.poll(12.0)  # B joins: partitions move from A to B
        wait_for_growth(30.0)
        a.stop()  # A leaves: its partitions move to B
        reader.poll(12.0)
        wait_for_growth(30.0)
        feeder.halt.set()
        feeder.join(30.0)
        assert feeder.error is None, feeder.error
        published = set(feeder.ids)
        deadline = time.monotonic() + 60.0
        while not published <= set(reader.chunk_ids) and time.monotonic() < deadline:
            reader.poll(1.0)
        reader.poll(2.0)  # anything measured twice arrives too
        assert b.running, b.tail()
    finally:
        feeder.halt.set()
        if feeder.is_alive():
            feeder.join(30.0)
        a.stop()
        b.stop()
        reader.consumer.close()
    missing = published - set(reader.chunk_ids)
    twice = {k: n for k, n in reader.chunk_ids.items() if n > 1}
    assert len(published) > 300
    if missing or twice:
        at = positions(settings, missing | set(twice))

        def named(ids: set[str]) -> str:
            """Per rf.iq partition: the offsets, and the chunks at the first ten."""
            by_partition: dict[int, list[tuple[int, str]]] = {}
            for k in ids:
                partition, offset = at.get(k, (-1, -1))
                by_partition.setdefault(partition, []).append((offset, feeder.what[k]))
            parts = []
            for p, v in sorted(by_partition.items()):
                v.sort()
                first = [w for _, w in v[:10]]
                parts.append(f"partition {p}: offsets {[o for o, _ in v]} ({first})")
            return "; ".join(parts)

        again = Reader(settings, "rebalance-reader-again")  # did the reader miss them?
        try:
            again.poll(20.0)
        finally:
            again.consumer.close()
        found = len(missing & set(again.chunk_ids))
        assert not missing, (
            f"{len(missing)} of {len(published)} never measured ({found} of them found in "
            f"rf.features when it is read again): {named(missing)}"
        )
        assert not twice, f"{len(twice)} of {len(published)} measured twice: {named(set(twice))}"
    assert set(reader.chunk_ids) == published
