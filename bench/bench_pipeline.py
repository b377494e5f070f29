"""The whole pipeline on the embedded broker, for N simulated receivers.

Per N (a fresh broker for each phase, so nothing carries over):

1. **features throughput.** A backlog of about ``backlog`` IQ chunks is published as fast as
   possible (event times in the past, like a replay); then the Faust worker is started. The
   rate is taken from ``Measurement.published_ns`` (the worker's clock when it measured the
   chunk) over the middle 80 % of the measurements, so the worker's start-up and the tail do
   not count. The worker runs all three agents in one process, so associate and localize take
   their share of the same core, as in production.
2. **real-time latency.** Broker, worker, then the publisher pacing one step per chunk
   duration (0.2 s), as ``heimdall up`` runs. ``Localization.processing_latency_s`` is chunk
   publication → localization minus the time the measurements waited in the association
   window; the features-stage latency is ``Measurement.published_ns − chunk_published_ns``.
   Both over the steady state: events that arrived from ``skip`` s after the first
   localization (the worker's start-up backlog is over by then) for ``steady`` s.
   The same run gives the time from broker start to the first measurement and the first
   localization.

Then once, **time to first localization of ``heimdall up``**: the real
:class:`~heimdall.infra.runtime.Runtime` in this process (seed network, chDB in a temporary
directory), stopped as soon as its monitor has seen the first localization.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from rich.console import Console

from bench.common import Context, fmt, quantiles, table
from bench.harness import Collector, PacedPublisher, broker_with_topics, publish_backlog, worker
from bench.scenarios import describe_region, network
from heimdall.core.settings import load_settings
from heimdall.infra.processes import Child
from heimdall.producers.sim import Scenario, seed_network
from heimdall.schemas.serde import Serde

T = TypeVar("T")

RECEIVERS = (7, 25, 50)
PARTITIONS = 3


@dataclass
class Throughput:
    chunks: int
    publish_chunks_s: float
    first_measurement_s: float
    sustained_chunks_s: float
    first_to_last_chunks_s: float
    dlq: int


@dataclass
class Realtime:
    offered_chunks_s: float
    first_measurement_s: float | None
    first_localization_s: float | None
    n_localizations: int
    steady_s: float
    loc_latency_ms: tuple[float, float]
    feat_latency_ms: tuple[float, float]
    measured_chunks_s: float
    publisher_max_late_ms: float
    dlq: int


@dataclass
class UpResult:
    first_localization_s: float | None
    printed_s: float | None
    wall_s: float


def _offered(sc: Scenario) -> float:
    """Chunks per second the scenario publishes in real time."""
    return len(sc.receivers) * len(sc.tuned_channels()) / sc.chunk_s


class WorkerDied(RuntimeError):
    pass


def _check(child: Child | None, *threads: Collector | PacedPublisher) -> None:
    for t in threads:
        if t.error is not None:
            raise RuntimeError(f"{type(t).__name__} failed: {t.error!r}") from t.error
    if child is not None and not child.running:
        raise WorkerDied(f"the stream worker exited with {child.returncode}:\n{child.tail()}")


def measure_throughput(ctx: Context, workdir: Path, n_rx: int, backlog: int) -> Throughput:
    sc = network(n_rx)
    per_step = n_rx * len(sc.tuned_channels())
    n_steps = max(1, math.ceil(backlog / per_step))
    serde = Serde()
    with ctx.progress() as progress, broker_with_topics(workdir, PARTITIONS) as pipe:
        t = pipe.settings.topics
        task = progress.add_task(f"N={n_rx}: publishing a backlog of {n_steps} steps", total=None)
        n_chunks, pub_s = publish_backlog(pipe.settings, sc, n_steps)
        progress.update(task, description=f"N={n_rx}: worker on the backlog", total=n_chunks)
        with Collector(pipe.settings, [t.features, t.dlq]) as col, worker(pipe) as child:
            start_ns = time.time_ns()
            deadline = time.monotonic() + 60.0 + n_chunks / 50.0
            while col.count(t.features) < n_chunks:
                _check(child, col)
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"N={n_rx}: {col.count(t.features)} of {n_chunks} chunks measured"
                    )
                progress.update(task, completed=col.count(t.features))
                time.sleep(0.1)
            time.sleep(0.3)  # let a straggling dead letter arrive
            feats = col.events[t.features]
            dlq = col.count(t.dlq)
            first_arrival = feats.arrival_ns[0]
        pub_ns = np.sort(
            np.array([serde.decode_dict(v)[1]["published_ns"] for v in feats.values], np.int64)
        )
    n = len(pub_ns)
    a, b = n // 10, n - 1 - n // 10
    return Throughput(
        chunks=n_chunks,
        publish_chunks_s=n_chunks / pub_s,
        first_measurement_s=(first_arrival - start_ns) / 1e9,
        sustained_chunks_s=(b - a) / ((pub_ns[b] - pub_ns[a]) / 1e9),
        first_to_last_chunks_s=(n - 1) / ((pub_ns[-1] - pub_ns[0]) / 1e9),
        dlq=dlq,
    )


def measure_realtime(
    ctx: Context, workdir: Path, n_rx: int, skip_s: float, steady_s: float
) -> Realtime:
    sc = network(n_rx)
    offered = _offered(sc)
    serde = Serde()
    with ctx.progress() as progress, broker_with_topics(workdir, PARTITIONS) as pipe:
        t = pipe.settings.topics
        task = progress.add_task(f"N={n_rx}: real time, waiting for the first localization")
        topics = [t.features, t.localizations, t.dlq]
        with (
            Collector(pipe.settings, topics) as col,
            worker(pipe) as child,
            PacedPublisher(pipe.settings, sc) as pub,
        ):
            deadline = time.monotonic() + 120.0
            while col.count(t.localizations) == 0:
                _check(child, col, pub)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"N={n_rx}: no localization within 120 s")
                time.sleep(0.05)
            first_loc_ns = col.events[t.localizations].arrival_ns[0]
            cutoff_ns = first_loc_ns + int(skip_s * 1e9)
            end_ns = cutoff_ns + int(steady_s * 1e9)
            progress.update(
                task,
                description=f"N={n_rx}: real time, {skip_s:.0f} s skipped + {steady_s:.0f} s "
                "measured (s)",
                total=round(skip_s + steady_s),
            )
            while (now := time.time_ns()) < end_ns:
                _check(child, col, pub)
                progress.update(task, completed=(now - first_loc_ns) / 1e9)
                time.sleep(0.1)
            late_ms = pub.stats.max_late_s * 1000
            dlq = col.count(t.dlq)
            feats, locs = col.events[t.features], col.events[t.localizations]
            first_feat_ns = col.first_arrival_ns(t.features)
        lat_s = [
            serde.decode_dict(v)[1]["processing_latency_s"]
            for ts, v in zip(locs.arrival_ns, locs.values, strict=False)
            if cutoff_ns <= ts < end_ns
        ]
        feat_s = []
        for ts, v in zip(feats.arrival_ns, feats.values, strict=False):
            if cutoff_ns <= ts < end_ns:
                w = serde.decode_dict(v)[1]
                feat_s.append((w["published_ns"] - w["chunk_published_ns"]) / 1e9)
    p_loc = quantiles(lat_s, (0.5, 0.99))
    p_feat = quantiles(feat_s, (0.5, 0.99))
    return Realtime(
        offered_chunks_s=offered,
        first_measurement_s=None if first_feat_ns is None else (first_feat_ns - pipe.t0_ns) / 1e9,
        first_localization_s=(first_loc_ns - pipe.t0_ns) / 1e9,
        n_localizations=len(lat_s),
        steady_s=steady_s,
        loc_latency_ms=(p_loc[0] * 1000, p_loc[1] * 1000),
        feat_latency_ms=(p_feat[0] * 1000, p_feat[1] * 1000),
        measured_chunks_s=len(feat_s) / steady_s,
        publisher_max_late_ms=late_ms,
        dlq=dlq,
    )


class _StopEvent(threading.Event):
    """``Runtime.stop_event`` that remembers whether a signal handler (main thread) set it."""

    by_signal = False

    def set(self) -> None:
        if threading.current_thread() is threading.main_thread():
            self.by_signal = True
        super().set()


def measure_up(ctx: Context, workdir: Path, timeout_s: float = 120.0) -> UpResult:
    """``heimdall up`` in this process until its first localization; time since ``run()``."""
    from heimdall.infra.runtime import Runtime, UpOptions

    settings = load_settings(
        data_dir=workdir,
        kafka={"bootstrap_servers": None},
        clickhouse={"url": None},
        schema_registry={"url": None},
    )
    workdir.mkdir(parents=True, exist_ok=True)
    quiet = Console(file=open(workdir / "runtime-console.txt", "w"))  # noqa: SIM115
    rt = Runtime(settings, UpOptions(duration_s=timeout_s, live=False), console=quiet)
    rt.stop_event = stop = _StopEvent()  # tells the watcher's stop from Ctrl-C (SIGINT, SIGTERM)
    found, done = threading.Event(), threading.Event()

    def watch() -> None:
        while not done.is_set() and not rt.stop_event.is_set():
            m = rt.monitor
            if m is not None and m.stats.first_localization_s is not None:
                found.set()
                rt.stop_event.set()  # what Ctrl-C does: a normal shutdown
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, name="bench-up-watch", daemon=True)
    with ctx.progress() as progress:
        progress.add_task("heimdall up (Runtime, seed network) until its first localization")
        t0 = time.monotonic()
        watcher.start()
        try:
            with contextlib.chdir(workdir):
                summary = rt.run()
        except Exception as exc:
            if stop.by_signal:  # Ctrl-C also reaches the broker, so the shutdown may fail
                raise KeyboardInterrupt from exc
            raise
        finally:
            done.set()
            watcher.join(5.0)
            quiet.file.close()
        wall = time.monotonic() - t0
    if stop.by_signal:
        raise KeyboardInterrupt  # the Runtime turned Ctrl-C into a clean stop
    first = None
    if rt.monitor is not None and rt.monitor.stats.first_localization_s is not None:
        first = rt.monitor.stats.started_monotonic + rt.monitor.stats.first_localization_s - t0
    return UpResult(first, summary.first_localization_s, wall)


def run(ctx: Context) -> None:
    receivers = ctx.options.get("receivers") or ((7,) if ctx.quick else RECEIVERS)
    backlog = 1500 if ctx.quick else 4000
    skip_s = 5.0 if ctx.quick else 10.0
    steady_s = 10.0 if ctx.quick else 20.0
    cols = [
        "receivers",
        "offered chunks/s",
        "features chunks/s",
        "features lat. p50 / p99 ms",
        "chunk→loc. p50 / p99 ms",
        "locs",
        "1st meas. s",
        "1st loc. s",
    ]
    results: list[tuple[int, Throughput | None, Realtime | None]] = []
    up: UpResult | None = None
    with tempfile.TemporaryDirectory(prefix="heimdall-bench-") as tmp:
        root = Path(tmp)
        for n in receivers:
            tp = _attempt(ctx, f"N={n} throughput", measure_throughput, root / f"tput-{n}", n,
                          backlog)  # fmt: skip
            rt = _attempt(ctx, f"N={n} real time", measure_realtime, root / f"rt-{n}", n, skip_s,
                          steady_s)  # fmt: skip
            results.append((n, tp, rt))
        up = _attempt(ctx, "heimdall up", measure_up, root / "up")
    t = table(
        "pipeline — embedded Tansu + Faust worker (child process) + publisher, per N receivers",
        cols,
        _caption(results, up, backlog, skip_s, steady_s),
    )
    for n, tp, rt in results:
        t.add_row(
            str(n),
            fmt(_offered(network(n)), 0),
            fmt(tp.sustained_chunks_s if tp else None, 0),
            _pair(rt.feat_latency_ms if rt else None),
            _pair(rt.loc_latency_ms if rt else None),
            str(rt.n_localizations) if rt else "–",
            fmt(rt.first_measurement_s if rt else None),
            fmt(rt.first_localization_s if rt else None),
        )
    blank = ["–"] * 5
    t.add_row("7, heimdall up", fmt(_offered(seed_network()), 0), *blank,
              fmt(up.first_localization_s if up else None))  # fmt: skip
    ctx.show(t)


def _pair(v: tuple[float, float] | None) -> str:
    return "–" if v is None else f"{fmt(v[0], 0)} / {fmt(v[1], 0)}"


def _attempt(ctx: Context, what: str, fn: Callable[..., T], *args: Any) -> T | None:
    """Run one phase; a failure is reported and leaves its cells empty (Ctrl-C still stops)."""
    try:
        return fn(ctx, *args)
    except Exception as exc:
        ctx.console.print(f"[red]pipeline: {what} failed: {type(exc).__name__}: {exc}[/red]")
        return None


def _caption(
    results: list[tuple[int, Throughput | None, Realtime | None]],
    up: UpResult | None,
    backlog: int,
    skip_s: float,
    steady_s: float,
) -> str:
    lines = [
        "Columns: offered = chunks/s the receivers publish in real time (N × 2 channels × 5/s); "
        "features chunks/s = sustained rate of the features stage on a pre-published backlog; "
        "features lat. = Measurement.published_ns − chunk_published_ns; chunk→loc. = "
        "Localization.processing_latency_s (chunk publication → localization, excluding the "
        "association window); locs = localizations in the steady state (each RSS fix and its "
        "tracked twin, HEIMDALL_TRACK); 1st meas. / 1st loc. = "
        "wall time from broker start to the first event on rf.features / rf.localizations.",
        f"Networks: the 7 seed receivers, then {describe_region()}; 2 channels (carrier, NBFM), "
        f"12 kHz, 0.2 s chunks, ci16; {PARTITIONS} partitions; association window 1 s, "
        "≥ 4 receivers; a fresh broker per phase.",
        f"Throughput: backlog of ≈{backlog} chunks published before the worker starts; rate over "
        "the middle 80 % of Measurement.published_ns (the worker also runs associate and "
        "localize). Latency: real-time publishing, events arriving from "
        f"{skip_s:.0f} s after the first localization, for {steady_s:.0f} s.",
    ]
    for n, tp, rt in results:
        if tp is None or rt is None:
            continue
        lines.append(
            f"N={n}: backlog {tp.chunks} chunks published at {tp.publish_chunks_s:,.0f} chunks/s "
            "(simulate+encode+produce), worker start → 1st measurement "
            f"{tp.first_measurement_s:.1f} s, first→last rate "
            f"{tp.first_to_last_chunks_s:,.0f} chunks/s; real time: "
            f"{rt.measured_chunks_s:,.0f} chunks/s measured in the steady state, publisher at most "
            f"{rt.publisher_max_late_ms:.0f} ms behind schedule; DLQ events {tp.dlq} / {rt.dlq}."
        )
    if up is None:
        return "\n".join(lines)
    printed = "–" if up.printed_s is None else f"{up.printed_s:.1f} s"
    lines.append(
        "heimdall up: Runtime(UpOptions(live=False)).run() in this process, seed network; time "
        f"from run() to the monitor's first localization; its summary line says {printed} "
        f"(counted from the monitor's start, after broker, topics and chDB); run incl. shutdown "
        f"{up.wall_s:.0f} s."
    )
    return "\n".join(lines)
