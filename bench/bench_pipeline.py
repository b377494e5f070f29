"""The stream at public-network scale: N receivers on one machine (``bench pipeline``).

Per N (issue 10, "How it is measured"): a network of N receivers, one 12 kHz channel each by
default (``--channels 2``: the seed's shape), 0.2 s ci16 chunks, i.e. 5 chunks/s per receiver
and channel; transmitters spread so that each channel is heard by ~25 receivers
(:func:`bench.publisher.network_groups`). The publisher runs in a process of its own
(:mod:`bench.publisher`: pre-synthesised IQ, re-published with fresh ids and times).

1. **features throughput**: a backlog of about ``backlog`` chunks is published first, then
   ``--workers`` stream workers (``python -m heimdall.streams.worker``) start; the rate is the
   growth of the workers' committed offsets on ``rf.iq`` between 10 % and 90 % of the backlog.
2. **real time**: a fresh broker; workers, the ClickHouse sink (``heimdall sink``, chDB) and
   the publisher pacing real time, all as processes; from the first localization on, for
   ``realtime_s`` seconds: the features lag (chunks published − committed by the workers)
   each second; ``realtime_held`` = the largest lag over the last third of the window is under
   two seconds of offered chunks; chunk → localization p50/p99 from
   ``Localization.processing_latency_s`` (the association window excluded); the CPU time of
   every process over the window (``/proc/<pid>/stat``), as a share of one core.
3. **ceiling loop**, one core, in this process: decode 256 IqChunks, ``scipy.signal.welch``
   over the batch, encode 256 Measurements; ``ratio_to_ceiling`` = features chunks/s per
   worker ÷ the ceiling's chunks/s.

Then once, the time to the first localization of ``heimdall up`` (the real Runtime).

The bench's receivers report GPS time, so these rows run with the in-stream TDOA path off
(``tdoa=False``: the RSS path alone). ``--tdoa`` adds, per N, a second real-time row with the
TDOA path on and NBFM transmitters (a lag to correlate): its ``tdoa_fixes_s`` and the CPU
share of each process beside the RSS-only row's, i.e. the cost per receiver of TDOA.
"""

from __future__ import annotations

import contextlib
import json
import math
import multiprocessing as mp
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from confluent_kafka import TopicPartition
from rich.console import Console
from scipy import signal as sps

from bench import publisher
from bench.common import Context, fmt, quantiles, table
from bench.harness import Collector, Pipeline, broker_with_topics, worker_env
from heimdall.core import kafka
from heimdall.core.settings import load_settings
from heimdall.infra.processes import Child
from heimdall.schemas.models import IqChunk
from heimdall.schemas.serde import Serde
from heimdall.streams.features import measure_chunks

T = TypeVar("T")

RECEIVERS = (100, 500, 1000)
CHUNK_S = 0.2
#: Seconds after the first localization before ``e2e_p99_steady_ms`` counts a fix.
WARMUP_S = 10.0


@dataclass
class UpResult:
    first_localization_s: float | None
    printed_s: float | None
    wall_s: float


@dataclass
class Row:
    """One network size; the keys of ``--json`` (issue 10)."""

    receivers: int
    offered_chunks_s: float
    features_chunks_s: float | None = None
    realtime_held: bool | None = None
    e2e_p50_ms: float | None = None
    e2e_p99_ms: float | None = None
    e2e_p99_steady_ms: float | None = None
    """p99 of the fixes that arrive :data:`WARMUP_S` or later after the first localization:
    without the backlog the workers catch up on after start-up (``e2e_p99_ms`` keeps it)."""
    first_localization_s: float | None = None
    ceiling_chunks_s: float | None = None
    ratio_to_ceiling: float | None = None
    workers: int = 1
    channels_per_receiver: int = 1
    lag_max_chunks: float | None = None
    lag_last_chunks: float | None = None
    cpu_share: dict[str, float] = field(default_factory=dict)
    localizations: int = 0
    tdoa: bool = False
    """The in-stream TDOA path on (NBFM transmitters) or off (carriers, RSS only)."""
    tdoa_fixes_s: float | None = None


