"""TDOA lags per emission: cost of ``pair_lags`` (and ``fix_from_lags``) for the stream stage.

What a localize stage pays per emission when it correlates the GPS-timed IQ of N receivers
of one channel: every pair is a band-pass (once per receiver), a resampling onto a common
grid, one full-record correlation with a band-limited peak refinement, 16 sub-window
refinements and — with the systematic term — a phase-slope fit in 4 sub-bands.

Signals: complex white noise at 12 kHz common to all receivers, delayed by whole samples (the
cost does not depend on the content), each receiver with its own noise and a KiwiSDR-like
rate error (so the grid is interpolated, as on real data); receivers on a ~300 km ring.
``gaps``: every 10th chunk of 512 samples missing at each receiver. ``dcf77-pn``: the shared
KiwiSDR recordings, when present. Run: ``python -m bench.bench_tdoa [--quick]``.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.common import Context, fmt, table, time_per_call
from heimdall.ml.tdoa.fix import fix_from_lags
from heimdall.ml.tdoa.lags import LagOptions, PairLags, TdoaMethod, TdoaRecording, pair_lags

FS = 12_000.0
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "kiwi-dcf77"


def _recordings(n_rx: int, duration_s: float, gaps: bool, seed: int = 0) -> list[TdoaRecording]:
    rng = np.random.default_rng(seed)
    n = int(duration_s * FS)
    s = rng.standard_normal(n + 200) + 1j * rng.standard_normal(n + 200)
    out = []
    for i in range(n_rx):
        az = 2 * np.pi * i / n_rx
        lat, lon = 50.0 + 2.7 * np.cos(az), 9.0 + 4.2 * np.sin(az)
        d = 5 + 7 * i
        x = s[d : d + n] + 0.3 * (rng.standard_normal(n) + 1j * rng.standard_normal(n))
        t = 1e5 + np.arange(n) / (FS * (1 + 1e-5 * (i - n_rx / 2)))
        if gaps:
            keep = (np.arange(n) // 512) % 10 != 9
            x, t = x[keep], t[keep]
        out.append(TdoaRecording(f"RX{i}", lat, lon, x.astype(np.complex64), t, FS))
    return out


def _shared() -> list[TdoaRecording] | None:
    if not any(SHARED.glob("*.wav")):
        return None
    from heimdall.infra.cli_tdoa import load_kiwi_recordings

    recs, _ = load_kiwi_recordings(sorted(SHARED.glob("*.wav")))
    return recs


def _fix(pl: PairLags) -> None:
    fix_from_lags(pl.receivers, pl.pairs, toa_sigma=pl.toa_sigma_s)


def run(ctx: Context) -> None:
    """Print the table."""
    _, repeats = ctx.timing(0.5)
    t = table(
        "tdoa — pair_lags per emission (N receivers × record length)",
        [
            "method",
            "receivers × s",
            "systematic",
            "pairs",
            "pair_lags s",
            "CPU s",
            "ms per pair",
            "fix ms",
        ],
        f"median of {repeats} calls (wall and process CPU time, all threads: BLAS runs "
        "the refinement's products; on a shared machine the CPU time is the steadier); "
        "12 kHz complex baseband, 16 windows, band 30–1500 Hz, "
        "systematic = 4 sub-bands (none: n_subbands=0); fix = fix_from_lags",
        first_left=3,
    )
    cases: list[tuple[TdoaMethod, str, list[TdoaRecording], int]] = []
    for n_rx, dur, gaps in ((3, 30.0, False), (3, 30.0, True), (6, 10.0, False)):
        recs = _recordings(n_rx, dur, gaps)
        label = f"{n_rx} × {dur:.0f}" + (" gaps" if gaps else "")
        cases.append(("xcorr", label, recs, 4))
        if not gaps:
            cases.append(("xcorr", label, recs, 0))
    shared = _shared()
    if shared is not None:
        cases.append(("dcf77-pn", "3 × 30 DCF77", shared, 4))
    for method, label, recs, nsub in cases:
        opt = LagOptions(n_subbands=nsub)
        pl = pair_lags(recs, method=method, options=opt)  # warm-up
        wall: list[float] = []
        cpu: list[float] = []
        for _ in range(repeats):
            w0, c0 = time.perf_counter(), time.process_time()
            pair_lags(recs, method=method, options=opt)
            wall.append(time.perf_counter() - w0)
            cpu.append(time.process_time() - c0)
        fx = time_per_call(functools.partial(_fix, pl), min_time_s=0.2, repeats=repeats)
        sec = statistics.median(wall)
        t.add_row(
            method,
            label,
            "4 sub-bands" if nsub else "none",
            str(len(pl.pairs)),
            fmt(sec, 2),
            fmt(statistics.median(cpu), 2),
            fmt(sec * 1e3 / max(len(pl.pairs), 1), 0),
            fmt(fx.median_us / 1e3, 1),
        )
    ctx.show(t)


if __name__ == "__main__":
    from bench.__main__ import make_console

    run(Context(console=make_console(), quick="--quick" in sys.argv[1:]))
