"""An embedded pipeline driven from the benchmark process.

What ``heimdall up`` does, in pieces the benchmarks can time: a fresh Tansu broker
(:class:`~heimdall.infra.broker.EmbeddedBroker`) and Heimdall's topics, the Faust worker as a
child process (``python -m heimdall.infra.cli worker``, :class:`~heimdall.infra.processes.Child`),
a publisher of simulated receivers running in a thread here (any :class:`Scenario`, not only
the named ones ``heimdall simulate`` knows), and a :class:`Collector` that reads the output
topics and stamps each event with its arrival time. Everything is stopped on the way out of
the context managers, Ctrl-C included; the children also die with this process
(``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import EmbeddedBroker
from heimdall.infra.processes import Child, child_env
from heimdall.producers.publisher import Publisher
from heimdall.producers.sim import Scenario, Simulator
from heimdall.producers.sim.stream import (
    StreamGain,
    receiver_statuses,
    to_iq_chunk,
    to_truth,
)
from heimdall.schemas.models import ReceiverState


@dataclass
class Pipeline:
    """A running broker with Heimdall's topics; ``t0_ns`` is when the broker was started."""

    settings: HeimdallSettings
    workdir: Path
    t0_ns: int
    broker_ready_ns: int
    worker: Child | None = None
    broker_pid: int | None = None

    @property
    def logs(self) -> Path:
        return self.workdir / "logs"


def worker_env(settings: HeimdallSettings) -> dict[str, str]:
    """The worker's environment, as ``infra/runtime.py`` builds it."""
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers or "",
        "HEIMDALL_DATA_DIR": str(settings.data_dir),
        "HEIMDALL_PARTITIONS": str(settings.partitions),
        **{f"HEIMDALL_TOPICS__{k.upper()}": v for k, v in settings.topics.model_dump().items()},
    }
    to_env = getattr(settings, "to_env", None)  # newer settings carry every non-secret one
    if callable(to_env):
        env.update(to_env())
    return child_env(env)


@contextlib.contextmanager
def broker_with_topics(workdir: Path, partitions: int = 3, **overrides: Any) -> Iterator[Pipeline]:
    """A fresh embedded broker (memory only) with Heimdall's topics; stopped on exit.

    ``overrides`` are further settings of the pipeline (e.g. ``tdoa=False``)."""
    (workdir / "logs").mkdir(parents=True, exist_ok=True)
    t0_ns = time.time_ns()
    with EmbeddedBroker(log_path=workdir / "logs" / "broker.log") as broker:
        ready_ns = time.time_ns()
        settings = load_settings(
            data_dir=workdir,
            partitions=partitions,
            kafka={"bootstrap_servers": broker.bootstrap_servers},
            clickhouse={"url": None},
            schema_registry={"url": None},
            **overrides,
        )
        ensure_topics(kafka.admin(settings), heimdall_topics(settings))
        yield Pipeline(settings, workdir, t0_ns, ready_ns, broker_pid=broker.pid)


@contextlib.contextmanager
def worker(pipe: Pipeline) -> Iterator[Child]:
    """The Faust worker as a child process (cwd: the work dir, where Faust puts its data)."""
    child = Child("streams", ["worker"], worker_env(pipe.settings), pipe.logs / "streams.log")
    with contextlib.chdir(pipe.workdir):
        child.start()
    pipe.worker = child
    try:
        yield child
    except BaseException:
        child.stop(timeout_s=3.0)  # interrupted: the broker may be gone, Faust would linger
        raise
    finally:
        child.stop(timeout_s=10.0)
        pipe.worker = None


