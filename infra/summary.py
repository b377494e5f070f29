"""The summary printed when ``heimdall up`` ends."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from rich.console import Console
from rich.table import Table

from heimdall.infra.monitor import LiveStats


@dataclass(frozen=True)
class Summary:
    """What a run did: events per topic, rows stored, localizations and their error."""

    wall_s: float
    topic_counts: dict[str, int]
    rows: dict[str, int]
    n_localizations: int
    error_m: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per estimation method: median, mean, p95 and max horizontal error against the truth."""
    latency_s: dict[str, float] = field(default_factory=dict)
    first_localization_s: float | None = None
    where: dict[str, str] = field(default_factory=dict)


def _quantiles(values: list[float], qs: dict[str, float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=float)
    return {name: float(np.quantile(arr, q)) for name, q in qs.items()}


def build_summary(
    *,
    counts: dict[str, int],
    rows: dict[str, int],
    errors: dict[str, list[float]],
    live: LiveStats,
    wall_s: float,
    describe: dict[str, str],
) -> Summary:
    """Combine the broker's counts, ClickHouse's rows and errors, and the live statistics."""
    err = {}
    for method, values in sorted(errors.items()):
        err[method] = _quantiles(values, {"median": 0.5, "p95": 0.95, "max": 1.0})
        err[method]["mean"] = float(np.mean(values))
    return Summary(
        wall_s=wall_s,
        topic_counts=counts,
        rows=rows,
        n_localizations=rows.get("localizations", 0),
        error_m=err,
        latency_s=_quantiles(live.latencies_s, {"p50": 0.5, "p99": 0.99}),
        first_localization_s=live.first_localization_s,
        where=describe,
    )


def print_summary(s: Summary, console: Console) -> None:
    t = Table(title=f"Heimdall run summary ({s.wall_s:.0f} s)", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    for where, how in s.where.items():
        t.add_row(where, how)
    for topic, n in s.topic_counts.items():
        t.add_row(f"events in {topic}", f"{n:,}")
    for table, n in s.rows.items():
        t.add_row(f"ClickHouse rows: {table}", f"{n:,}")
    t.add_row("localizations", f"{s.n_localizations:,}")
    for method, stats in s.error_m.items():
        for k in ("median", "mean", "p95", "max"):
            t.add_row(f"error vs truth ({method}), {k}", f"{stats[k]:,.0f} m")
    for k, v in s.latency_s.items():
        t.add_row(f"latency chunk→localization {k} (excl. window)", f"{v * 1000:.0f} ms")
    if s.first_localization_s is not None:
        t.add_row("time to first localization", f"{s.first_localization_s:.1f} s")
    console.print(t)
