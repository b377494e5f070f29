"""Archive write MB/s beside a plain fsspec write; replay events/s beside a raw produce.

Events are real ``rf.iq.v1`` values: the seed network's simulated chunks (2400 ci16 samples,
~9.7 KB framed), renumbered, keyed by receiver, stamped with their event time.

*Write*: the events are cut into files of ``FILE_EVENTS`` records of one partition, as the
archiver writes them, and each file is written with :meth:`ArchiveStore.put` (OCF in
memory, temporary name, rename) to the local file system (``file://``, a temporary
directory). "plain fsspec" writes the very same value bytes, one file per archive file,
with ``fs.pipe_file`` (no container, no rename): the floor for this file system. MB/s are
of payload (key + value bytes), the same numerator for every row. Reading back
(``ArchiveStore.events``, every record, CRC checked) is timed too.

*Replay*: a fresh embedded broker; the events are produced raw to ``rf.iq.v1`` with the
producer every stage uses (``kafka.producer``: idempotent, zstd) — the reference rate — then
replayed with ``replay(..., speed=None)`` (``--fast``) from the broker and from the archive
into other topics. Every target topic is created first with the source's partitions, as
``replay`` creates its target (not left to the broker's auto-creation, whose partition
count may differ). Each rate counts from the first
produce to the final flush; runs are interleaved and repeated (median and best): on the
shared development machine a configuration's rate moved by up to 2× between runs (the flush
is > 90 % of the time; the produce loop itself takes ~10 ms per 1,500 events).
"""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import T0_NS, Context, fmt, table
from bench.harness import broker_with_topics
from heimdall.consumers.archive_files import ArchivedEvent
from heimdall.consumers.archive_store import ArchiveStore
from heimdall.consumers.replay import ensure_target, replay
from heimdall.core import kafka
from heimdall.core.ids import new_event_id
from heimdall.producers.sim import Simulator, seed_network
from heimdall.producers.sim.stream import StreamGain, to_iq_chunk
from heimdall.schemas.serde import Serde

FILE_EVENTS = 500
PARTITIONS = 3


