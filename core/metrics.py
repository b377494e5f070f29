"""Prometheus metrics of every Heimdall process (``prometheus-client``), and their endpoint.

Each process serves its own registry (the library's default one, which also carries the
``process_*`` and ``python_*`` collectors) over HTTP when ``HEIMDALL_METRICS_PORT`` is set
(:func:`serve`; 0 or unset: off). ``heimdall up`` serves on that port itself (the in-process
ClickHouse sink, child restarts, the embedded broker's memory) and gives its children the
following ports, in the order it starts them.

The metrics (names and labels; the README lists them with the ports):

* ``heimdall_stage_events_in_total{stage}``, ``heimdall_stage_events_out_total{stage}``,
  ``heimdall_stage_dead_letters_total{stage}``: events a stage took, the events it produced,
  and the events it refused to the dead-letter topic. Stages: ``features``, ``associate``,
  ``tdoa``, ``localize`` (stream worker), ``clickhouse-sink``, ``archive``.
* ``heimdall_stage_batch_seconds{stage}``: histogram of the time from taking a batch to
  handing its outputs to the producer.
* ``heimdall_chunk_to_localization_seconds{method}``: histogram of the wall-clock time of
  publishing a localization minus its event time (the IQ chunks' ``t_ns``): the end-to-end
  latency for a real-time source (a replay or a fast simulation shows its own clock offset).
* ``heimdall_consumer_lag_events{group,topic,partition}``: high watermark minus the group's
  committed offset (minus the low watermark where nothing is committed), refreshed every
  few seconds by :class:`LagSampler`; every worker of a group reports the whole group
  (aggregate with ``max``).
* ``heimdall_active_model_info{model_name,version}``: the model the localize stage runs.
* ``heimdall_sink_rows_total{table}``, ``heimdall_sink_flush_seconds``: rows the sink
  inserted, and the time of each flush that inserted rows (all tables of a batch).
* ``heimdall_archive_files_total{topic}``, ``heimdall_archive_bytes_total{topic}``.
* ``heimdall_child_restarts_total{child}``, ``heimdall_process_rss_bytes{process}``
  (``heimdall up``: the supervisor's restarts; the resident memory of the embedded broker,
  ``process="broker"``, and of each child), by :class:`RuntimeCollector`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics import Gauge
from prometheus_client.registry import Collector

from heimdall.core.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "ACTIVE_MODEL",
    "ARCHIVE_BYTES",
    "ARCHIVE_FILES",
    "BATCH_SECONDS",
    "CONSUMER_LAG",
    "DEAD_LETTERS",
    "EVENTS_IN",
    "EVENTS_OUT",
    "LATENCY_SECONDS",
    "SINK_FLUSH_SECONDS",
    "SINK_ROWS",
    "LagSampler",
    "RuntimeCollector",
    "observe_latency",
    "partition_lag",
    "record_batch",
    "rss_bytes",
    "serve",
    "serve_from_settings",
    "set_active_model",
    "stop_serving",
]

EVENTS_IN = Counter("heimdall_stage_events_in", "Events a stage took", ["stage"])
EVENTS_OUT = Counter("heimdall_stage_events_out", "Events a stage produced", ["stage"])
DEAD_LETTERS = Counter(
    "heimdall_stage_dead_letters", "Events a stage refused to the dead-letter topic", ["stage"]
)
BATCH_SECONDS = Histogram(
    "heimdall_stage_batch_seconds", "Time from taking a batch to sending its outputs", ["stage"]
)
LATENCY_SECONDS = Histogram(
    "heimdall_chunk_to_localization_seconds",
    "Wall-clock time of a localization's publication minus its event time",
    ["method"],
    buckets=(0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
)
CONSUMER_LAG = Gauge(
    "heimdall_consumer_lag_events",
    "High watermark minus the committed offset of a consumer group",
    ["group", "topic", "partition"],
)
ACTIVE_MODEL = Gauge(
    "heimdall_active_model_info",
    "1 for the model the localize stage runs (no sample before a model is active)",
    ["model_name", "version"],
)
SINK_ROWS = Counter("heimdall_sink_rows", "Rows the ClickHouse sink inserted", ["table"])
SINK_FLUSH_SECONDS = Histogram(
    "heimdall_sink_flush_seconds", "Time of one ClickHouse sink flush (every table of a batch)"
)
ARCHIVE_FILES = Counter("heimdall_archive_files", "Files the archiver wrote", ["topic"])
ARCHIVE_BYTES = Counter("heimdall_archive_bytes", "Bytes the archiver wrote", ["topic"])


def record_batch(stage: str, n_in: int, n_out: int, n_dead: int, seconds: float) -> None:
    """Count one batch of ``stage``: events taken, produced, dead-lettered, and its time."""
    EVENTS_IN.labels(stage).inc(n_in)
    EVENTS_OUT.labels(stage).inc(n_out)
    DEAD_LETTERS.labels(stage).inc(n_dead)
    BATCH_SECONDS.labels(stage).observe(seconds)


def set_active_model(model_name: str, version: str) -> None:
    """Make ``model_name:version`` the one :data:`ACTIVE_MODEL` reports (the previous one goes)."""
    ACTIVE_MODEL.clear()
    ACTIVE_MODEL.labels(model_name, version).set(1)


def observe_latency(method: str, t_event_s: float, now_s: float) -> None:
    """One localization published at ``now_s`` (Unix s) for event time ``t_event_s``.

    A negative difference (an event time ahead of this clock) is counted as 0.
    """
    LATENCY_SECONDS.labels(method).observe(max(now_s - t_event_s, 0.0))


_served: tuple[str, int, Any] | None = None  # host, port, the HTTP server
_serve_lock = threading.Lock()


def serve(port: int, host: str = "127.0.0.1") -> int | None:
    """Serve this process's metrics at ``http://host:port/metrics``; the port, or None if off.

    ``port`` 0 is off. Idempotent: a second call (same process) serves nothing more and
    returns the port already served. A port that cannot be bound is a :class:`ConfigError`.
    """
    global _served
    if port <= 0:
        return None
    with _serve_lock:
        if _served is not None:
            return _served[1]
        try:
            server, _thread = start_http_server(port, addr=host)
        except OSError as exc:
            raise ConfigError(
                f"HEIMDALL_METRICS_PORT: cannot serve metrics on {host}:{port}: {exc.strerror}"
            ) from None
        _served = (host, port, server)
    log.info("metrics on http://%s:%d/metrics", host, port)
    return port


def stop_serving() -> None:
    """Stop the endpoint :func:`serve` started (tests; a process's endpoint lives with it)."""
    global _served
    with _serve_lock:
        if _served is not None:
            _served[2].shutdown()
            _served[2].server_close()
            _served = None


def serve_from_settings(settings: Any) -> int | None:
    """:func:`serve` on ``settings.metrics_port`` and ``settings.metrics_host``."""
    return serve(settings.metrics_port, settings.metrics_host)


def partition_lag(committed: int, low: int, high: int) -> int:
    """Events of one partition the group has not committed yet.

    .. math:: \\text{lag} = h - \\max(c, l)

    with ``h`` the high watermark (the next offset to be written), ``l`` the low watermark
    (the first offset still held) and ``c`` the committed offset (the next one the group
    will read); a negative ``c`` (librdkafka's ``OFFSET_INVALID``: nothing committed) counts
    from ``l``. Never negative.
    """
    start = low if committed < 0 else max(committed, low)
    return max(high - start, 0)


class LagSampler:
    """Refreshes :data:`CONSUMER_LAG` for ``group`` on ``topics`` every ``interval_s`` seconds.

    A consumer with the group's id that never subscribes (so it never joins the group)
    reads the committed offsets (``OffsetFetch``) and the watermarks of each partition: a
    few small requests per refresh.
    """

    def __init__(
        self, settings: Any, group: str, topics: Iterable[str], interval_s: float = 5.0
    ) -> None:
        self.settings = settings
        self.group = group
        self.topics = list(topics)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lag-{group}", daemon=True)

    def start(self) -> LagSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def sample(self, consumer: Any) -> dict[tuple[str, int], int]:
        """One refresh: the lag of every partition of the topics, also set in the gauge."""
        from confluent_kafka import TopicPartition

        tps = []
        for topic in self.topics:
            meta = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if meta is None or meta.error is not None:
                continue
            tps += [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        out: dict[tuple[str, int], int] = {}
        if not tps:
            return out
        for tp in consumer.committed(tps, timeout=5):
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=5, cached=False
            )
            lag = partition_lag(tp.offset, low, high)
            out[(tp.topic, tp.partition)] = lag
            CONSUMER_LAG.labels(self.group, tp.topic, str(tp.partition)).set(lag)
        return out

    def _run(self) -> None:
        from heimdall.core import kafka

        consumer = kafka.consumer(self.settings, self.group)
        try:
            while not self._stop.is_set():
                try:
                    self.sample(consumer)
                except Exception as exc:  # a broker away for a while: try again later
                    log.info("lag of %s not sampled: %s", self.group, exc)
                self._stop.wait(self.interval_s)
        finally:
            consumer.close()


def rss_bytes(pid: int, proc: Path = Path("/proc")) -> int | None:
    """Resident memory of process ``pid`` in bytes (``VmRSS`` of ``/proc/<pid>/status``).

    None when the process is gone or the line is missing (not Linux).
    """
    try:
        text = (proc / str(pid) / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit.lower() != "kb":  # the kernel always writes kB
                return None
            return int(value) * 1024
    return None


class RuntimeCollector(Collector):
    """``heimdall up``'s own metrics, read when scraped.

    Parameters
    ----------
    restarts
        Returns the restarts so far per child name (the supervisor's ``restarts``).
    pids
        Returns the pid of each process to report the memory of (``broker`` and the
        children); a None pid (not running) is skipped.
    """

    def __init__(
        self,
        restarts: Callable[[], Mapping[str, int]],
        pids: Callable[[], Mapping[str, int | None]],
    ) -> None:
        self.restarts = restarts
        self.pids = pids

    def collect(self) -> Iterator[Any]:
        c = CounterMetricFamily(
            "heimdall_child_restarts", "Restarts of a child of heimdall up", labels=["child"]
        )
        for name, n in sorted(self.restarts().items()):
            c.add_metric([name], float(n))
        yield c
        g = GaugeMetricFamily(
            "heimdall_process_rss_bytes", "Resident memory of a process", labels=["process"]
        )
        for name, pid in sorted(self.pids().items()):
            rss = None if pid is None else rss_bytes(pid)
            if rss is not None:
                g.add_metric([name], float(rss))
        yield g

    def register(self) -> RuntimeCollector:
        REGISTRY.register(self)
        return self

    def unregister(self) -> None:
        REGISTRY.unregister(self)
