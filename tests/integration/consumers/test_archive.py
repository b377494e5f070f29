"""The archive and replay against the real embedded broker.

Events are IQ chunks of three receivers, 0.1 s apart in event time (the Kafka timestamp),
over an hour boundary (so the archiver splits files by hour); both partitions are used.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import OFFSET_BEGINNING, TopicPartition

from heimdall.consumers.archive import ArchiveWriter
from heimdall.consumers.archive_store import ArchiveSettings, ArchiveStore
from heimdall.consumers.replay import OFFSET, PARTITION, TOPIC, replay
from heimdall.core import kafka
from heimdall.core.errors import ConfigError
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import ClockSource, IqChunk, Position, SampleFormat
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration

#: 2026-12-04T07:59:58Z: the chunks run over 08:00
T0_NS = 1_796_371_198_000_000_000
STEP_NS = 100_000_000
RECEIVERS = ("rx-a", "rx-b", "rx-d")  # librdkafka crc32 % 2: partitions 0, 0, 1


def _chunk(rx: str, seq: int, rng: np.random.Generator) -> IqChunk:
    iq = (rng.standard_normal(240) + 1j * rng.standard_normal(240)).astype(np.complex64) * 0.1
    return IqChunk(
        receiver_id=rx, seq=seq, t_ns=T0_NS + seq * STEP_NS, clock=ClockSource.GPS,
        center_freq_hz=77.5e3, sample_rate_hz=12e3, sample_format=SampleFormat.CI16, iq=iq,
        full_scale_dbm=-10.0, position=Position(lat_deg=50.0, lon_deg=9.0, alt_m=0.0),
    )  # fmt: skip


def _publish(settings: HeimdallSettings, n_per_rx: int, first_seq: int = 0) -> list[IqChunk]:
    rng = np.random.default_rng(first_seq + 7)
    pub = Publisher(settings)
    chunks = []
    for seq in range(first_seq, first_seq + n_per_rx):
        for rx in RECEIVERS:
            c = _chunk(rx, seq, rng)
            pub.publish(settings.topics.iq, rx, c, t_ns=c.t_ns)
            chunks.append(c)
    assert pub.flush() == 0
    return chunks


def _read_topic(settings: HeimdallSettings, topic: str, n: int, timeout_s: float = 30.0):
    """Every message of ``topic`` from the beginning, until ``n`` arrived (or the timeout)."""
    c = kafka.consumer(settings, f"read-{new_event_id()}")
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in md.partitions])
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            out += [m for m in c.consume(500, timeout=0.2) if m.error() is None]
        time.sleep(0.5)  # anything beyond n would be a duplicate: read it too
        out += [m for m in c.consume(500, timeout=0.5) if m.error() is None]
        return out
    finally:
        c.close()


def _run_archiver(settings: HeimdallSettings, store: ArchiveStore, until_consumed: int, **kw):
    archive = ArchiveSettings(roll_s=0.5, drain_s=2.0, group_id=f"arch-{new_event_id()}")
    w = ArchiveWriter(settings, archive, store, **kw)
    stop = threading.Event()
    th = threading.Thread(target=w.run, args=(stop,), name="archiver")
    th.start()
    deadline = time.monotonic() + 60
    while w.stats.consumed < until_consumed and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    th.join(30)
    assert not th.is_alive()
    return w


@pytest.fixture
def topics_ready(settings: HeimdallSettings) -> Iterator[HeimdallSettings]:
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    yield settings


def _ids(serde: Serde, values) -> list[str]:
    return [serde.decode(v, IqChunk).event_id for v in values]


def test_archive_then_replay_from_archive_publishes_exactly_the_range(
    topics_ready: HeimdallSettings, tmp_path: Path
) -> None:
    settings = topics_ready
    chunks = _publish(settings, 40)  # 120 events over 4 s, across 08:00:00
    store = ArchiveStore.from_settings(settings)  # <data dir>/objects/archive
    w = _run_archiver(settings, store, len(chunks))
    assert w.stats.events_written == len(chunks)
    files = store.files(settings.topics.iq)
    assert {f.hour.hour for f in files} == {7, 8}  # split at the hour
    assert {f.partition for f in files} == {0, 1}

    t1, t2 = T0_NS + 13 * STEP_NS, T0_NS + 31 * STEP_NS  # seq 13..30, over the boundary
    want = [c for c in chunks if t1 <= c.t_ns < t2]
    into = f"{settings.topics.iq}.replayed"
    res = replay(settings, settings.topics.iq, t1, t2, into=into, from_archive=True)
    assert res.events == len(want) == 54 and res.problems == []
    got = _read_topic(settings, into, len(want))
    serde = Serde()
    assert sorted(_ids(serde, [m.value() for m in got])) == sorted(c.event_id for c in want)
    by_id = {c.event_id: c for c in chunks}
    for m in got:
        c = by_id[serde.decode(m.value(), IqChunk).event_id]
        assert m.key() == c.receiver_id.encode()
        assert m.timestamp()[1] == c.t_ns // 1_000_000  # event time kept
        h = dict(m.headers())
        assert h[TOPIC] == settings.topics.iq.encode()
        assert int(h[OFFSET]) >= 0 and int(h[PARTITION]) in (0, 1)
    # the values are the bytes that were archived, and those are the broker's bytes
    src = {
        (m.partition(), m.offset()): m.value()
        for m in _read_topic(settings, settings.topics.iq, 120)
    }
    for m in got:
        h = dict(m.headers())
        assert m.value() == src[(int(h[PARTITION]), int(h[OFFSET]))]


def test_broker_replay_by_time_and_bad_input(topics_ready: HeimdallSettings) -> None:
    settings = topics_ready
    chunks = _publish(settings, 30)
    t1, t2 = T0_NS + 5 * STEP_NS, T0_NS + 12 * STEP_NS
    want = sorted(c.event_id for c in chunks if t1 <= c.t_ns < t2)
    into = f"{settings.topics.iq}.from-broker"
    res = replay(settings, settings.topics.iq, t1, t2, into=into, speed=None)
    assert res.events == len(want) == 21
    got = _read_topic(settings, into, len(want))
    assert sorted(_ids(Serde(), [m.value() for m in got])) == want

    with pytest.raises(ConfigError, match="into itself"):
        replay(settings, settings.topics.iq, t1, t2, into=settings.topics.iq)
    with pytest.raises(ConfigError, match="empty time range"):
        replay(settings, settings.topics.iq, t2, t1, into=into)
    empty = replay(settings, settings.topics.iq, T0_NS - 10**12, T0_NS - 10**11, into=into)
    assert empty.events == 0


def test_paced_replay_takes_the_events_time(topics_ready: HeimdallSettings) -> None:
    settings = topics_ready
    _publish(settings, 10)  # 0.9 s of event time
    into = f"{settings.topics.iq}.paced"
    t = time.monotonic()
    res = replay(settings, settings.topics.iq, T0_NS, T0_NS + 10**10, into=into, speed=3.0)
    wall = time.monotonic() - t
    assert res.events == 30
    assert res.wall_s >= 0.9 / 3.0 and wall >= res.wall_s


def test_files_written_but_not_committed_are_not_written_again(
    topics_ready: HeimdallSettings, tmp_path: Path
) -> None:
    """A crash between a file's rename and its commit: the restart resumes after the file."""
    settings = topics_ready
    chunks = _publish(settings, 20)
    store = ArchiveStore.from_settings(settings)  # <data dir>/objects/archive
    group = f"arch-{new_event_id()}"
    archive = ArchiveSettings(roll_s=0.5, drain_s=2.0, group_id=group)
    first = ArchiveWriter(settings, archive, store, commit=False)
    stop = threading.Event()
    th = threading.Thread(target=first.run, args=(stop,))
    th.start()
    while first.stats.consumed < len(chunks):
        time.sleep(0.1)
    stop.set()
    th.join(30)
    assert first.stats.commits == 0 and first.stats.events_written == len(chunks)
    more = _publish(settings, 10, first_seq=20)
    second = ArchiveWriter(settings, archive, store)
    stop = threading.Event()
    th = threading.Thread(target=second.run, args=(stop,))
    th.start()
    deadline = time.monotonic() + 60
    while second.stats.events_written < len(more) and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    th.join(30)
    assert second.stats.events_written == len(more)
    archived = list(store.events(settings.topics.iq, 0, 2**62, lambda c: pytest.fail(str(c))))
    ids = _ids(Serde(), [e.value for e in archived])
    assert sorted(ids) == sorted(c.event_id for c in chunks + more)


