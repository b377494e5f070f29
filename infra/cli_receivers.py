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

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.infra.runtime import log_to_file
from heimdall.infra.topics import ensure_topics, heimdall_topics
from heimdall.producers.adapters.base import AdapterOptions, ReceiverAdapter, ReceiverInfo
from heimdall.producers.adapters.kiwisdr import DEFAULT_PORT as KIWI_PORT
from heimdall.producers.adapters.kiwisdr import KiwiSdrAdapter, KiwiSdrConfig
from heimdall.producers.adapters.openwebrx import OpenWebRxAdapter, OpenWebRxConfig
from heimdall.producers.adapters.rtltcp import DEFAULT_PORT, RtlTcpAdapter, RtlTcpConfig
from heimdall.producers.adapters.runtime import RunSummary, run_adapters
from heimdall.producers.network import load_network, run_network
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import Position, SampleFormat

__all__ = [
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


def receiver_rtltcp(
    freq: Annotated[float, typer.Option("--freq", help="channel centre frequency, Hz")],
    lat: Lat,
    lon: Lon,
    host: Annotated[str, typer.Option(help="rtl_tcp server address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="rtl_tcp server port")] = DEFAULT_PORT,
    receiver_id: ReceiverId = "rtltcp-1",
    alt: Alt = 0.0,
    gain: Annotated[
        float | None, typer.Option(help="manual tuner gain, dB (default: automatic)")
    ] = None,
    sample_rate: Annotated[int, typer.Option(help="dongle sample rate, Hz")] = 1_152_000,
    channel_rate: Annotated[int, typer.Option(help="published channel rate, Hz")] = 12_000,
    offset: Annotated[
        float | None, typer.Option(help="tune this far above the channel, Hz (default rate/4)")
    ] = None,
    ppm: Annotated[int, typer.Option(help="crystal correction, ppm")] = 0,
    calibration: Calibration = 0.0,
    full_scale_dbm: Annotated[
        float | None, typer.Option(help="calibrated full-scale power, dBm (default nominal)")
    ] = None,
    cf32: Annotated[bool, typer.Option("--cf32", help="publish cf32 instead of ci16")] = False,
    duration: Duration = None,
) -> None:
    """Stream one channel of an rtl_tcp server (RTL-SDR dongle) to Kafka."""
    settings = load_settings()
    cfg = RtlTcpConfig(
        host=host,
        port=port,
        freq_hz=freq,
        sample_rate_hz=sample_rate,
        channel_rate_hz=channel_rate,
        tune_offset_hz=offset,
        gain_db=gain,
        ppm=ppm,
        full_scale_dbm=full_scale_dbm,
        sample_format=SampleFormat.CF32 if cf32 else SampleFormat.CI16,
    )
    info = ReceiverInfo(
        receiver_id=receiver_id,
        kind=RtlTcpAdapter.kind,
        position=Position(lat_deg=lat, lon_deg=lon, alt_m=alt),
        url=cfg.address,
        calibration_offset_db=calibration,
    )
    Position.check(info.position)
    adapter: ReceiverAdapter = RtlTcpAdapter(info, cfg, AdapterOptions())
    _prepare(settings)
    summary = run_adapters(settings, [adapter], duration_s=duration)
    print_run_summary(summary, err_console)


def _run_one(settings: HeimdallSettings, adapter: ReceiverAdapter, duration: float | None) -> None:
    """Run one adapter with measurements routed to the features topic; print the summary."""
    Position.check(adapter.info.position)
    _prepare(settings)
    summary = run_adapters(settings, [adapter], duration_s=duration, publisher=Publisher(settings))
    print_run_summary(summary, err_console)


def receiver_openwebrx(
    url: Annotated[
        str, typer.Option(help="websocket URL, ws://host:8073/ws/ (or http://host:8073/)")
    ],
    freq: Annotated[float, typer.Option("--freq", help="channel frequency, Hz")],
    lat: Lat,
    lon: Lon,
    mod: Annotated[str, typer.Option(help="demodulator (nfm, am, usb, ...)")] = "nfm",
    receiver_id: ReceiverId = "owrx-1",
    alt: Alt = 0.0,
    bandwidth: Annotated[float, typer.Option(help="channel width, Hz")] = 12_000.0,
    profile: Annotated[
        str | None, typer.Option(help="SDR profile to select, 'sdr_id|profile_id'")
    ] = None,
    center: Annotated[
        float | None, typer.Option(help="ask the server to move the SDR centre here, Hz")
    ] = None,
    key: Annotated[str | None, typer.Option(help="the server's magic key, if any")] = None,
    measure: Annotated[
        str, typer.Option(help="power from: combined (S-meter + FFT noise), fft, smeter")
    ] = "combined",
    integration: Annotated[float, typer.Option(help="seconds per measurement")] = 0.5,
    calibration: Calibration = 0.0,
    full_scale_dbm: Annotated[
        float, typer.Option(help="calibrated full-scale power, dBm (default 0: dBFS)")
    ] = 0.0,
    duration: Duration = None,
) -> None:
    """Measure one channel of an OpenWebRX(+) receiver (channel power to the features topic)."""
    settings = load_settings()
    cfg = OpenWebRxConfig(
        url=url,
        freq_hz=freq,
        mod=mod,
        channel_bw_hz=bandwidth,
        profile=profile,
        center_freq_hz=center,
        magic_key=key,
        measure=measure,  # type: ignore[arg-type]  # checked by OpenWebRxConfig.check
        integration_s=integration,
        full_scale_dbm=full_scale_dbm,
    )
    info = ReceiverInfo(
        receiver_id=receiver_id,
        kind=OpenWebRxAdapter.kind,
        position=Position(lat_deg=lat, lon_deg=lon, alt_m=alt),
        url=cfg.ws_url,
        calibration_offset_db=calibration,
    )
    _run_one(settings, OpenWebRxAdapter(info, cfg, AdapterOptions()), duration)


def receiver_kiwisdr(
    freq: Annotated[float, typer.Option("--freq", help="channel centre frequency, Hz")],
    lat: Lat,
    lon: Lon,
    host: Annotated[str | None, typer.Option(help="KiwiSDR host")] = None,
    port: Annotated[int, typer.Option(help="KiwiSDR port")] = KIWI_PORT,
    url: Annotated[
        str | None, typer.Option(help="http://host:port/ of the KiwiSDR (instead of --host)")
    ] = None,
    receiver_id: ReceiverId = "kiwi-1",
    alt: Alt = 0.0,
    low_cut: Annotated[float, typer.Option(help="IQ pass band low edge, Hz")] = -5000.0,
    high_cut: Annotated[float, typer.Option(help="IQ pass band high edge, Hz")] = 5000.0,
    agc: Annotated[bool, typer.Option("--agc/--no-agc", help="the Kiwi's AGC")] = True,
    gain: Annotated[int, typer.Option(help="manual gain when the AGC is off, dB")] = 50,
    password: Annotated[str, typer.Option(help="the Kiwi's user password, if any")] = "",
    rssi: Annotated[
        bool, typer.Option("--rssi", help="also publish the S-meter as measurements")
    ] = False,
    calibration: Calibration = 0.0,
    duration: Duration = None,
) -> None:
    """Stream GPS-timed IQ of one channel of a KiwiSDR to Kafka."""
    from heimdall.producers.network import split_host_port

    settings = load_settings()
    if url is None and host is None:
        raise typer.BadParameter("give --host (and --port) or --url")
    h, p = split_host_port(url, KIWI_PORT) if url else (host or "", port)
    cfg = KiwiSdrConfig(
        host=h,
        port=p,
        freq_hz=freq,
        low_cut_hz=low_cut,
        high_cut_hz=high_cut,
        agc=agc,
        man_gain_db=gain,
        password=password,
        rssi_measurements=rssi,
    )
    info = ReceiverInfo(
        receiver_id=receiver_id,
        kind=KiwiSdrAdapter.kind,
        position=Position(lat_deg=lat, lon_deg=lon, alt_m=alt),
        url=cfg.address,
        calibration_offset_db=calibration,
    )
    _run_one(settings, KiwiSdrAdapter(info, cfg, AdapterOptions()), duration)
