"""``python -m bench [NAME ...] [--quick]``: run the benchmarks and print their tables."""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Callable

from rich.console import Console

from bench import (
    bench_adapters,
    bench_archive,
    bench_dashboard,
    bench_dsp,
    bench_inference,
    bench_pipeline,
    bench_serde,
    bench_simulator,
    bench_sink,
    bench_soak,
    bench_tdoa,
    bench_track,
)
from bench.common import Context, machine_line

BENCHMARKS: dict[str, tuple[Callable[[Context], None], str]] = {
    "serde": (bench_serde.run, "encode/decode µs, IqChunk and Measurement, both framings"),
    "features": (bench_dsp.run_features, "µs per 2400-sample chunk of the features DSP"),
    "localize": (bench_dsp.run_localize, "ms per RSS localization, 7/25/50 receivers"),
    "track": (bench_track.run, "Kalman filter / RTS smoother: fixes/s"),
    "inference": (bench_inference.run, "ONNX set model: p50/p99 per observation, batched obs/s"),
    "simulator": (bench_simulator.run, "simulator speed vs real time"),
    "sink": (bench_sink.run, "ClickHouse sink rows/s into chDB vs raw insert"),
    "pipeline": (bench_pipeline.run, "chunks/s, latency p50/p99, time to first localization"),
    "adapters": (bench_adapters.run, "CPU of 50 live adapter connections, Kafka included"),
    "dashboard": (bench_dashboard.run, "dashboard server CPU/memory/latency, 1/10/50 pages"),
    "archive": (
        bench_archive.run,
        "archive write MB/s vs plain fsspec; replay events/s vs produce",
    ),
    "tdoa": (bench_tdoa.run, "pair_lags ms per pair (xcorr, dcf77-pn), before/after, profile"),
    "soak": (bench_soak.run, "heimdall up for --minutes: broker/process RSS, events, lag"),
}
#: Run only when named: a soak takes its --minutes (60 by default).
ON_REQUEST = frozenset({"soak"})


def _receivers(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text}"
        ) from None
    if not values or min(values) < 4:
        raise argparse.ArgumentTypeError("each network needs at least 4 receivers")
    return values


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Heimdall's benchmarks (tables only; no timed assertions).",
        epilog="benchmarks: " + "; ".join(f"{k}: {v[1]}" for k, v in BENCHMARKS.items()),
    )
    parser.add_argument(
        "names", nargs="*", metavar="NAME", choices=[[], *BENCHMARKS],
        help=f"benchmarks to run (default: all): {', '.join(BENCHMARKS)}",
    )  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="short runs (about 2 minutes)")
    parser.add_argument(
        "--receivers", type=_receivers, metavar="N,N,…",
        help="pipeline: network sizes (default 100,500,1000; 100 with --quick)",
    )  # fmt: skip
    parser.add_argument("--sink-rows", type=int, metavar="ROWS", help="sink: rows (default 50000)")
    parser.add_argument(
        "--channels", type=int, choices=(1, 2), help="pipeline: channels per receiver (default 1)"
    )
    parser.add_argument(
        "--workers", type=int, metavar="N", help="pipeline: stream workers (default: cores)"
    )
    parser.add_argument(
        "--json", metavar="FILE", help="pipeline, soak: also write the results as JSON"
    )
    parser.add_argument(
        "--minutes", type=float, metavar="M", help="soak: minutes of heimdall up (default 60)"
    )
    parser.add_argument(
        "--sample-s", type=float, metavar="S", help="soak: seconds between samples (default 30)"
    )
    parser.add_argument(
        "--tdoa", action="store_true",
        help="pipeline: also a real-time row per N with the in-stream TDOA path on",
    )  # fmt: skip
    return parser.parse_args(argv)


def make_console() -> Console:
    console = Console()
    if not console.is_terminal:  # piped to a file: do not squeeze the tables into 80 columns
        console = Console(width=150)
    return console


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.names or [n for n in BENCHMARKS if n not in ON_REQUEST]
    console = make_console()
    ctx = Context(
        console=console,
        quick=args.quick,
        options={
            "receivers": args.receivers,
            "sink_rows": args.sink_rows,
            "channels": args.channels,
            "workers": args.workers,
            "json": args.json,
            "tdoa": args.tdoa,
            "minutes": args.minutes,
            "sample_s": args.sample_s,
        },
    )
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message="The httpx module is deprecated")  # authlib
    console.print(f"[bold]Heimdall benchmarks[/bold]{' (--quick)' if args.quick else ''}: "
                  + ", ".join(names))  # fmt: skip
    console.print(machine_line())
    console.print()
    t_suite = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        try:
            BENCHMARKS[name][0](ctx)
        except KeyboardInterrupt:
            console.print(f"[yellow]interrupted during {name}; every process it started is "
                          "stopped[/yellow]")  # fmt: skip
            return 130
        console.print(f"[dim]{name}: {time.monotonic() - t0:.0f} s[/dim]")
        console.print()
    console.print(f"[dim]suite: {time.monotonic() - t_suite:.0f} s; {machine_line()}[/dim]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