def test_archiver_killed_mid_stream_and_restarted_writes_each_event_once(
    topics_ready: HeimdallSettings,
) -> None:
    """SIGKILL the archiver process while events flow, restart it: every offset of every
    partition is in exactly one file (counted in the raw files, not through the reader's
    de-duplication), and every published event is there."""
    import collections
    import os
    import signal
    import subprocess
    import sys

    from heimdall.consumers.archive_files import read_ocf

    settings = topics_ready
    store = ArchiveStore.from_settings(settings)
    env = dict(os.environ)
    env.update(settings.to_env())
    env.update(
        HEIMDALL_ARCHIVE_ROLL_S="0.3",
        HEIMDALL_ARCHIVE_DRAIN_S="3",
        HEIMDALL_ARCHIVE_GROUP_ID=f"arch-{new_event_id()}",
        HEIMDALL_LOG_LEVEL="INFO",
    )

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "heimdall.consumers.archive"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    published: list[IqChunk] = []
    done = threading.Event()

    def produce() -> None:
        for batch in range(40):  # 40 × 3 × 3 events, one batch every 0.25 s
            published.extend(_publish(settings, 3, first_seq=3 * batch))
            time.sleep(0.25)
        done.set()

    def archived() -> int:
        return sum(f.last_offset - f.first_offset + 1 for f in store.files(settings.topics.iq))

    proc = start()
    producer = threading.Thread(target=produce, name="producer")
    producer.start()
    try:
        deadline = time.monotonic() + 60
        while len(store.files(settings.topics.iq)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(store.files(settings.topics.iq)) >= 3, "the archiver wrote nothing"
        proc.send_signal(signal.SIGKILL)  # mid-stream: no drain, no commit of what is open
        proc.wait(10)
        killed_at = archived()
        proc = start()
        producer.join(60)
        assert done.is_set()
        deadline = time.monotonic() + 60
        while archived() < len(published) and time.monotonic() < deadline:
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        producer.join(60)
    assert 0 < killed_at < len(published)
    seen: collections.Counter[tuple[int, int]] = collections.Counter()
    values = []
    for f in store.files(settings.topics.iq):
        for e in read_ocf(store.fs.cat_file(f.path), f.path, lambda c: pytest.fail(str(c))):
            seen[(e.partition, e.offset)] += 1
            values.append(e.value)
    assert max(seen.values()) == 1  # nothing twice
    for p in {p for p, _ in seen}:  # nothing skipped: offsets 0..n-1 of each partition
        offsets = sorted(o for q, o in seen if q == p)
        assert offsets == list(range(len(offsets)))
    assert sorted(_ids(Serde(), values)) == sorted(c.event_id for c in published)


def test_cli_archive_ls_and_replay_exit_codes(topics_ready: HeimdallSettings) -> None:
    from typer.testing import CliRunner

    from heimdall.infra.cli import app

    settings = topics_ready
    chunks = _publish(settings, 4)
    store = ArchiveStore.from_settings(settings)
    _run_archiver(settings, store, len(chunks))
    runner = CliRunner()
    env = settings.to_env()
    res = runner.invoke(app, ["archive", "ls", "--topic", "iq", "--json"], env=env)
    assert res.exit_code == 0, res.output
    import json

    rows = [json.loads(line) for line in res.stdout.splitlines()]
    assert sum(r["events"] for r in rows) == len(chunks)
    assert min(r["min_timestamp_ms"] for r in rows) == T0_NS // 1_000_000

    t0 = "2026-12-04T07:59:58Z"  # T0_NS
    args = ["replay", "iq", "--from", t0, "--to", "2026-12-04T07:59:58.2Z", "--fast"]
    res = runner.invoke(app, [*args, "--from-archive", "--into", "out-a"], env=env)
    assert res.exit_code == 0, res.output
    assert "replay: 6 events" in res.stderr
    res = runner.invoke(
        app, [*args[:2], "--from", "2020-01-01", "--to", "2020-01-02", "--into", "x"], env=env
    )
    assert res.exit_code == 1 and "replay: no events of" in res.stderr
    res = runner.invoke(app, [*args, "--into", "iq"], env=env)
    assert isinstance(res.exception, ConfigError) and "into itself" in str(res.exception)


def test_replay_from_archive_with_a_corrupt_file_replays_the_rest(
    topics_ready: HeimdallSettings,
) -> None:
    from fastavro import block_reader

    from heimdall.consumers.archive_files import read_ocf

    settings = topics_ready
    chunks = _publish(settings, 12)
    store = ArchiveStore.from_settings(settings)
    _run_archiver(settings, store, len(chunks))
    files = store.files(settings.topics.iq)
    bad = files[len(files) // 2]
    data = bytearray(store.fs.cat_file(bad.path))
    before = {e.offset: e.value for e in read_ocf(bytes(data), bad.path, pytest.fail)}
    (block, *_) = list(block_reader(io.BytesIO(bytes(data))))
    data[block.offset + block.size // 2] ^= 0x01  # one bit inside its (only) block
    store.fs.pipe_file(bad.path, bytes(data))
    after = {e.offset for e in read_ocf(bytes(data), bad.path, lambda c: None)}
    lost = _ids(Serde(), [v for o, v in before.items() if o not in after])
    assert lost and len(lost) < len(chunks)
    into = f"{settings.topics.iq}.after-corruption"
    res = replay(settings, settings.topics.iq, 0, 2**62, into=into, from_archive=True, speed=None)
    assert len(res.problems) == 1
    assert res.problems[0].startswith(f"{bad.path}: unreadable at byte {block.offset}: ")
    got = _read_topic(settings, into, len(chunks) - len(lost))
    assert sorted(_ids(Serde(), [m.value() for m in got])) == sorted(
        c.event_id for c in chunks if c.event_id not in set(lost)
    )


class _FlakyStore(ArchiveStore):
    """An archive whose first ``fail`` writes raise (an object store that is briefly down)."""

    def __init__(self, base: ArchiveStore, fail: int) -> None:
        super().__init__(base.url, codec=base.codec)
        self.fail = fail

    def put(self, topic, events, registry_url=None):  # type: ignore[no-untyped-def]
        if self.fail > 0:
            self.fail -= 1
            raise OSError("object store unavailable")
        return super().put(topic, events, registry_url)


def test_failed_writes_are_retried_and_nothing_is_lost(topics_ready: HeimdallSettings) -> None:
    settings = topics_ready
    chunks = _publish(settings, 10)
    store = _FlakyStore(ArchiveStore.from_settings(settings), fail=2)
    w = _run_archiver(settings, store, len(chunks))
    assert w.stats.put_failures == 2 and w.stats.events_written == len(chunks)
    archived = list(store.events(settings.topics.iq, 0, 2**62, lambda c: pytest.fail(str(c))))
    assert sorted(_ids(Serde(), [e.value for e in archived])) == sorted(c.event_id for c in chunks)