def _cpu_s(pid: int | None) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``), s."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _committed(consumer: Any, topic: str, partitions: int) -> int:
    tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=5)
    return sum(max(tp.offset, 0) for tp in tps)


@contextlib.contextmanager
def _publisher(pipe: Pipeline, plan: publisher.Plan) -> Iterator[tuple[Any, Any, Any]]:
    ctx = mp.get_context("spawn")
    published, ready, stop = ctx.Value("q", 0), ctx.Event(), ctx.Event()
    bootstrap = pipe.settings.kafka.bootstrap_servers or ""
    proc = ctx.Process(
        target=publisher.run,
        args=(bootstrap, pipe.settings.topics.iq, plan, published, ready, stop),
        name="bench-publisher",
        daemon=True,
    )
    proc.start()
    try:
        yield published, ready, proc
    finally:
        stop.set()
        proc.join(60)
        if proc.is_alive():
            proc.kill()


@contextlib.contextmanager
def _workers(pipe: Pipeline, n: int) -> Iterator[list[Child]]:
    env = worker_env(pipe.settings)
    children = [
        Child(f"w{i}", [], env, pipe.logs / f"worker-{i}.log", module="heimdall.streams.worker")
        for i in range(n)
    ]
    try:
        for c in children:
            c.start()
        yield children
    finally:
        for c in children:
            c.stop()


def _wait(what: str, done: Callable[[], bool], timeout_s: float, *alive: Any) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        for c in alive:
            running = c.running if isinstance(c, Child) else c.is_alive()
            if not running:
                tail = c.tail() if isinstance(c, Child) else ""
                raise RuntimeError(f"{what}: a process died\n{tail}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not done within {timeout_s:.0f} s")
        time.sleep(0.2)


def measure_throughput(
    ctx: Context, workdir: Path, n: int, channels: int, workers: int, backlog: int
) -> float:
    parts = max(3, workers)
    steps = max(2, math.ceil(backlog / (n * channels)))
    plan = publisher.Plan(n, channels, realtime=False, steps=steps)
    with ctx.progress() as progress, broker_with_topics(workdir, parts, tdoa=False) as pipe:
        task = progress.add_task(f"N={n}: synthesising and publishing a backlog", total=None)
        with _publisher(pipe, plan) as (published, _ready, proc):
            proc.join(600)
        total = published.value
        progress.update(task, description=f"N={n}: {workers} worker(s) on the backlog",
                        total=total)  # fmt: skip
        c = kafka.consumer(pipe.settings, pipe.settings.streams_app_id)
        samples: list[tuple[float, int]] = []
        try:
            with _workers(pipe, workers) as ws:

                def drained() -> bool:
                    done = _committed(c, pipe.settings.topics.iq, parts)
                    samples.append((time.monotonic(), done))
                    progress.update(task, completed=done)
                    return done >= total

                _wait(f"N={n} backlog", drained, 120 + total / 100, *ws)
        finally:
            c.close()
    t = np.array([s[0] for s in samples])
    k = np.array([s[1] for s in samples], dtype=float)
    t10 = float(np.interp(0.1 * total, k, t))
    t90 = float(np.interp(0.9 * total, k, t))
    return 0.8 * total / max(t90 - t10, 1e-9)