def iq_events(n: int) -> list[ArchivedEvent]:
    """``n`` IQ chunk records (5 simulated steps of the seed network, renumbered)."""
    sim = Simulator(seed_network(), seed=1)
    gain = StreamGain.for_simulator(sim)
    serde = Serde()
    base = [to_iq_chunk(c, gain) for s in sim.steps(T0_NS, 5) for c in s.chunks]
    step_ns = 5 * sim.scenario.chunk_ns
    out = []
    for i in range(n):
        c = base[i % len(base)]
        c = dataclasses.replace(
            c, event_id=new_event_id(), t_ns=c.t_ns + (i // len(base)) * step_ns
        )
        p = i % PARTITIONS
        out.append(
            ArchivedEvent(
                topic="rf.iq.v1",
                partition=p,
                offset=i // PARTITIONS,
                timestamp_ms=c.t_ns // 1_000_000,
                key=c.receiver_id.encode(),
                value=serde.encode(c),
            )
        )
    return out


def _files(events: list[ArchivedEvent]) -> list[list[ArchivedEvent]]:
    by_p: dict[int, list[ArchivedEvent]] = {}
    for e in events:
        by_p.setdefault(e.partition, []).append(e)
    return [ev[i : i + FILE_EVENTS] for ev in by_p.values() for i in range(0, len(ev), FILE_EVENTS)]


def _payload(events: list[ArchivedEvent]) -> int:
    return sum(len(e.value or b"") + len(e.key or b"") for e in events)


def run_write(ctx: Context, events: list[ArchivedEvent]) -> None:
    files = _files(events)
    mb = _payload(events) / 1e6
    t = table(
        "archive write to the local file system (file://), vs a plain fsspec write",
        ["write", "MB/s", "× plain", "stored / payload", "ms per file", "read MB/s"],
        f"{len(events):,} rf.iq.v1 events ({mb:.1f} MB payload) in {len(files)} files of "
        f"≤ {FILE_EVENTS}; MB/s of payload, best of 3",
    )
    with tempfile.TemporaryDirectory(prefix="heimdall-bench-archive-") as tmp:
        plain_root = Path(tmp) / "plain"
        store0 = ArchiveStore((Path(tmp) / "x").as_uri())
        fs = store0.fs

        def plain() -> float:
            best = float("inf")
            for r in range(3):
                t0 = time.perf_counter()
                for i, f in enumerate(files):
                    fs.makedirs(str(plain_root / str(r)), exist_ok=True)
                    fs.pipe_file(str(plain_root / str(r) / f"{i}.bin"), b"".join(
                        (e.key or b"") + (e.value or b"") for e in f))  # fmt: skip
                best = min(best, time.perf_counter() - t0)
            return best

        t_plain = plain()
        t.add_row("plain fsspec pipe_file", fmt(mb / t_plain), "1.00", "1.00",
                  fmt(t_plain / len(files) * 1e3, 2), "–")  # fmt: skip
        for codec in ("null", "zstandard", "lz4", "deflate"):
            best = float("inf")
            stored = 0
            store = store0
            for r in range(3):
                store = ArchiveStore((Path(tmp) / f"{codec}-{r}").as_uri(), codec=codec)
                t0 = time.perf_counter()
                stored = sum(store.put("rf.iq.v1", f).size_bytes for f in files)
                best = min(best, time.perf_counter() - t0)
            t0 = time.perf_counter()
            n = sum(1 for _ in store.events("rf.iq.v1", 0, 2**62))
            t_read = time.perf_counter() - t0
            assert n == len(events)
            t.add_row(
                f"ArchiveStore.put, OCF {codec}", fmt(mb / best), fmt(t_plain / best, 2),
                fmt(stored / (mb * 1e6), 2), fmt(best / len(files) * 1e3, 2), fmt(mb / t_read),
            )  # fmt: skip
    ctx.show(t)


def _raw_produce(settings: object, topic: str, events: list[ArchivedEvent]) -> float:
    p = kafka.producer(settings)  # type: ignore[arg-type]
    t0 = time.perf_counter()
    for e in events:
        while True:
            try:
                p.produce(topic, key=e.key, value=e.value, timestamp=e.timestamp_ms)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    assert p.flush(60) == 0
    return time.perf_counter() - t0


def run_replay(ctx: Context, events: list[ArchivedEvent]) -> None:
    n = len(events)
    mb = _payload(events) / 1e6
    repeats = 3 if ctx.quick else 5
    t = table(
        "replay (--fast) vs a raw produce of the same events, embedded broker",
        ["publish", "events/s median", "events/s best", "MB/s median", "× raw produce"],
        f"{n:,} rf.iq.v1 events ({mb:.1f} MB), {repeats} runs each into a new topic; "
        "kafka.producer (idempotent, zstd) for all; from the first produce to the final flush",
    )
    with (
        tempfile.TemporaryDirectory(prefix="heimdall-bench-replay-") as tmp,
        broker_with_topics(Path(tmp), partitions=PARTITIONS) as pipe,
    ):
        settings = pipe.settings
        _raw_produce(settings, settings.topics.iq, events)  # the source topic
        store = ArchiveStore.from_settings(settings)
        for f in _files(events):
            store.put(
                settings.topics.iq, [dataclasses.replace(e, topic=settings.topics.iq) for e in f]
            )
        walls: dict[str, list[float]] = {"raw produce": [], "broker": [], "archive": []}
        for r in range(repeats):  # interleaved, so that a slow period hits every row alike
            ensure_target(settings, settings.topics.iq, f"raw-{r}")  # as replay creates its own
            walls["raw produce"].append(_raw_produce(settings, f"raw-{r}", events))
            for source in ("broker", "archive"):
                res = replay(
                    settings, settings.topics.iq, 0, T0_NS + 10**15, into=f"{source}-{r}",
                    from_archive=source == "archive", speed=None,
                )  # fmt: skip
                assert res.events == n, (source, res.events)
                walls[source].append(res.wall_s)
        raw = statistics.median(walls["raw produce"])
        for name, w in walls.items():
            label = name if name == "raw produce" else f"replay --fast from the {name}"
            med = statistics.median(w)
            t.add_row(label, fmt(n / med, 0), fmt(n / min(w), 0), fmt(mb / med),
                      fmt(raw / med, 2))  # fmt: skip
    ctx.show(t)


def run(ctx: Context) -> None:
    n = 3000 if ctx.quick else 12000
    events = iq_events(n)
    run_write(ctx, events)
    run_replay(ctx, events[: n // 2 if ctx.quick else n // 4])
