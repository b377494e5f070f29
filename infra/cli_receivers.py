"""Command functions for real receivers (typer-ready; registered by ``infra/cli.py``).

To wire them::

    from heimdall.infra import cli_receivers

    receivers_app = typer.Typer(help="Receiver networks.", no_args_is_help=True)
    receivers_app.command("run")(cli_receivers.receivers_run)
    app.add_typer(receivers_app, name="receivers")
    receiver_app = typer.Typer(help="One receiver.", no_args_is_help=True)
    receiver_app.command("rtltcp")(cli_receivers.receiver_rtltcp)
    receiver_app.command("openwebrx")(cli_receivers.receiver_openwebrx)
    receiver_app.command("kiwisdr")(cli_receivers.receiver_kiwisdr)
    app.add_typer(receiver_app, name="receiver")

giving ``heimdall receivers run NETWORK_FILE [--duration S]`` (live receivers and
recordings; a network of recordings only ends when they do),
``heimdall receiver rtltcp --host H --port P --freq HZ [--gain DB] ...``,
``heimdall receiver openwebrx --url ws://host:8073/ws/ --freq HZ [--mod nfm] ...`` (channel
power measurements to the features topic) and
``heimdall receiver kiwisdr --host H [--port 8073] --freq HZ ...`` (GPS-timed IQ). They
publish to the broker in ``KAFKA_BOOTSTRAP_SERVERS`` (create the topics if missing), log to
``$HEIMDALL_DATA_DIR/logs/receivers.log`` and show warnings (connection problems, one line
each) on stderr, run until Ctrl-C / SIGTERM or ``--duration``, then print a summary table.
Errors in the network file or the options are :class:`~heimdall.core.errors.ConfigError`
lines, which ``cli.main`` prints without a traceback.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from heimdall.core import kafka
from heimdall.core.errors import ConfigError
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.cli_options import model_options, typer_command
from heimdall.infra.runtime import log_to_file
from heimdall.producers.adapters.base import AdapterOptions, ReceiverAdapter, ReceiverInfo
from heimdall.producers.adapters.kiwisdr import KiwiSdrAdapter, KiwiSdrConfig
from heimdall.producers.adapters.openwebrx import OpenWebRxAdapter, OpenWebRxConfig
from heimdall.producers.adapters.options import AdapterConfig, build_config
from heimdall.producers.adapters.rtltcp import RtlTcpAdapter, RtlTcpConfig
from heimdall.producers.adapters.runtime import RunSummary, run_adapters
from heimdall.producers.network import load_network, run_network
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import Position, SampleFormat

__all__ = [
    "COMMANDS",
    "ReceiverCommand",
    "print_run_summary",
    "receiver_kiwisdr",
    "receiver_openwebrx",
    "receiver_rtltcp",
    "receivers_run",
]

err_console = Console(stderr=True)

# Options every receiver command has (one definition: same flag, type and help everywhere).
ReceiverId = Annotated[str, typer.Option("--id", help="receiver id (Kafka key)")]
# required: a receiver at a default 0° N 0° E would pull every fix it joins towards the Gulf
# of Guinea (issue 16); a missing --lat/--lon is refused by typer with a one-line error
Lat = Annotated[float, typer.Option(help="antenna latitude, degrees (required)")]
Lon = Annotated[float, typer.Option(help="antenna longitude, degrees (required)")]
Alt = Annotated[float, typer.Option(help="antenna height, m")]
Calibration = Annotated[float, typer.Option(help="calibration offset added to every power, dB")]
Duration = Annotated[
    float | None, typer.Option(help="stop after this many seconds (default: until Ctrl-C)")
]


def _prepare(settings: HeimdallSettings) -> None:
    log_to_file(settings.data_dir / "logs" / "receivers.log", settings.log_level)
    logger = logging.getLogger("heimdall.producers")
    if not any(getattr(h, "_heimdall_stderr", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setLevel(logging.WARNING)
        handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
        handler._heimdall_stderr = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))


def print_run_summary(summary: RunSummary, console: Console, skipped: Sequence[str] = ()) -> None:
    """One row per receiver: state, chunks, dropped, errors, sessions, MB read, last error."""
    t = Table(title=f"receivers after {summary.wall_s:.0f} s", title_justify="left")
    for col in ("receiver", "kind", "state", "chunks", "dropped", "errors", "sessions", "MB in"):
        t.add_column(col, justify="left" if col in ("receiver", "kind", "state") else "right")
    t.add_column("last error")
    for a in summary.adapters:
        t.add_row(a.receiver_id, a.kind, a.state.value, f"{a.chunks:,}", f"{a.dropped:,}",
                  f"{a.errors:,}", f"{a.sessions:,}", f"{a.bytes_in / 1e6:,.1f}",
                  a.last_error or "")  # fmt: skip
    console.print(t)
    for line in skipped:
        console.print(f"[yellow]not run:[/yellow] {line}")
    if summary.undelivered:
        console.print(f"[red]{summary.undelivered} events were not delivered to Kafka[/red]")


def receivers_run(
    network_file: Annotated[
        Path, typer.Argument(help="YAML or JSON network file (see heimdall.producers.network)")
    ],
    duration: Duration = None,
) -> None:
    """Run every receiver of a network file in this process (one loop, one producer)."""
    settings = load_settings()
    network = load_network(network_file)  # validate before touching Kafka
    _prepare(settings)
    result = run_network(settings, network, duration_s=duration)
    if result.summary.adapters or not result.replay:
        print_run_summary(result.summary, err_console, result.skipped)
    else:
        for line in result.skipped:
            err_console.print(f"[yellow]not run:[/yellow] {line}")
    if result.replay is not None:
        st = result.replay
        err_console.print(
            f"recordings: published {sum(st.chunks.values())} chunks "
            f"({', '.join(f'{k}: {v}' for k, v in st.chunks.items())}) in {st.wall_s:.1f} s"
            + (" (stopped)" if st.stopped else "")
        )
    if result.truths:
        err_console.print(
            "known sources: published "
            + ", ".join(f"{k}: {v} truths" for k, v in result.truths.items())
        )
    undelivered = result.summary.undelivered + (result.replay.undelivered if result.replay else 0)
    if undelivered:
        raise typer.Exit(1)


# --------------------------------------------------- one receiver: options from its model

#: Options of every ``heimdall receiver KIND`` that are the receiver's, not its adapter's.
_RECEIVER_PARAMS = ("receiver_id", "lat", "lon", "alt", "calibration", "duration")


def _receiver_params(default_id: str) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    return [
        inspect.Parameter("lat", kw, annotation=Lat),
        inspect.Parameter("lon", kw, annotation=Lon),
        inspect.Parameter("receiver_id", kw, default=default_id, annotation=ReceiverId),
        inspect.Parameter("alt", kw, default=0.0, annotation=Alt),
        inspect.Parameter("calibration", kw, default=0.0, annotation=Calibration),
        inspect.Parameter("duration", kw, default=None, annotation=Duration),
    ]


@dataclass(frozen=True)
class ReceiverCommand:
    """How ``heimdall receiver KIND`` is made from the adapter's options model.

    ``extra``: options of the command that are not fields (``--cf32``, ``--url``), turned
    into field values by ``to_fields``; ``optional``: required fields another option may
    give; ``url``: the receiver's URL in its statuses; ``measurements``: the adapter also
    publishes measurements (routed to the features topic).
    """

    config: type[AdapterConfig]
    adapter: type[ReceiverAdapter]
    default_id: str
    doc: str
    url: Callable[[Any], str]
    extra: tuple[inspect.Parameter, ...] = ()
    to_fields: Callable[[dict[str, Any]], dict[str, Any]] = dict
    optional: tuple[str, ...] = ()
    measurements: bool = True

    def params(self) -> list[inspect.Parameter]:
        fields = model_options(self.config, optional=self.optional)
        return [*_receiver_params(self.default_id), *fields, *self.extra]

    def build(self, values: dict[str, Any]) -> ReceiverAdapter:
        """The adapter of the command's option values (ConfigError: one line)."""
        v = dict(values)
        r = {k: v.pop(k) for k in _RECEIVER_PARAMS}
        cfg = build_config(self.config, self.to_fields(v))
        info = ReceiverInfo(
            receiver_id=r["receiver_id"],
            kind=self.adapter.kind,
            position=Position(lat_deg=r["lat"], lon_deg=r["lon"], alt_m=r["alt"]),
            url=self.url(cfg),
            calibration_offset_db=r["calibration"],
        )
        Position.check(info.position)
        make: Callable[[ReceiverInfo, Any, AdapterOptions], ReceiverAdapter] = self.adapter
        return make(info, cfg, AdapterOptions())

    def run(self, **values: Any) -> None:
        settings = load_settings()
        adapter = self.build(values)
        _prepare(settings)
        publisher = Publisher(settings) if self.measurements else None
        summary = run_adapters(
            settings, [adapter], duration_s=values["duration"], publisher=publisher
        )
        print_run_summary(summary, err_console)

    def command(self, name: str) -> Callable[..., None]:
        return typer_command(self.run, self.params(), name, self.doc)