def measure_realtime(
    ctx: Context,
    workdir: Path,
    n: int,
    channels: int,
    workers: int,
    window_s: float,
    tdoa: bool = False,
) -> Row:
    parts = max(3, workers)
    offered = n * channels / CHUNK_S
    row = Row(receivers=n, offered_chunks_s=offered, workers=workers,
              channels_per_receiver=channels, tdoa=tdoa)  # fmt: skip
    serde = Serde()
    plan = publisher.Plan(n, channels, realtime=True, nbfm=tdoa)
    with ctx.progress() as progress, broker_with_topics(workdir, parts, tdoa=tdoa) as pipe:
        t = pipe.settings.topics
        task = progress.add_task(f"N={n}: real time, synthesising", total=None)
        sink = Child("sink", ["sink"], worker_env(pipe.settings), pipe.logs / "sink.log")
        lag_c = kafka.consumer(pipe.settings, pipe.settings.streams_app_id)
        with (
            _publisher(pipe, plan) as (published, ready, proc),
            Collector(pipe.settings, [t.localizations]) as col,
        ):
            _wait(f"N={n} synthesis", ready.is_set, 600, proc)
            with _workers(pipe, workers) as ws:
                t_start = time.monotonic()
                sink.start()
                try:
                    progress.update(task, description=f"N={n}: waiting for the first localization")
                    _wait(f"N={n} first localization", lambda: col.count(t.localizations) > 0,
                          120, proc, sink, *ws)  # fmt: skip
                    row.first_localization_s = time.monotonic() - t_start
                    pids = {"broker": pipe.broker_pid, "publisher": proc.pid,
                            "sink": sink.proc.pid if sink.proc else None, "bench": os.getpid(),
                            **{f"worker-{i}": w.proc.pid if w.proc else None
                               for i, w in enumerate(ws)}}  # fmt: skip
                    cpu0 = {k: _cpu_s(p) for k, p in pids.items()}
                    t0 = time.monotonic()
                    t0_ns = time.time_ns()
                    lags: list[tuple[float, float]] = []
                    progress.update(task, description=f"N={n}: real time ({window_s:.0f} s)",
                                    total=round(window_s))  # fmt: skip
                    while (now := time.monotonic()) < t0 + window_s:
                        _wait(f"N={n} real time", lambda: True, 1, proc, sink, *ws)
                        lag = published.value - _committed(lag_c, t.iq, parts)
                        lags.append((now - t0, float(lag)))
                        progress.update(task, completed=now - t0)
                        time.sleep(1.0)
                    elapsed = time.monotonic() - t0
                    row.cpu_share = {
                        k: round((_cpu_s(p) - cpu0[k]) / elapsed, 3) for k, p in pids.items()
                    }
                    end_ns = time.time_ns()
                finally:
                    sink.stop()
            locs = col.events[t.localizations]
            window = [
                serde.decode_dict(v)[1]
                for ts, v in zip(locs.arrival_ns, locs.values, strict=False)
                if t0_ns <= ts < end_ns
            ]
            lat_s = [d["processing_latency_s"] for d in window]
            steady_s = [
                serde.decode_dict(v)[1]["processing_latency_s"]
                for ts, v in zip(locs.arrival_ns, locs.values, strict=False)
                if t0_ns + WARMUP_S * 1e9 <= ts < end_ns
            ]
            if tdoa:
                n_tdoa = sum(d["method"] == "tdoa" for d in window)
                row.tdoa_fixes_s = n_tdoa / ((end_ns - t0_ns) / 1e9)
        lag_c.close()
    last = [lag for s, lag in lags if s >= 2 * window_s / 3] or [lags[-1][1]]
    row.lag_max_chunks = max(lag for _, lag in lags)
    row.lag_last_chunks = lags[-1][1]
    row.realtime_held = max(last) < 2.0 * offered
    row.localizations = len(lat_s)
    if lat_s:
        p50, p99 = quantiles(lat_s, (0.5, 0.99))
        row.e2e_p50_ms, row.e2e_p99_ms = p50 * 1000, p99 * 1000
    if steady_s:
        row.e2e_p99_steady_ms = quantiles(steady_s, (0.99,))[0] * 1000
    return row


