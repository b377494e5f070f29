"""TDOA lags per emission: cost of ``pair_lags`` (and ``fix_from_lags``) for the stream stage.

What a localize stage pays per emission when it correlates the GPS-timed IQ of N receivers
of one channel: every pair is a band-pass (once per receiver), a resampling onto a common
grid, one full-record correlation with a band-limited peak refinement, 16 sub-window
refinements and — with the systematic term — a phase-slope fit in 4 sub-bands.

Signals: complex white noise at 12 kHz common to all receivers, delayed by whole samples (the
cost does not depend on the content), each receiver with its own noise and a KiwiSDR-like
rate error (so the grid is interpolated, as on real data); receivers on a ~300 km ring.
``gaps``: every 10th chunk of 512 samples missing at each receiver. ``dcf77-pn``: the shared
KiwiSDR recordings, when present. Run: ``python -m bench tdoa [--quick]`` (or
``python -m bench.bench_tdoa``).

Before/after (issue 11, the fast path): the ``before`` columns are the xcorr cost of
``pair_lags`` at commit 0f20dad (per-pair Kaiser-sinc resampling at 12 kHz, two FFTs and 16
window correlators per pair, a bounded Brent search per window), measured on this machine
with the same signals and the same timing loop (median of 3, 2 shared cores) just before the
rewrite; the old path is not kept callable (it was ~300 lines). A second table is a cProfile of
one ``pair_lags`` call on 3 × 30 s: the functions that cost most now, with the profile of
0f20dad beside it (quoted).
"""

from __future__ import annotations

import cProfile
import functools
import io
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Context, fmt, table, time_per_call
from heimdall.core.errors import EstimationError
from heimdall.core.shared_data import shared_data_dir
from heimdall.ml.tdoa.fix import fix_from_lags
from heimdall.ml.tdoa.lags import LagOptions, PairLags, TdoaMethod, TdoaRecording, pair_lags

FS = 12_000.0

#: xcorr ``pair_lags`` at 0f20dad on this machine (median of 3; wall s, CPU s, pairs), keyed
#: by (receivers × s, sub-bands); the same signals and timing loop as :func:`run`.
BEFORE_0F20DAD: dict[tuple[str, int], tuple[float, float, int]] = {
    ("3 × 30", 4): (1.884, 2.643, 3),
    ("3 × 30", 0): (1.750, 2.424, 3),
    ("3 × 30 gaps", 4): (1.956, 2.744, 3),
    ("6 × 10", 4): (1.967, 3.077, 15),
    ("6 × 10", 0): (1.848, 2.857, 15),
    ("7 × 30", 4): (9.219, 14.853, 21),  # one repeat
}
#: cProfile of one xcorr ``pair_lags`` call on 3 × 30 s at 0f20dad: (function, own s, calls),
#: 1.96 s in all.
PROFILE_0F20DAD: list[tuple[str, float, int]] = [
    ("xcorr.resample_with_mask (Kaiser sinc, 12 kHz)", 0.868, 3),
    ("xcorr._Correlator.refine (grid + Brent)", 0.269, 51),
    ("numpy sinc (resampler weights)", 0.210, 28),
    ("numpy correlate (filtfilt, direct form)", 0.154, 6),
    ("pocketfft c2c (2 FFTs per pair + 32 per pair's windows)", 0.148, 105),
    ("xcorr._Correlator.at (Brent's evaluations)", 0.098, 356),
    ("xcorr.measure_lag_on_grid (own)", 0.039, 3),
]
PROFILE_0F20DAD_TOTAL_S = 1.961
SHARED = shared_data_dir("kiwi-dcf77")


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
            "before ms per pair",
            "× faster (wall, CPU)",
            "fix ms",
        ],
        f"median of {repeats} calls (wall and process CPU time, all threads: BLAS runs "
        "the refinement's products; on a shared machine the CPU time is the steadier); "
        "before = xcorr at 0f20dad, measured on this machine (module docstring); "
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
    # the seed network: 7 receivers, one channel's 30 s block (21 pairs)
    cases.append(("xcorr", "7 × 30", _recordings(7, 30.0, False), 4))
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
        try:
            fx_ms = fmt(
                time_per_call(
                    functools.partial(_fix, pl), min_time_s=0.2, repeats=repeats
                ).median_us
                / 1e3,
                1,
            )
        except EstimationError:  # the bench's lags are not geometric: 7 × 30 has no fix
            fx_ms = "no fix"
        sec = statistics.median(wall)
        cpu_s = statistics.median(cpu)
        before = BEFORE_0F20DAD.get((label, nsub)) if method == "xcorr" else None
        t.add_row(
            method,
            label,
            "4 sub-bands" if nsub else "none",
            str(len(pl.pairs)),
            fmt(sec, 2),
            fmt(cpu_s, 2),
            fmt(sec * 1e3 / max(len(pl.pairs), 1), 0),
            "—" if before is None else fmt(before[0] * 1e3 / before[2], 0),
            "—" if before is None else f"{before[0] / sec:.0f}, {before[1] / cpu_s:.0f}",
            fx_ms,
        )
    ctx.show(t)
    ctx.show(_profile_table())


def _profile_table() -> Any:
    """cProfile of one xcorr ``pair_lags`` on 3 × 30 s now, beside 0f20dad's (quoted)."""
    recs = _recordings(3, 30.0, False)
    pair_lags(recs)  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    pair_lags(recs)
    prof.disable()
    st = pstats.Stats(prof, stream=io.StringIO())
    total = sum(v[2] for v in st.stats.values())  # type: ignore[attr-defined]
    rows = sorted(st.stats.items(), key=lambda kv: -kv[1][2])[:7]  # type: ignore[attr-defined]
    t = table(
        "tdoa — cProfile of pair_lags (xcorr, 3 × 30 s): most own time, before and after",
        ["before (0f20dad)", "own s", "calls", "now", "own s ", "calls "],
        f"before: {PROFILE_0F20DAD_TOTAL_S:.2f} s in all (quoted); now: {total:.2f} s in all "
        "(this run); own time = time in the function itself",
        first_left=1,
    )
    for i in range(max(len(rows), len(PROFILE_0F20DAD))):
        b = PROFILE_0F20DAD[i] if i < len(PROFILE_0F20DAD) else ("", 0.0, 0)
        if i < len(rows):
            (file, _line, fn), (_, ncalls, tt, _, _) = rows[i]
            name = f"{Path(file).stem}.{fn}" if file != "~" else fn.strip("<>{}").split()[-1]
            now = (name.strip("'"), f"{tt:.3f}", str(ncalls))
        else:
            now = ("", "", "")
        t.add_row(b[0], f"{b[1]:.3f}" if b[0] else "", str(b[2]) if b[0] else "", *now)
    return t


if __name__ == "__main__":
    from bench.__main__ import make_console

    run(Context(console=make_console(), quick="--quick" in sys.argv[1:]))
