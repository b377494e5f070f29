"""The ``heimdall`` command line."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from heimdall.core import metrics
from heimdall.core.errors import ConfigError, HeimdallError
from heimdall.core.settings import HeimdallSettings, load_settings

#: Commands whose module is imported only when the command itself is asked for: ``train``
#: imports torch (about a second and 500 MB that ``heimdall up`` and its children, which
#: run this CLI, never need; and torch is only in the ``train`` extra).
LAZY_COMMANDS = {"train": ("heimdall.infra.cli_train", "train")}
#: Modules of the ``train`` extra: without them a lazy command says so in one line.
TRAIN_EXTRA = ("torch", "onnx", "matplotlib")


def _lazy_command(name: str) -> Any:
    """The click command of a lazy command (a one-line ConfigError stub without its extra)."""
    module, attr = LAZY_COMMANDS[name]
    settings: dict[str, Any] = {}
    try:
        fn: Callable[..., None] = getattr(importlib.import_module(module), attr)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in TRAIN_EXTRA:
            raise
        missing = exc.name

        def fn() -> None:
            raise ConfigError(
                f"heimdall {name} needs {missing}, which is not installed: install the train "
                "extra (pip install -e '.[train]')"
            )

        fn.__doc__ = f"(needs the train extra: {missing} is not installed)"
        settings = {"ignore_unknown_options": True, "allow_extra_args": True}
    one = typer.Typer(add_completion=False)
    one.command(name, context_settings=settings)(fn)
    return typer.main.get_command(one)


class _LazyGroup(TyperGroup):
    """The top-level group: :data:`LAZY_COMMANDS` are loaded when asked for."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in LAZY_COMMANDS if n not in self.commands)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            self.add_command(_lazy_command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(
    cls=_LazyGroup,
    name="heimdall",
    help="Find radio transmitters from a network of receivers (Kafka + Faust + ClickHouse).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def _settings() -> HeimdallSettings:
    return load_settings()


@app.command()
def up(
    duration: Annotated[float | None, typer.Option(help="stop after this many seconds")] = None,
    fast: Annotated[bool, typer.Option("--fast", help="simulate as fast as possible")] = False,
    sim_seconds: Annotated[
        float | None, typer.Option(help="simulate this much signal time, then drain and stop")
    ] = None,
    scenario: Annotated[
        str | None, typer.Option(help="simulated scenario (default seed-network)")
    ] = None,
    seed: Annotated[int, typer.Option(help="simulator seed")] = 1,
    no_sim: Annotated[bool, typer.Option("--no-sim", help="run without the simulator")] = False,
    network: Annotated[
        Path | None,
        typer.Option(
            help="run this network file's receivers (recordings, live receivers, known "
            "sources) instead of the simulator; recordings that end end the run"
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, help="stream worker processes sharing the partitions (default: cores)"),
    ] = None,
    summary_json: Annotated[
        Path | None, typer.Option(help="also write the summary as JSON to this file")
    ] = None,
    no_dashboard: Annotated[
        bool, typer.Option("--no-dashboard", help="do not start the web dashboard")
    ] = False,
    dashboard_port: Annotated[int, typer.Option(help="port of the web dashboard")] = 8765,
    no_archive: Annotated[
        bool, typer.Option("--no-archive", help="do not archive the topics to the object store")
    ] = False,
) -> None:
    """Run the whole pipeline (embedded unless KAFKA_BOOTSTRAP_SERVERS etc. are set)."""
    from heimdall.infra.runtime import Runtime, UpOptions, log_to_file
    from heimdall.infra.summary import print_summary

    if network is not None:
        from heimdall.core.errors import ConfigError
        from heimdall.producers.network import load_network

        clash = [flag for flag, given in (("--scenario", scenario is not None),
                 ("--no-sim", no_sim), ("--sim-seconds", sim_seconds is not None),
                 ("--fast", fast)) if given]  # fmt: skip
        if clash:
            raise ConfigError(
                f"--network runs a network file instead of the simulator: it cannot be "
                f"combined with {', '.join(clash)} (the file's replay: section sets the pace)"
            )
        load_network(network)  # a mistake in the file is one line, before anything starts
    settings = _settings()
    log_to_file(settings.data_dir / "logs" / "heimdall.log", settings.log_level)
    for where, how in settings.describe().items():
        console.print(f"[dim]{where}:[/dim] {how}")
    opts = UpOptions(
        duration_s=duration,
        sim_seconds=sim_seconds,
        realtime=not fast,
        scenario=scenario or "seed-network",
        seed=seed,
        simulate=not no_sim and network is None,
        workers=workers,
        network=network,
        dashboard_port=None if no_dashboard else dashboard_port,
        archive=not no_archive,
    )
    runtime = Runtime(settings, opts, console)
    summary = runtime.run()
    print_summary(summary, console)
    if summary_json is not None:
        summary.write_json(summary_json)
        console.print(f"[dim]summary written to {summary_json}[/dim]")
    if runtime.failure is not None:  # a crash loop or the broker gone: said before the summary
        raise typer.Exit(1)


