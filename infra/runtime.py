"""``heimdall up``: the whole pipeline on one machine, or against real clusters.

Embedded (nothing set): a Tansu broker child process on loopback, chDB in ``<data dir>/chdb``
owned by this process (the ClickHouse sink runs in a thread here), the Faust worker and the
simulated receiver network as child processes; with ``network`` set, a network file's
receivers (``heimdall receivers run FILE``: recordings, live receivers, known sources) run
as the child instead of the simulator. Setting ``KAFKA_BOOTSTRAP_SERVERS`` and
``CLICKHOUSE_URL`` runs the same stages against real services: only the broker launch is
skipped.

It ends on ``--duration``, Ctrl-C or SIGTERM, or when the producer child ends by itself (a
finite simulation, a network's recordings at their end: the stages drain first), stopping
the producers first, letting the stages drain, then the worker, the sink (flush and commit)
and the broker, and prints a summary read back from ClickHouse.

Supervision: every child in :attr:`Runtime.children` (whatever it is) that dies is restarted
with exponential backoff (:mod:`heimdall.infra.supervise`, ``HEIMDALL_RESTART_*``), shown in
the live view and counted in the summary's ``restarts``; a crash loop ends the run with one
line naming the child and its exit code, then the summary. The producer child ending with
exit code 0 is the end of its input, not a death. The embedded broker keeps its events in
memory, so a restarted one would have lost them all: its death ends the run with one line
and a summary from what was counted before (``Runtime.failure`` holds the reason).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from confluent_kafka import KafkaException
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from heimdall.consumers.clickhouse_sink import ClickHouseSink
from heimdall.consumers.queries import (
    count_rows,
    duplicate_counts,
    last_fixes,
    localization_error_details,
)
from heimdall.core import kafka, metrics
from heimdall.core.settings import HeimdallSettings
from heimdall.core.store import open_clickhouse
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import EmbeddedBroker
from heimdall.infra.clickhouse.migrate import apply_schema
from heimdall.infra.model_announce import announce, registry_of
from heimdall.infra.monitor import LiveStats, Monitor, topic_counts
from heimdall.infra.processes import Child, child_env
from heimdall.infra.summary import Summary, build_summary
from heimdall.infra.supervise import RestartPolicy, Supervisor
from heimdall.schemas.serde import Serde

log = logging.getLogger(__name__)

#: The stream worker's light entry point (``heimdall worker`` without the whole CLI).
WORKER_MODULE = "heimdall.streams.worker"


@dataclass(frozen=True)
class UpOptions:
    """What ``heimdall up`` runs.

    ``duration_s``: stop after this much wall-clock time (None: until stopped).
    ``sim_seconds``: simulate this much signal time, then drain and stop (None: unbounded).
    ``realtime``: pace the simulator at real time; otherwise as fast as possible.
    ``network``: run this network file's receivers instead of the simulator (``simulate``
    must be False); they end, and ``up`` drains and stops, when its recordings end.
    """

    duration_s: float | None = None
    sim_seconds: float | None = None
    realtime: bool = True
    scenario: str = "seed-network"
    seed: int = 1
    simulate: bool = True
    live: bool = True
    drain_timeout_s: float = 60.0
    network: Path | None = None
    workers: int | None = None
    """Stream worker processes sharing the partitions (None: one per CPU core)."""
    dashboard_port: int | None = None
    """Port of the web dashboard child on 127.0.0.1 (None: no dashboard)."""
    archive: bool = True
    """Run the archiver child (``heimdall.consumers.archive``: topics to the object store)."""

    @property
    def n_workers(self) -> int:
        return self.workers if self.workers is not None else max(os.cpu_count() or 1, 1)


class Runtime:
    """Starts, watches and stops every part of an embedded or distributed run."""

    def __init__(
        self, settings: HeimdallSettings, options: UpOptions, console: Console | None = None
    ) -> None:
        self.settings = settings
        self.options = options
        self.console = console or Console()
        self.stop_event = threading.Event()
        self.broker: EmbeddedBroker | None = None
        self.children: list[Child] = []
        self.sink: ClickHouseSink | None = None
        self._sink_thread: threading.Thread | None = None
        self.monitor: Monitor | None = None
        self.store: Any = None
        self.logs = settings.data_dir / "logs"
        self.supervisor = Supervisor(RestartPolicy.from_settings(settings))
        self.failure: str | None = None
        """Why the run ended early (a crash loop, the broker gone), or None."""
        self.metrics_ports: dict[str, int] = {}
        """The metrics port of this process (``up``) and of each child that serves one."""
        self._metrics: metrics.RuntimeCollector | None = None
        self._lag: metrics.LagSampler | None = None

    # -- start -----------------------------------------------------------------------------
    def _start_broker(self) -> None:
        if not self.settings.kafka.embedded:
            return
        self.broker = EmbeddedBroker(log_path=self.logs / "broker.log").start()
        kafka_settings = self.settings.kafka.model_copy(
            update={"bootstrap_servers": self.broker.bootstrap_servers}
        )
        self.settings = self.settings.model_copy(update={"kafka": kafka_settings})

    def _start_workers(self, env: dict[str, str]) -> None:
        n = self.options.n_workers
        for i in range(n):
            name = "streams" if n == 1 else f"streams-{i + 1}"
            worker = Child(
                name, [], self._metrics_env(name, env), self.logs / f"{name}.log",
                module=WORKER_MODULE,
            )  # fmt: skip
            self.children.append(worker.start())

    def _start_producers(self, env: dict[str, str]) -> None:
        if self.options.network is not None:
            args = ["receivers", "run", str(self.options.network.absolute())]
            self.children.append(Child("network", args, env, self.logs / "network.log").start())
        elif self.options.simulate:
            args = ["simulate", self.options.scenario, "--seed", str(self.options.seed)]
            if self.options.sim_seconds is not None:
                args += ["--duration", str(self.options.sim_seconds)]
            args.append("--realtime" if self.options.realtime else "--fast")
            self.children.append(Child("simulator", args, env, self.logs / "simulator.log").start())

    def _start_dashboard(self, env: dict[str, str]) -> None:
        port = self.options.dashboard_port
        if port is None:
            return
        with socket.socket() as probe:  # a busy port: say so rather than print a wrong URL
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                self.console.print(f"[yellow]dashboard: port {port} in use, not started[/yellow]")
                return
        args, log_path = ["--host", "127.0.0.1", "--port", str(port)], self.logs / "dashboard.log"
        dash = Child("dashboard", args, env, log_path, module="heimdall.infra.dashboard")
        self.children.append(dash.start())
        self.console.print(f"[dim]dashboard:[/dim] http://127.0.0.1:{port}/")

    def _start_archive(self, env: dict[str, str]) -> None:
        if self.options.archive:
            log_path = self.logs / "archive.log"
            arch_env = self._metrics_env("archive", env)
            arch = Child("archive", [], arch_env, log_path, module="heimdall.consumers.archive")
            self.children.append(arch.start())

    def _metrics_env(self, name: str, env: dict[str, str]) -> dict[str, str]:
        """``env`` with the child's own metrics port: ``up``'s port plus 1, 2, … in start order
        (``HEIMDALL_METRICS_PORT=0`` for every child when ``up`` serves none)."""
        base = self.settings.metrics_port
        port = base + 1 + sum(n != "up" for n in self.metrics_ports) if base > 0 else 0
        if port:
            self.metrics_ports[name] = port
        return {**env, "HEIMDALL_METRICS_PORT": str(port)}

    def _start_metrics(self) -> None:
        """Serve ``up``'s metrics: the in-process sink, restarts, broker and children's memory."""
        port = metrics.serve_from_settings(self.settings)
        if port is None:
            return
        self.metrics_ports["up"] = port
        self._metrics = metrics.RuntimeCollector(
            restarts=lambda: dict(self.supervisor.restarts),
            pids=self._pids,
        ).register()

    def _pids(self) -> dict[str, int | None]:
        pids: dict[str, int | None] = {"broker": self.broker.pid if self.broker else None}
        pids.update({c.name: c.proc.pid if c.running and c.proc else None for c in self.children})
        return pids

    def _print_metrics_ports(self) -> None:
        if self.metrics_ports:
            host = self.settings.metrics_host
            self.console.print(
                "[dim]metrics:[/dim] "
                + ", ".join(f"{n} http://{host}:{p}/metrics" for n, p in self.metrics_ports.items())
            )

    def _start_sink(self, serde: Serde) -> None:
        self.store = open_clickhouse(self.settings)
        apply_schema(self.store, self.settings.clickhouse.database)
        self.sink = ClickHouseSink(self.settings, self.store, serde)
        self._sink_thread = threading.Thread(
            target=self.sink.run, args=(self.stop_sink,), name="clickhouse-sink", daemon=True
        )
        self._sink_thread.start()
        if self._metrics is not None:
            self._lag = metrics.LagSampler(self.settings, self.sink.group_id, self.sink.topics)
            self._lag.start()

    # -- run -------------------------------------------------------------------------------
    def _workers(self) -> list[Child]:
        return [c for c in self.children if c.name.startswith("streams")]

    def run(self) -> Summary:
        # every worker needs a partition of each topic: the partition count follows the workers
        if self.options.n_workers > self.settings.partitions:
            self.settings = self.settings.model_copy(update={"partitions": self.options.n_workers})
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.stop_sink = threading.Event()
        t0 = time.monotonic()
        restore = self._install_signal_handlers()
        try:
            self._start_broker()
            self._start_metrics()
            ensure_topics(kafka.admin(self.settings), heimdall_topics(self.settings))
            env = child_env(self.settings.to_env(include_secrets=True))
            self._start_workers(env)  # first: their imports and group join take the longest
            self._start_dashboard(env)
            self._start_archive(env)
            if self.broker is not None:  # a fresh embedded broker knows no model yet
                announce(self.settings, registry_of(self.settings).active_records())
            serde = Serde.from_settings(self.settings)
            self._start_sink(serde)
            self.monitor = Monitor(self.settings, serde, started_monotonic=t0).start()
            self._start_producers(env)
            self._print_metrics_ports()
            self._watch(t0)
            return self._shutdown(t0)
        finally:
            self._teardown()
            restore()

    def _simulator(self) -> Child | None:
        """The producer child: the simulator, or the network's receivers."""
        return next((c for c in self.children if c.name in ("simulator", "network")), None)

    def _watch(self, t0: float) -> None:
        opts = self.options
        deadline = None if opts.duration_s is None else t0 + opts.duration_s
        sim = self._simulator()
        ctx = (
            Live(self._render(t0), console=self.console, refresh_per_second=2, transient=False)
            if opts.live
            else contextlib.nullcontext()
        )
        with ctx as live:
            while not self.stop_event.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if self._broker_gone():
                    break
                if sim is not None and sim.returncode == 0:
                    break  # the end of its input: drain
                if self._supervise(now):
                    break
                if live is not None:
                    live.update(self._render(t0))
                self.stop_event.wait(0.5)
            if self.failure is not None:
                self.console.print(f"[red]{self.failure}[/red]")
            elif sim is not None and sim.returncode == 0 and not self.stop_event.is_set():
                self._drain(live, t0)

    def _supervise(self, now: float, finished: Child | None = None) -> bool:
        """Restart dead children (:class:`Supervisor`); True when it gave up (a crash loop).

        ``finished``: a child whose exit is the end of its input (not restarted).
        """
        children = [c for c in self.children if c is not finished]
        for line in self.supervisor.check(children, now):
            if line != self.supervisor.gave_up:
                self.console.print(f"[yellow]{line}[/yellow]")
        if self.supervisor.gave_up is None:
            return False
        self.failure = self.supervisor.gave_up
        dead = next((c for c in self.children if c.name == self.supervisor.gave_up_on), None)
        if dead is not None:
            self.console.print(f"[dim]last lines of {dead.log_path}:[/dim]")
            self.console.print(dead.tail(5), markup=False, highlight=False)
        return True

    def _broker_gone(self) -> bool:
        """True (and :attr:`failure` set) once the embedded broker died by itself."""
        if self.broker is None or self.broker.returncode is None:
            return False
        self.failure = (
            f"the embedded broker exited with {self.broker.returncode}: its events were in "
            f"memory and are lost; ending the run (broker log: {self.logs / 'broker.log'})"
        )
        return True

    def _drain(self, live: Live | None, t0: float) -> None:
        """After a finite simulation or recording: wait until no topic grows any more.

        At most ``drain_timeout_s``, and never past ``duration_s`` from the start.
        """
        assert self.monitor is not None
        deadline = time.monotonic() + self.options.drain_timeout_s
        if self.options.duration_s is not None:
            deadline = min(deadline, t0 + self.options.duration_s)
        last: dict[str, int] = {}
        stable_since = time.monotonic()
        while time.monotonic() < deadline and not self.stop_event.is_set():
            if self._broker_gone() or self._supervise(time.monotonic(), self._simulator()):
                self.console.print(f"[red]{self.failure}[/red]")
                break
            counts = dict(self.monitor.stats.topic_counts)
            if counts != last:
                last, stable_since = counts, time.monotonic()
            elif self.monitor.stats.localizations > 0 and time.monotonic() - stable_since > 5.0:
                break
            if live is not None:
                live.update(self._render(t0, draining=True))
            time.sleep(0.5)

    def _render(self, t0: float, draining: bool = False) -> Group:
        stats = self.monitor.stats if self.monitor else LiveStats()
        head = Table.grid(padding=(0, 2))
        elapsed = time.monotonic() - t0
        state = "draining" if draining else "running"
        head.add_row(
            f"[bold]heimdall up[/bold] {state} {elapsed:5.0f} s",
            f"localizations [bold]{stats.localizations}[/bold]",
            "median error "
            + (", ".join(f"{m} {_fmt_m(v)}" for m, v in stats.median_error_m().items()) or "–"),
            f"last error {_fmt_m(stats.last_error_m)}",
        )
        topics = Table(show_header=True, header_style="bold", box=None)
        topics.add_column("topic")
        topics.add_column("events", justify="right")
        for name, n in stats.topic_counts.items():
            topics.add_row(name, f"{n:,}")
        if self.sink is not None:
            topics.add_row("[dim]ClickHouse rows[/dim]", f"{sum(self.sink.stats.rows.values()):,}")
        return Group(head, topics, self._render_children())

    def _render_children(self) -> Table:
        """One line per child: running or restarting, and its restarts so far."""
        now = time.monotonic()
        table = Table(show_header=True, header_style="bold", box=None)
        table.add_column("process")
        table.add_column("state")
        table.add_column("restarts", justify="right")
        for c in self.children:
            state = "running" if c.running else self.supervisor.status(c.name, now)
            if state == "running" and not c.running:
                state = f"exited with {c.returncode}"
            n = self.supervisor.restarts.get(c.name, 0)
            style = "yellow" if not c.running else ("cyan" if n else "")
            table.add_row(c.name, f"[{style}]{state}[/{style}]" if style else state, str(n))
        return table

    # -- stop ------------------------------------------------------------------------------
    def _shutdown(self, t0: float) -> Summary:
        sim = self._simulator()
        t_stop = time.monotonic()
        # with the broker gone nothing can flush or commit any more: short grace periods
        broker_gone = self.broker is not None and self.broker.returncode is not None
        if broker_gone and self.monitor is not None:
            self.monitor.stop(timeout_s=0.0)  # its clients would only retry a dead broker
        if sim is not None:
            sim.stop(timeout_s=3.0 if broker_gone else 15.0)
        for w in self._workers():
            w.stop(timeout_s=3.0 if broker_gone else 20.0)
        for c in self.children:  # the archiver reads what the workers wrote, then writes it
            if c.name == "archive":
                c.stop(timeout_s=3.0 if broker_gone else 30.0)
        log.info("producers and worker stopped in %.1f s", time.monotonic() - t_stop)
        live = self.monitor.stats if self.monitor else LiveStats()
        # with the broker gone, the last counts the monitor read are all there is
        counts = dict(live.topic_counts) if broker_gone else self._final_counts()
        log.info("final counts after %.1f s", time.monotonic() - t_stop)
        if self.monitor is not None:
            self.monitor.stop()
        self._stop_sink()
        log.info("sink stopped after %.1f s", time.monotonic() - t_stop)
        return build_summary(
            counts=counts,
            rows={
                t: count_rows(self.store, t)
                for t in ("features", "observations", "localizations", "truth")
            },
            errors=errors_by_method(self.store),
            live=live,
            wall_s=time.monotonic() - t0,
            describe=self.settings.describe(),
            duplicates=duplicate_counts(self.store),
            restarts={c.name: self.supervisor.restarts.get(c.name, 0) for c in self.children},
            last_fixes=last_fixes(self.store),
            workers=len(self._workers()),
        )

    def _final_counts(self) -> dict[str, int]:
        """Events per topic from the broker; if it cannot answer, the monitor's last counts."""
        c = kafka.consumer(self.settings, "heimdall-summary")
        try:
            return topic_counts(c, self.settings.topics.all())
        except KafkaException as exc:
            self.console.print(f"[yellow]final event counts unavailable ({exc}): the last "
                               "counts of the live view are reported[/yellow]")  # fmt: skip
            return dict(self.monitor.stats.topic_counts) if self.monitor else {}
        finally:
            c.close()

    def _stop_sink(self) -> None:
        if self._sink_thread is not None:
            self.stop_sink.set()
            self._sink_thread.join(timeout=60)
            self._sink_thread = None

    def _teardown(self) -> None:
        for child in reversed(self.children):
            child.stop(timeout_s=5.0)
        if self._lag is not None:
            self._lag.stop()
        if self._metrics is not None:
            self._metrics.unregister()
            self._metrics = None
        if self.monitor is not None:
            self.monitor.stop()
        self._stop_sink()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
        if self.broker is not None:
            self.broker.stop()

    def _install_signal_handlers(self) -> Any:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None

        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop_event.set()

        old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for s, h in old.items():
                signal.signal(s, h)

        return restore


def errors_by_method(store: Any) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for e in localization_error_details(store):
        out.setdefault(e.method, []).append(e.error_m)
    return out


def _fmt_m(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v / 1000:.2f} km" if v >= 1000 else f"{v:.0f} m"


def log_to_file(path: Path, level: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        filename=path,
        level=level,
        format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s",
    )
