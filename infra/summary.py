"""The summary printed when ``heimdall up`` ends, and the same as JSON (``--summary-json``).

The JSON keys are a contract with checks outside the tests (documented in the README):
``events`` {topic: n}, ``rows`` {table: n}, ``duplicates`` {table: n}, ``errors_m``
{method: {median, p95}}, ``first_localization_s``, ``latency_ms`` {p50, p99}, ``restarts``
{child: n}, ``last_fixes`` [{channel_id, method, lat, lon, cov_ee_m2, cov_en_m2, cov_nn_m2,
t_ns}], and ``wall_s``, ``workers``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    duplicates: dict[str, int] = field(default_factory=dict)
    """Per table: rows that repeat another row's source (``consumers.queries.NATURAL_KEYS``)."""
    restarts: dict[str, int] = field(default_factory=dict)
    last_fixes: list[dict[str, Any]] = field(default_factory=list)
    workers: int = 1

    def to_json(self) -> dict[str, Any]:
        """The machine-readable summary (keys in the module docstring)."""
        return {
            "events": dict(self.topic_counts),
            "rows": dict(self.rows),
            "duplicates": dict(self.duplicates),
            "errors_m": {
                m: {"median": v["median"], "p95": v["p95"]} for m, v in self.error_m.items()
            },
            "first_localization_s": self.first_localization_s,
            "latency_ms": {k: v * 1000.0 for k, v in self.latency_s.items()},
            "restarts": dict(self.restarts),
            "last_fixes": list(self.last_fixes),
            "wall_s": self.wall_s,
            "workers": self.workers,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")


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
    duplicates: dict[str, int] | None = None,
    restarts: dict[str, int] | None = None,
    last_fixes: list[dict[str, Any]] | None = None,
    workers: int = 1,
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
        duplicates=duplicates or {},
        restarts=restarts or {},
        last_fixes=last_fixes or [],
        workers=workers,
    )


def print_summary(s: Summary, console: Console) -> None:
    t = Table(title=f"Heimdall run summary ({s.wall_s:.0f} s)", show_header=True)
    t.add_column("what")
    t.add_column("value", justify="right")
    for where, how in s.where.items():
        t.add_row(where, how)
    for topic, n in s.topic_counts.items():
        t.add_row(f"events in {topic}", f"{n:,}")
    t.add_row("stream workers", str(s.workers))
    for table, n in s.rows.items():
        t.add_row(f"ClickHouse rows: {table}", f"{n:,}")
    for table, n in s.duplicates.items():
        t.add_row(f"duplicated results: {table}", f"{n:,}")
    t.add_row("localizations", f"{s.n_localizations:,}")
    for method, stats in s.error_m.items():
        for k in ("median", "mean", "p95", "max"):
            t.add_row(f"error vs truth ({method}), {k}", f"{stats[k]:,.0f} m")
    for k, v in s.latency_s.items():
        t.add_row(f"latency chunk→localization {k} (excl. window)", f"{v * 1000:.0f} ms")
    if s.first_localization_s is not None:
        t.add_row("time to first localization", f"{s.first_localization_s:.1f} s")
    for child, n in s.restarts.items():
        t.add_row(f"restarts: {child}", str(n))
    console.print(t)
    if s.last_fixes:
        fixes = Table(title="last fix per channel and method", show_header=True)
        for col in ("channel", "method", "lat", "lon", "σ east m", "σ north m"):
            fixes.add_column(col, justify="left" if col in ("channel", "method") else "right")
        for f in s.last_fixes:
            fixes.add_row(
                f["channel_id"],
                f["method"],
                f"{f['lat']:.5f}",
                f"{f['lon']:.5f}",
                f"{max(f['cov_ee_m2'], 0.0) ** 0.5:,.0f}",
                f"{max(f['cov_nn_m2'], 0.0) ** 0.5:,.0f}",
            )
        console.print(fixes)