def _rtltcp_fields(v: dict[str, Any]) -> dict[str, Any]:
    if v.pop("cf32"):
        v["sample_format"] = SampleFormat.CF32
    return v


def _kiwisdr_fields(v: dict[str, Any]) -> dict[str, Any]:
    url = v.pop("url")
    if url is None and v["host"] is None:
        raise ConfigError("give --host (and --port) or --url")
    if url is not None:
        v.update(KiwiSdrConfig.from_address(url))
    return v


_KW = inspect.Parameter.KEYWORD_ONLY

#: kind → how its command is made (the CLI's options are the adapter's model).
COMMANDS: dict[str, ReceiverCommand] = {
    "rtltcp": ReceiverCommand(
        RtlTcpConfig, RtlTcpAdapter, "rtltcp-1",
        "Stream one channel of an rtl_tcp server (RTL-SDR dongle) to Kafka.",
        url=lambda c: c.address,
        extra=(inspect.Parameter("cf32", _KW, default=False, annotation=Annotated[
            bool, typer.Option("--cf32", help="publish cf32 (same as --sample-format cf32)")]),),
        to_fields=_rtltcp_fields,
        measurements=False,
    ),
    "openwebrx": ReceiverCommand(
        OpenWebRxConfig, OpenWebRxAdapter, "owrx-1",
        "Measure one channel of an OpenWebRX(+) receiver (channel power to the features topic).",
        url=lambda c: c.ws_url,
    ),
    "kiwisdr": ReceiverCommand(
        KiwiSdrConfig, KiwiSdrAdapter, "kiwi-1",
        "Stream GPS-timed IQ of one channel of a KiwiSDR to Kafka.",
        url=lambda c: c.address,
        extra=(inspect.Parameter("url", _KW, default=None, annotation=Annotated[
            str | None, typer.Option(help="http://host:port/ of the KiwiSDR (instead of --host)")
        ]),),
        to_fields=_kiwisdr_fields,
        optional=("host",),
    ),
}  # fmt: skip

receiver_rtltcp = COMMANDS["rtltcp"].command("receiver_rtltcp")
receiver_openwebrx = COMMANDS["openwebrx"].command("receiver_openwebrx")
receiver_kiwisdr = COMMANDS["kiwisdr"].command("receiver_kiwisdr")