def measure_ceiling(n_batch: int = 256, repeats: int = 5) -> float:
    """Chunks/s of decode + ``scipy.signal.welch`` over the batch + encode, one core."""
    serde = Serde()
    pool = publisher.synthesise(publisher.Plan(n_batch, 1))
    wire = [serde.encode_dict(IqChunk.SCHEMA, d) for step in pool for _, d in step][:n_batch]
    first = serde.decode(wire[0], expect=IqChunk)
    m = measure_chunks([first])[0]
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        chunks = [serde.decode(w, expect=IqChunk) for w in wire]
        x = np.stack([c.iq for c in chunks])
        sps.welch(x, fs=first.sample_rate_hz, window="hann", nperseg=256, noverlap=128,
                  detrend=False, return_onesided=False, scaling="density", axis=-1)  # fmt: skip
        for _c in chunks:
            serde.encode(m)
        best = min(best, time.perf_counter() - t0)
    return len(wire) / best


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
    receivers = ctx.options.get("receivers") or ((100,) if ctx.quick else RECEIVERS)
    channels = ctx.options.get("channels") or 1
    workers = ctx.options.get("workers") or max(os.cpu_count() or 1, 1)
    window_s = 20.0 if ctx.quick else 60.0
    backlog = 3000 if ctx.quick else 10000
    ceiling = measure_ceiling()
    rows: list[Row] = []
    tdoa_rows: list[Row] = []
    up: UpResult | None = None
    with tempfile.TemporaryDirectory(prefix="heimdall-bench-") as tmp:
        root = Path(tmp)
        for n in receivers:
            tput = _attempt(ctx, f"N={n} throughput", measure_throughput, root / f"tput-{n}", n,
                            channels, workers, backlog)  # fmt: skip
            row = _attempt(ctx, f"N={n} real time", measure_realtime, root / f"rt-{n}", n,
                           channels, workers, window_s)  # fmt: skip
            if ctx.options.get("tdoa"):
                with_tdoa = _attempt(ctx, f"N={n} real time, TDOA", measure_realtime,
                                     root / f"rt-tdoa-{n}", n, channels, workers, window_s,
                                     True)  # fmt: skip
                if with_tdoa is not None:
                    tdoa_rows.append(with_tdoa)
            row = row or Row(receivers=n, offered_chunks_s=n * channels / CHUNK_S,
                             workers=workers, channels_per_receiver=channels)  # fmt: skip
            row.features_chunks_s = tput
            row.ceiling_chunks_s = ceiling
            if tput is not None:
                row.ratio_to_ceiling = tput / workers / ceiling
            rows.append(row)
        up = _attempt(ctx, "heimdall up", measure_up, root / "up")
    t = table(
        "pipeline at scale — embedded Tansu, publisher, workers and sink as processes, per N",
        ["receivers", "offered chunks/s", "features chunks/s", "÷ ceiling per worker",
         "real time held", "max / last lag", "chunk→loc. p50 / p99 / p99 steady ms", "1st loc. s",
         "CPU share (of one core)"],
        _caption(ceiling, workers, channels, window_s, backlog, up),
    )  # fmt: skip
    for r in rows:
        t.add_row(
            str(r.receivers),
            fmt(r.offered_chunks_s, 0),
            fmt(r.features_chunks_s, 0),
            fmt(r.ratio_to_ceiling, 2),
            "–" if r.realtime_held is None else ("yes" if r.realtime_held else "NO"),
            f"{fmt(r.lag_max_chunks, 0)} / {fmt(r.lag_last_chunks, 0)}",
            f"{fmt(r.e2e_p50_ms, 0)} / {fmt(r.e2e_p99_ms, 0)} / {fmt(r.e2e_p99_steady_ms, 0)}",
            fmt(r.first_localization_s),
            ", ".join(f"{k} {v:.2f}" for k, v in r.cpu_share.items()) or "–",
        )
    ctx.show(t)
    if tdoa_rows:
        ctx.show(_tdoa_table(rows, tdoa_rows, window_s))
    out = ctx.options.get("json")
    if out:
        all_rows = [asdict(r) for r in rows + tdoa_rows]
        Path(out).write_text(json.dumps(all_rows, indent=2) + "\n")
        ctx.console.print(f"[dim]written to {out}[/dim]")


