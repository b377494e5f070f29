"""What the benchmarks share: the console, the machine line, per-call timing, table helpers."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np
from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

T0_NS = 1_760_000_000_000_000_000
"""A fixed event time for the offline benchmarks (2025-10-09), ns since the epoch."""


@dataclass
class Context:
    """What every benchmark receives: where to print and how long it may take."""

    console: Console
    quick: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def progress(self) -> Progress:
        """A transient progress display for long phases (gone once the phase is done)."""
        return Progress(
            SpinnerColumn(),
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )

    def timing(self, min_time_s: float) -> tuple[float, int]:
        """``(min_time_s, repeats)`` for :func:`time_per_call`: as given and 5 repeats, or a
        fifth of the time and 3 repeats with ``--quick``."""
        return (min_time_s / 5, 3) if self.quick else (min_time_s, 5)

    def show(self, renderable: RenderableType) -> None:
        """Print a result; a table's caption (its parameters) goes below it at full width."""
        params = None
        if isinstance(renderable, Table) and isinstance(renderable.caption, str):
            params, renderable.caption = renderable.caption, None
        self.console.print(renderable)
        if params:
            self.console.print(Text(params, style="dim"))
        self.console.print()


def machine_line() -> str:
    """CPU count, CPU model, Python and the main libraries' versions, on one line."""
    cpus = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        usable = cpus
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor()
    versions = []
    for dist in ("numpy", "scipy", "fastavro", "confluent-kafka", "faust-streaming", "chdb"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions.append(f"{dist} {metadata.version(dist)}")
    cpu = f"{cpus} CPUs" + (f" ({usable} usable)" if usable != cpus else "")
    try:
        load = "load average " + " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover - not available
        load = "load average unknown"
    return (
        f"machine: {cpu}, {model or 'unknown CPU'}, {load}; Python {platform.python_version()} "
        f"({sys.implementation.name}) on {platform.system()} {platform.release()}; "
        + ", ".join(versions)
    )


@dataclass(frozen=True)
class Timing:
    """Per-call time of a function, µs: median and best of ``repeats`` runs of ``loops`` calls."""

    median_us: float
    best_us: float
    loops: int
    repeats: int

    @property
    def per_s(self) -> float:
        return 1e6 / self.median_us if self.median_us > 0 else float("inf")


def time_per_call(fn: Callable[[], Any], *, min_time_s: float = 0.2, repeats: int = 5) -> Timing:
    """Like ``timeit.autorange``: loops so that one run takes ``min_time_s``; µs per call.

    One warm-up call first (caches, lazy imports).
    """
    fn()
    loops = 1
    while True:
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        dt = time.perf_counter() - t
        if dt >= min_time_s / 4 or loops >= 1 << 20:
            break
        loops *= 2 if dt > min_time_s / 40 else 10
    loops = max(1, round(loops * min_time_s / max(dt, 1e-9)))
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(loops):
            fn()
        runs.append((time.perf_counter() - t) / loops * 1e6)
    return Timing(statistics.median(runs), min(runs), loops, repeats)


def quantiles(values: Sequence[float] | np.ndarray, qs: Iterable[float]) -> list[float]:
    """The ``qs`` quantiles of ``values`` (NaN when empty)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return [float("nan") for _ in qs]
    return [float(np.quantile(arr, q)) for q in qs]


def fmt(v: float | None, digits: int = 1, *, thousands: bool = True) -> str:
    """A number for a table cell; ``–`` for None/NaN."""
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "–"
    return f"{v:,.{digits}f}" if thousands else f"{v:.{digits}f}"


def table(title: str, columns: Sequence[str], params: str, *, first_left: int = 1) -> Table:
    """A result table: units in the column names, the parameters used in the caption."""
    t = Table(title=title, caption=params, caption_justify="left", title_justify="left")
    for i, col in enumerate(columns):
        t.add_column(col, justify="left" if i < first_left else "right")
    return t
