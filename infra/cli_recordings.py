"""Command functions for recordings (plain typer functions; ``infra/cli.py`` registers them).

* ``heimdall receiver kiwi-wav WAV... [--speed X | --fast] [--position-file F]...``
* ``heimdall receiver sigmf PATH... [--speed X | --fast]``
* ``heimdall record sigmf RECEIVER_ID OUT_DIR [--from-ns N] [--to-ns N]``

Replays show a progress bar on stderr; every error Heimdall raises on purpose is a
:class:`~heimdall.core.errors.HeimdallError`, which ``heimdall``'s ``main`` prints as one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from heimdall.core.settings import load_settings

err_console = Console(stderr=True)

__all__ = ["receiver_kiwi_wav", "receiver_sigmf", "record_sigmf"]


@contextmanager
def _progress(label: str, enabled: bool = True) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar of samples; yields the ``on_progress(done, total)`` callback."""
    if not enabled:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("samples"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as prog:
        task = prog.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            prog.update(task, completed=done, total=total)

        yield update


def _utc(t_ns: int | None) -> str:
    if t_ns is None:
        return "-"
    s, ns = divmod(t_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(s)) + f".{ns // 1000:06d}Z"


def receiver_kiwi_wav(
    paths: Annotated[
        list[Path],
        typer.Argument(help="KiwiSDR IQ WAV files (<time>_<freq>_<STATION>_iq.wav)", exists=True),
    ],
    speed: Annotated[
        float, typer.Option(help="replay this many times faster than real time")
    ] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="replay as fast as possible")] = False,
    position_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--position-file",
            help="<STATION>.gnss_pos.txt: one per WAV in order, or one holding every station; "
            "default: found beside each WAV",
            exists=True,
        ),
    ] = None,
    blocks_per_chunk: Annotated[
        int, typer.Option(help="512-sample blocks per published chunk", min=1)
    ] = 5,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Replay KiwiSDR GPS-stamped IQ recordings into the IQ topic, together, in event time."""
    from heimdall.producers.recordings.kiwi_wav import read_kiwi_wav
    from heimdall.producers.recordings.replay import kiwi_position, kiwi_source, replay

    if speed <= 0:
        raise typer.BadParameter("--speed must be positive")
    pfs: list[Path | None]
    if not position_file:
        pfs = [None] * len(paths)
    elif len(position_file) == 1:
        pfs = [position_file[0]] * len(paths)
    elif len(position_file) == len(paths):
        pfs = list(position_file)
    else:
        raise typer.BadParameter(
            f"{len(paths)} recordings but {len(position_file)} --position-file options"
        )
    table = Table(title="KiwiSDR recordings")
    for col in ("station", "blocks", "duration s", "fitted rate Hz", "ppm", "stale", "outliers"):
        table.add_column(col, justify="right" if col != "station" else "left")
    table.add_column("first sample (UTC)")
    sources = []
    for path, pf in zip(paths, pfs, strict=True):
        rec = read_kiwi_wav(path)
        pos = kiwi_position(rec, pf)
        sources.append(kiwi_source(rec, position=pos, blocks_per_chunk=blocks_per_chunk))
        first = int(rec.sample_times_utc_ns()[0]) if rec.gps_week is not None else None
        table.add_row(
            rec.station,
            str(rec.n_blocks),
            f"{rec.duration_s:.3f}",
            f"{rec.fitted_rate_hz:.4f}",
            f"{rec.rate_offset_ppm:+.2f}",
            str(int(rec.stale_blocks.sum())),
            str(int(rec.outlier_blocks.sum())),
            _utc(first),
        )
    err_console.print(table)
    with _progress("kiwi-wav", progress) as on_progress:
        stats = replay(
            load_settings(), sources, speed=speed, realtime=not fast, on_progress=on_progress
        )
    err_console.print(
        f"published {sum(stats.chunks.values())} chunks "
        f"({', '.join(f'{k}: {v}' for k, v in stats.chunks.items())}) in {stats.wall_s:.1f} s"
        + (" (stopped)" if stats.stopped else "")
    )
    if stats.undelivered:
        raise typer.Exit(1)


def receiver_sigmf(
    paths: Annotated[list[Path], typer.Argument(help="SigMF recordings (.sigmf-meta or base)")],
    speed: Annotated[
        float, typer.Option(help="replay this many times faster than real time")
    ] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="replay as fast as possible")] = False,
    receiver_id: Annotated[
        str | None, typer.Option(help="receiver id (default: heimdall:receiver_id or file name)")
    ] = None,
    clock: Annotated[
        str | None, typer.Option(help="gps, ntp or free (default: the recording's, else free)")
    ] = None,
    chunk_samples: Annotated[
        int | None, typer.Option(help="samples per chunk (default ≈ 0.2 s)", min=1)
    ] = None,
    progress: Annotated[bool, typer.Option(help="show a progress bar")] = True,
) -> None:
    """Replay SigMF recordings into the IQ topic, together, in event time."""
    from heimdall.producers.recordings.replay import replay
    from heimdall.producers.recordings.sigmf_io import read_sigmf, sigmf_source
    from heimdall.schemas.models import ClockSource

    if speed <= 0:
        raise typer.BadParameter("--speed must be positive")
    if receiver_id is not None and len(paths) != 1:
        raise typer.BadParameter("--receiver-id needs exactly one recording")
    try:
        clk = ClockSource(clock) if clock is not None else None
    except ValueError:
        raise typer.BadParameter(f"--clock {clock!r}: gps, ntp or free") from None
    sources = [
        sigmf_source(read_sigmf(p), receiver_id=receiver_id, chunk_samples=chunk_samples, clock=clk)
        for p in paths
    ]
    with _progress("sigmf", progress) as on_progress:
        stats = replay(
            load_settings(), sources, speed=speed, realtime=not fast, on_progress=on_progress
        )
    err_console.print(
        f"published {sum(stats.chunks.values())} chunks "
        f"({', '.join(f'{k}: {v}' for k, v in stats.chunks.items())}) in {stats.wall_s:.1f} s"
        + (" (stopped)" if stats.stopped else "")
    )
    if stats.undelivered:
        raise typer.Exit(1)


def record_sigmf(
    receiver_id: Annotated[str, typer.Argument(help="receiver id (the IQ topic's key)")],
    out_dir: Annotated[Path, typer.Argument(help="directory of the recording", file_okay=False)],
    from_ns: Annotated[
        int | None, typer.Option(help="first chunk start, UTC ns since the epoch (inclusive)")
    ] = None,
    to_ns: Annotated[
        int | None, typer.Option(help="last chunk start, UTC ns since the epoch (exclusive)")
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="base file name (default: the receiver id)")
    ] = None,
    follow: Annotated[
        bool, typer.Option(help="wait for new chunks until one at or after --to-ns arrives")
    ] = False,
    idle_timeout: Annotated[float, typer.Option(help="stop after S seconds without data")] = 10.0,
    overwrite: Annotated[bool, typer.Option(help="replace an existing recording")] = False,
) -> None:
    """Write one receiver's IQ chunks from the IQ topic as a SigMF recording."""
    from heimdall.producers.recordings.sigmf_io import record_sigmf as record

    if from_ns is not None and to_ns is not None and to_ns <= from_ns:
        raise typer.BadParameter("--to-ns must be after --from-ns")
    if follow and to_ns is None:
        raise typer.BadParameter("--follow needs --to-ns")
    out = out_dir / (name or receiver_id)
    with Progress(
        TextColumn("[bold]record {task.description}"),
        TextColumn("{task.completed} chunks"),
        TimeElapsedColumn(),
        console=err_console,
    ) as prog:
        task = prog.add_task(receiver_id, total=None)
        res = record(
            load_settings(),
            receiver_id,
            out,
            from_ns=from_ns,
            to_ns=to_ns,
            follow=follow,
            idle_timeout_s=idle_timeout,
            overwrite=overwrite,
            on_chunk=lambda chunks, samples: prog.update(task, completed=chunks),
        )
    if res.meta_path is None:
        err_console.print(f"[yellow]no IQ chunks of {receiver_id!r} in that range[/yellow]")
        raise typer.Exit(1)
    lo, hi = res.t_range_ns or (None, None)
    err_console.print(
        f"wrote {res.meta_path}: {res.chunks} chunks, {res.samples} samples, "
        f"{res.captures} capture segment(s), {_utc(lo)} … {_utc(hi)}"
    )