@app.command()
def dashboard(
    host: Annotated[
        str, typer.Option(help="address to listen on (beyond loopback needs a token)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8765,
) -> None:
    """Serve the live map and the pipeline's health (HEIMDALL_DASHBOARD_TOKEN to bind widely)."""
    from heimdall.infra.dashboard import run_dashboard

    run_dashboard(_settings(), host, port, say=console.print)


@app.command()
def worker() -> None:
    """Run the stream processors (features, associate, localize) as a Faust worker."""
    from heimdall.streams.worker import run_worker

    settings = _settings()
    run_worker(settings, loglevel=settings.log_level.lower())


@app.command()
def sink(
    group_id: Annotated[str, typer.Option(help="consumer group")] = "heimdall-clickhouse-sink",
) -> None:
    """Write features, observations, localizations and truth to ClickHouse until stopped."""
    import signal
    import threading

    from heimdall.consumers.clickhouse_sink import ClickHouseSink
    from heimdall.core.store import open_clickhouse
    from heimdall.core.topics import ensure_stage_topics
    from heimdall.infra.clickhouse.migrate import apply_schema
    from heimdall.schemas.serde import Serde

    settings = _settings()
    ensure_stage_topics(settings)
    store = open_clickhouse(settings)
    apply_schema(store, settings.clickhouse.database)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    s = ClickHouseSink(settings, store, Serde.from_settings(settings), group_id=group_id)
    lag = None
    if metrics.serve_from_settings(settings) is not None:
        lag = metrics.LagSampler(settings, group_id, s.topics).start()
    try:
        s.run(stop)
    finally:
        if lag is not None:
            lag.stop()
        store.close()
    err_console.print(f"sink: wrote {s.stats.rows}")


@app.command()
def tail(
    topic: Annotated[
        str,
        typer.Argument(
            help="topic name, or a role: iq, features, observations, "
            "localizations, truth, receivers, models, dlq"
        ),
    ],
    from_beginning: Annotated[bool, typer.Option(help="start at the oldest event")] = False,
    max_events: Annotated[int | None, typer.Option("--max", help="stop after N events")] = None,
    timeout: Annotated[float | None, typer.Option(help="stop after S seconds")] = None,
) -> None:
    """Print decoded events of a topic as JSON lines: the smallest downstream subscriber."""
    from heimdall.consumers.tail import tail_topic

    tail_topic(
        _settings(),
        topic,
        from_beginning=from_beginning,
        max_events=max_events,
        timeout_s=timeout,
        out=sys.stdout,
    )


receiver_app = typer.Typer(
    help="Run one receiver adapter or replay one recording into rf.iq.", no_args_is_help=True
)
receivers_app = typer.Typer(help="Run a network of receivers.", no_args_is_help=True)
record_app = typer.Typer(help="Record topics to files.", no_args_is_help=True)
eval_app = typer.Typer(
    help="Evaluate localization on real data (POWDER, DCF77) and against the Cramér–Rao bound.",
    no_args_is_help=True,
)


def _register_subcommands() -> None:
    from heimdall.infra import (
        cli_archive,
        cli_eval_sim,
        cli_models,
        cli_powder,
        cli_receivers,
        cli_recordings,
        cli_simulate,
        cli_tdoa,
        cli_topics,
    )

    app.command("simulate")(cli_simulate.simulate)
    app.add_typer(cli_models.app, name="models")
    app.add_typer(cli_archive.app, name="archive")
    app.add_typer(cli_topics.app, name="topics")
    app.command("replay")(cli_archive.replay)
    app.add_typer(receiver_app, name="receiver")
    app.add_typer(receivers_app, name="receivers")
    app.add_typer(record_app, name="record")
    app.add_typer(eval_app, name="eval")
    receivers_app.command("run")(cli_receivers.receivers_run)
    receiver_app.command("rtltcp")(cli_receivers.receiver_rtltcp)
    receiver_app.command("openwebrx")(cli_receivers.receiver_openwebrx)
    receiver_app.command("kiwisdr")(cli_receivers.receiver_kiwisdr)
    receiver_app.command("kiwi-wav")(cli_recordings.receiver_kiwi_wav)
    receiver_app.command("sigmf")(cli_recordings.receiver_sigmf)
    record_app.command("sigmf")(cli_recordings.record_sigmf)
    eval_app.command("tdoa")(cli_tdoa.eval_tdoa)
    eval_app.command("powder")(cli_powder.eval_powder)
    eval_app.command("sim")(cli_eval_sim.eval_sim)


_register_subcommands()


def main() -> None:
    try:
        app()
    except HeimdallError as exc:
        # one line whatever the terminal's width (soft_wrap); the message's own brackets
        # ("[and 2 more errors]") are text, not rich markup
        err_console.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
