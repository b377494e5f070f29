"""``heimdall archive``, ``heimdall archive ls`` and ``heimdall replay``.

Not registered here: ``infra/cli.py`` adds :data:`app` as ``archive`` and :func:`replay`.

Exit codes of ``replay``: 0 events were replayed (unreadable archive parts, if any, are
listed on stderr); 1 the range held no event (one line says so); 2 an error (refused
replay into the source topic, a bad time, an unknown topic).
"""

from __future__ import annotations

import json
import signal
import threading
from datetime import UTC, datetime
from typing import Annotated

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from heimdall.core.settings import load_settings

__all__ = ["app", "replay"]

console = Console()
err_console = Console(stderr=True)

app = typer.Typer(
    help="Archive the topics to the object store (no sub-command: run the archiver).",
    invoke_without_command=True,
)


def _resolve(topic: str) -> str:
    """A role name (``iq``, ``observations``, …) becomes the configured topic name."""
    return load_settings().topics.model_dump().get(topic, topic)


def _ms(t: int | None) -> str:
    if t is None:
        return "–"
    return datetime.fromtimestamp(t / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _ns(t: int) -> str:
    return datetime.fromtimestamp(t / 1e9, tz=UTC).isoformat().replace("+00:00", "Z")


@app.callback()
def archive(ctx: typer.Context) -> None:
    """Run the archiver until Ctrl-C/SIGTERM: rf.iq, features, observations, localizations and
    truth to <OBJECT_STORE_URL>/archive as hourly Avro files (HEIMDALL_ARCHIVE_* settings)."""
    if ctx.invoked_subcommand is not None:
        return
    from heimdall.consumers.archive import ArchiveWriter

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    writer = ArchiveWriter(load_settings())
    err_console.print(f"archive: {writer.store.url} <- {', '.join(writer.topics)}")
    stats = writer.run(stop)
    err_console.print(
        f"archive: {stats.events_written} events in {stats.files} files "
        f"({stats.bytes_written / 1e6:.1f} MB)"
    )


@app.command("ls")
def ls(
    topic: Annotated[
        str | None, typer.Option(help="a topic name or role (iq, observations, …)")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="files with events at or after this time")
    ] = None,
    to: Annotated[str | None, typer.Option(help="files with events before this time")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines instead of a table")] = False,
) -> None:
    """List archive files: topic, partition, offsets, time range, events, bytes."""
    from heimdall.consumers.archive_store import ArchiveStore
    from heimdall.consumers.replay import parse_time_ns

    settings = load_settings()
    store = ArchiveStore.from_settings(settings)
    from_ms = None if from_ is None else parse_time_ns(from_) // 1_000_000
    to_ms = None if to is None else -(-parse_time_ns(to) // 1_000_000)
    topics = [_resolve(topic)] if topic else store.topics()
    table = Table(title=f"archive {store.url}", header_style="bold", box=box.SIMPLE_HEAD)
    for col in ("topic", "p", "offsets", "from (UTC)", "to", "events", "bytes"):
        right = col in ("events", "bytes", "p")
        table.add_column(col, justify="right" if right else "left", no_wrap=True)
    n_files = n_events = n_bytes = 0
    for name in topics:
        for f in store.describe(store.files(name, from_ms, to_ms)):
            if isinstance(f, str):
                err_console.print(f"[yellow]{f}[/yellow]")
                continue
            lo, hi = f.min_timestamp_ms, f.max_timestamp_ms
            if (from_ms is not None and hi is not None and hi < from_ms) or (
                to_ms is not None and lo is not None and lo >= to_ms
            ):
                continue
            n_files += 1
            n_events += f.events or 0
            n_bytes += f.size_bytes
            if as_json:
                row = {
                    "topic": f.topic, "partition": f.partition, "first_offset": f.first_offset,
                    "last_offset": f.last_offset, "min_timestamp_ms": lo,
                    "max_timestamp_ms": hi, "events": f.events, "bytes": f.size_bytes,
                    "path": f.path,
                }  # fmt: skip
                print(json.dumps(row))
                continue
            start, end = _ms(lo)[:19], _ms(hi)[:19]  # to the second (--json: ms)
            if start[:10] == end[:10]:
                end = end[11:]  # same day: the time only
            table.add_row(
                f.topic, str(f.partition), f"{f.first_offset}–{f.last_offset}", start, end,
                f"{f.events:,}", f"{f.size_bytes:,}",
            )  # fmt: skip
    if not as_json:
        table.add_section()
        table.add_row(f"{n_files} files", "", "", "", "", f"{n_events:,}", f"{n_bytes:,}")
        (console if console.is_terminal else Console(width=160)).print(table)


def replay(
    topic: Annotated[str, typer.Argument(help="the topic to read (a name or a role: iq, …)")],
    from_: Annotated[
        str,
        typer.Option(
            "--from", help="start (inclusive): ISO 8601 (UTC unless a zone), now, -15m, epoch s"
        ),
    ],
    to: Annotated[str, typer.Option(help="end (exclusive), same forms")],
    into: Annotated[
        str | None, typer.Option(help="topic to publish into (default replay.<topic>)")
    ] = None,
    speed: Annotated[
        float, typer.Option(help="publish this many times faster than the events' time")
    ] = 1.0,
    fast: Annotated[bool, typer.Option("--fast", help="publish as fast as possible")] = False,
    from_archive: Annotated[
        bool, typer.Option("--from-archive", help="read the archive instead of the broker")
    ] = False,
) -> None:
    """Publish a time range of a topic (broker or archive) into another topic, keys, values
    and event times kept, each event with heimdall.replay.{topic,partition,offset} headers."""
    from heimdall.consumers.replay import parse_time_ns
    from heimdall.consumers.replay import replay as run_replay

    settings = load_settings()
    source = _resolve(topic)
    target = _resolve(into) if into else f"replay.{source}"
    from_ns, to_ns = parse_time_ns(from_), parse_time_ns(to)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    result = run_replay(
        settings, source, from_ns, to_ns, into=target, speed=None if fast else speed,
        from_archive=from_archive, on_problem=lambda p: err_console.print(f"[yellow]{p}[/yellow]"),
        stop=stop,
    )  # fmt: skip
    where = f"{source} ({result.source})"
    if result.events == 0:
        err_console.print(f"replay: no events of {where} in [{_ns(from_ns)}, {_ns(to_ns)})")
        raise typer.Exit(1)
    unreadable = f"; {len(result.problems)} unreadable parts (above)" if result.problems else ""
    err_console.print(
        f"replay: {result.events} events of {where} from {_ms(result.first_timestamp_ms)} to "
        f"{_ms(result.last_timestamp_ms)} into {target} in {result.wall_s:.1f} s "
        f"(run {result.run_id}){unreadable}"
    )