def _tdoa_table(rss: list[Row], tdoa: list[Row], window_s: float) -> Any:
    """The TDOA rows beside the RSS-only rows of the same N: fixes/s and the CPU it costs."""
    t = table(
        "pipeline with in-stream TDOA (NBFM transmitters) beside the RSS-only path, per N",
        ["receivers", "TDOA fixes/s", "real time held", "chunk→loc. p50 / p99 ms",
         "workers' CPU, RSS only → with TDOA", "broker CPU", "extra CPU per receiver, ms/s"],
        f"Real time as above, {window_s:.0f} s from the first localization; TDOA blocks of "
        "HEIMDALL_TDOA_WINDOW_S; extra CPU per receiver = (all processes' CPU with TDOA − "
        "without) / N, in CPU-ms per second.",
    )  # fmt: skip
    base = {r.receivers: r for r in rss}
    for r in tdoa:
        b = base.get(r.receivers)
        w_rss = sum(v for k, v in (b.cpu_share if b else {}).items() if k.startswith("worker"))
        w_tdoa = sum(v for k, v in r.cpu_share.items() if k.startswith("worker"))
        extra = None
        if b is not None and b.cpu_share and r.cpu_share:
            extra = (sum(r.cpu_share.values()) - sum(b.cpu_share.values())) / r.receivers * 1e3
        t.add_row(
            str(r.receivers),
            fmt(r.tdoa_fixes_s, 2),
            "–" if r.realtime_held is None else ("yes" if r.realtime_held else "NO"),
            f"{fmt(r.e2e_p50_ms, 0)} / {fmt(r.e2e_p99_ms, 0)}",
            f"{w_rss:.2f} → {w_tdoa:.2f}",
            f"{r.cpu_share.get('broker', 0.0):.2f}",
            fmt(extra, 2),
        )
    return t


def _caption(
    ceiling: float, workers: int, channels: int, window_s: float, backlog: int, up: UpResult | None
) -> str:
    lines = [
        f"Network: N receivers from bench.scenarios, {channels} 12 kHz channel(s) each, 0.2 s ci16 "
        "chunks; ceil(N/25) transmitters (40 dBm carriers, free space), each receiver tuned to "
        "its nearest; IQ pre-synthesised (5 steps per receiver) and re-published with fresh ids "
        "and times by a publisher process.",
        f"features chunks/s: {workers} worker process(es) on a pre-published backlog of ≈{backlog} "
        "chunks, the growth of their committed offsets on rf.iq between 10 % and 90 %. "
        f"÷ ceiling per worker: that rate / {workers} / the ceiling loop ({ceiling:,.0f} chunks/s "
        "on one core: decode 256 IqChunks + scipy.signal.welch over the batch + encode 256 "
        "Measurements).",
        f"Real time: workers, sink (chDB) and publisher paced at real time; from the first "
        f"localization, {window_s:.0f} s: lag = chunks published − committed by the workers, "
        "sampled each second; held = largest lag in the last third < 2 s of offered chunks; "
        "chunk→loc. = Localization.processing_latency_s (association window excluded); p99 steady: "
        f"fixes from {WARMUP_S:.0f} s after the first localization on (the workers start behind "
        "the publisher and catch up first); CPU share "
        "= CPU seconds of the process / wall seconds of the window (2 cores: 2.0 is the machine).",
    ]
    if up is not None:
        printed = "–" if up.first_localization_s is None else f"{up.first_localization_s:.1f} s"
        lines.append(f"heimdall up (Runtime, seed network, default workers): first localization "
                     f"{printed} after run().")  # fmt: skip
    return "\n".join(lines)


def _attempt(ctx: Context, what: str, fn: Callable[..., T], *args: Any) -> T | None:
    """Run one phase; a failure is reported and leaves its cells empty (Ctrl-C still stops)."""
    try:
        return fn(ctx, *args)
    except Exception as exc:
        ctx.console.print(f"[red]pipeline: {what} failed: {type(exc).__name__}: {exc}[/red]")
        return None