def aligned_now_ns(chunk_ns: int) -> int:
    return (time.time_ns() // chunk_ns) * chunk_ns


def publish_backlog(
    settings: HeimdallSettings, scenario: Scenario, n_steps: int, seed: int = 1
) -> tuple[int, float]:
    """Publish ``n_steps`` steps as fast as possible, event times ending now (a replay).

    Returns the chunks published and the wall time it took (simulate, encode, produce, flush).
    """
    sim = Simulator(scenario, seed=seed)
    pub = Publisher(settings)
    gain = StreamGain.for_simulator(sim)
    t = settings.topics
    start_ns = aligned_now_ns(scenario.chunk_ns) - n_steps * scenario.chunk_ns
    n = 0
    t0 = time.perf_counter()
    for step in sim.steps(start_ns, n_steps):
        for truth in step.truths:
            pub.publish(t.truth, truth.source_id, to_truth(truth), truth.t_ns)
        for c in step.chunks:
            pub.publish(t.iq, c.receiver_id, to_iq_chunk(c, gain), c.t_ns)
            n += 1
    left = pub.flush(60.0)
    if left:
        raise RuntimeError(f"{left} backlog events were not delivered")
    return n, time.perf_counter() - t0


@dataclass
class PacedStats:
    steps: int = 0
    chunks: int = 0
    max_late_s: float = 0.0


class PacedPublisher:
    """Publishes a scenario in real time from a thread, as ``heimdall simulate --realtime``.

    Step k (chunk start ``t0 + k·chunk``) is published once its last sample exists, at
    ``wall0 + (k + 1)·chunk``; ``stats.max_late_s`` is how far behind that schedule it fell.
    """

    def __init__(self, settings: HeimdallSettings, scenario: Scenario, seed: int = 1) -> None:
        self.settings = settings
        self.scenario = scenario
        self.seed = seed
        self.stats = PacedStats()
        self.flush_timeout_s = 10.0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-publisher", daemon=True)

    def __enter__(self) -> PacedPublisher:
        self._thread.start()
        return self

    def __exit__(self, et: type[BaseException] | None, *exc: object) -> None:
        self.stop(interrupted=et is not None)

    def stop(self, interrupted: bool = False) -> None:
        if interrupted:  # the broker may be gone already (Ctrl-C reaches it too): do not wait
            self.flush_timeout_s = 1.0
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30.0)

    def _run(self) -> None:
        try:
            self._publish()
        except BaseException as exc:  # reported by the benchmark
            self.error = exc

    def _publish(self) -> None:
        sc, t = self.scenario, self.settings.topics
        sim = Simulator(sc, seed=self.seed)
        pub = Publisher(self.settings)
        gain = StreamGain.for_simulator(sim)
        for status in receiver_statuses(sc, ReceiverState.ONLINE):
            pub.publish(t.receivers, status.receiver_id, status)
        chunk_s = sc.chunk_ns / 1e9
        wall0 = time.monotonic()
        try:
            for k, step in enumerate(sim.steps(aligned_now_ns(sc.chunk_ns))):
                due = wall0 + (k + 1) * chunk_s
                delay = due - time.monotonic()
                if delay > 0:
                    if self._stop.wait(delay):
                        break
                else:
                    self.stats.max_late_s = max(self.stats.max_late_s, -delay)
                if self._stop.is_set():
                    break
                for truth in step.truths:
                    pub.publish(t.truth, truth.source_id, to_truth(truth), truth.t_ns)
                for c in step.chunks:
                    pub.publish(t.iq, c.receiver_id, to_iq_chunk(c, gain), c.t_ns)
                self.stats.steps += 1
                self.stats.chunks += len(step.chunks)
        finally:
            for status in receiver_statuses(sc, ReceiverState.OFFLINE):
                pub.publish(t.receivers, status.receiver_id, status)
            pub.flush(self.flush_timeout_s)


@dataclass
class Arrivals:
    """Raw events of one topic with the wall time (ns) this process received each."""

    arrival_ns: list[int] = field(default_factory=list)
    values: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.values)


class Collector:
    """Reads whole topics from the beginning (assigned, no group) and keeps every value.

    Values are stored undecoded (decode after the run: the collector should take as little
    CPU from the pipeline as possible).
    """

    def __init__(self, settings: HeimdallSettings, topics: list[str]) -> None:
        self.settings = settings
        self.topics = topics
        self.events: dict[str, Arrivals] = {name: Arrivals() for name in topics}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-collector", daemon=True)

    def __enter__(self) -> Collector:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10.0)

    def count(self, topic: str) -> int:
        return len(self.events[topic])

    def first_arrival_ns(self, topic: str) -> int | None:
        a = self.events[topic].arrival_ns
        return a[0] if a else None

    def _run(self) -> None:
        try:
            self._consume()
        except BaseException as exc:
            self.error = exc

    def _consume(self) -> None:
        c = kafka.consumer(self.settings, f"bench-collector-{time.time_ns()}")
        try:
            md = c.list_topics(timeout=10)
            c.assign(
                [
                    TopicPartition(name, p, OFFSET_BEGINNING)
                    for name in self.topics
                    for p in md.topics[name].partitions
                ]
            )
            while not self._stop.is_set():
                msgs = c.consume(1000, timeout=0.1)
                now = time.time_ns()
                for msg in msgs:
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            raise RuntimeError(f"collector: {err}")
                        continue
                    value = msg.value()
                    topic = msg.topic()
                    if value is None or topic is None:
                        continue
                    arr = self.events[topic]
                    arr.arrival_ns.append(now)
                    arr.values.append(value)
        finally:
            c.close()
