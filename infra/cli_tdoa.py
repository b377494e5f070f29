"""``heimdall eval tdoa``: TDOA fix from KiwiSDR IQ recordings (command function, not registered).

Wire it with ``eval_app.command("tdoa")(eval_tdoa)`` in ``infra/cli.py``. The file format is
read here (``infra`` is the roof and may import ``producers``); the estimation lives in
:mod:`heimdall.ml.tdoa.evaluate`, which only sees arrays.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from heimdall.core.errors import HeimdallError
from heimdall.ml.tdoa.dcf77 import PairMode
from heimdall.ml.tdoa.evaluate import TdoaReport, evaluate_tdoa
from heimdall.ml.tdoa.lags import LagOptions, TdoaMethod, TdoaRecording

__all__ = ["eval_tdoa", "load_kiwi_recordings", "plot_report"]


def load_kiwi_recordings(
    paths: list[Path],
) -> tuple[list[TdoaRecording], dict[str, str]]:
    """Read KiwiSDR WAVs and their ``<STATION>.gnss_pos.txt``; problems by file, with reasons."""
    from heimdall.producers.recordings.kiwi_wav import (
        find_gnss_pos,
        read_gnss_pos,
        read_kiwi_wav,
    )

    recs: list[TdoaRecording] = []
    problems: dict[str, str] = {}
    for p in paths:
        try:
            r = read_kiwi_wav(p)
            pos_path = find_gnss_pos(p, r.station)
            if pos_path is None:
                problems[r.station or p.name] = f"{p.name}: no {r.station}.gnss_pos.txt beside it"
                continue
            st = read_gnss_pos(pos_path, r.station)
            if not r.has_gps_time_base:
                problems[r.station] = "fewer than two good GPS stamps: no time base"
                continue
            recs.append(
                TdoaRecording(
                    name=r.station,
                    lat_deg=st.position.lat_deg,
                    lon_deg=st.position.lon_deg,
                    samples=r.samples,
                    times_s=r.sample_times_s(),
                    sample_rate_hz=r.fitted_rate_hz,
                )
            )
        except HeimdallError as exc:
            problems[p.name] = str(exc)
    return recs, problems


def plot_report(report: TdoaReport, out: Path) -> None:
    """Receivers, measured hyperbolas, estimate with 1σ/2σ ellipses, truth (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse
    from pyproj import Transformer

    from heimdall.ml.estimators.ellipse import error_ellipse

    fwd = Transformer.from_crs("EPSG:4326", report.projection, always_xy=True)
    names = list(report.receivers)
    xy = {
        n: np.array(fwd.transform(report.receivers[n][1], report.receivers[n][0])) / 1e3
        for n in names
    }
    pts = np.array(list(xy.values()))
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.3 * float(np.max(hi - lo))
    gx = np.linspace(lo[0] - pad, hi[0] + pad, 600)
    gy = np.linspace(lo[1] - pad, hi[1] + pad, 600)
    mx, my = np.meshgrid(gx, gy)
    fig, ax = plt.subplots(figsize=(8, 8))
    c_km_s = 299_792.458
    for k, p in enumerate(report.pairs):
        ra = np.hypot(mx - xy[p.a][0], my - xy[p.a][1])
        rb = np.hypot(mx - xy[p.b][0], my - xy[p.b][1])
        ax.contour(mx, my, rb - ra - p.lag_s * c_km_s, levels=[0.0], colors=f"C{k % 10}")
        ax.plot(
            [],
            [],
            color=f"C{k % 10}",
            label=f"{p.b} − {p.a}: {p.lag_s * 1e6:.1f} ± {p.sigma_s * 1e6:.1f} µs",
        )
    for n in names:
        ax.plot(*xy[n], "k^", ms=9)
        ax.annotate(
            n, (float(xy[n][0]), float(xy[n][1])), textcoords="offset points", xytext=(5, 5)
        )
    if report.estimate is not None:
        e = np.array([report.estimate.east_m, report.estimate.north_m]) / 1e3
        ax.plot(*e, "r+", ms=14, mew=2, label="estimate")
        for ks in (1.0, 2.0):
            a, b, ang = error_ellipse(report.estimate.cov_en / 1e6, ks)
            ax.add_patch(
                Ellipse(
                    (float(e[0]), float(e[1])),
                    2 * a,
                    2 * b,
                    angle=ang,
                    fill=False,
                    color="r",
                    ls="-" if ks == 1 else "--",
                    label=f"{ks:.0f}σ ellipse",
                )
            )
    if report.truth_latlon is not None:
        t = np.array(fwd.transform(report.truth_latlon[1], report.truth_latlon[0])) / 1e3
        ax.plot(*t, "g*", ms=14, label="truth")
    title = "TDOA fix"
    if report.error_km is not None:
        title += f": error {report.error_km:.1f} km"
    ax.set_title(title)
    ax.set_xlabel("east (km, azimuthal equidistant)")
    ax.set_ylabel("north (km)")
    ax.set_aspect("equal")
    ax.legend(loc="best", fontsize=8)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _parse_latlon(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise typer.BadParameter("--truth takes LAT,LON in degrees, e.g. 50.0152,9.0112") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise typer.BadParameter(f"--truth {lat},{lon} is out of range")
    return lat, lon


def eval_tdoa(
    wavs: Annotated[list[Path], typer.Argument(help="KiwiSDR IQ WAV files (≥ 3 receivers)")],
    truth: Annotated[
        str | None, typer.Option("--truth", help="true transmitter LAT,LON (degrees)")
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="write the report as JSON here")
    ] = None,
    plot: Annotated[Path | None, typer.Option("--plot", help="write a PNG map here")] = None,
    band: Annotated[
        tuple[float, float], typer.Option("--band", help="pass band either side of the carrier, Hz")
    ] = (30.0, 1500.0),
    sigma_floor_us: Annotated[
        float, typer.Option("--sigma-floor-us", help="systematic timing budget per pair, µs")
    ] = 0.0,
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="xcorr (band-passed cross-correlation) or dcf77-pn (DCF77 PN matched filter)",
        ),
    ] = "xcorr",
    pair_mode: Annotated[
        str, typer.Option("--pair-mode", help="dcf77-pn: toa (arrival differences) or cross")
    ] = "toa",
    pn_band: Annotated[
        float, typer.Option("--pn-band", help="dcf77-pn: half-width of the band used, Hz")
    ] = 2700.0,
    subbands: Annotated[
        int,
        typer.Option(
            "--subbands",
            help="sub-bands of the pass band for --systematic subbands (xcorr: even)",
        ),
    ] = 4,
    systematic: Annotated[
        str,
        typer.Option(
            "--systematic",
            help="systematic sigma per pair: subbands (dispersion across sub-bands, both "
            "methods), estimators (dcf77-pn only) or none",
        ),
    ] = "subbands",
) -> None:
    """Locate a transmitter from GPS-timed recordings: pairwise lags, TDOA fix, error."""
    truth_ll = _parse_latlon(truth)
    if method not in ("xcorr", "dcf77-pn"):
        raise typer.BadParameter(f"--method {method!r}: xcorr or dcf77-pn")
    if pair_mode not in ("toa", "cross"):
        raise typer.BadParameter(f"--pair-mode {pair_mode!r}: toa or cross")
    if systematic not in ("estimators", "subbands", "none"):
        raise typer.BadParameter(f"--systematic {systematic!r}: estimators, subbands or none")
    if method == "xcorr" and systematic == "estimators":
        raise typer.BadParameter("--systematic estimators is for --method dcf77-pn only")
    if method == "xcorr" and systematic == "subbands" and (subbands < 2 or subbands % 2):
        raise typer.BadParameter(f"--subbands {subbands}: xcorr needs an even number ≥ 2")
    meth: TdoaMethod = "xcorr" if method == "xcorr" else "dcf77-pn"
    pmode: PairMode = "toa" if pair_mode == "toa" else "cross"
    recs, problems = load_kiwi_recordings(wavs)
    options = LagOptions(
        band_hz=band,
        n_subbands=subbands if systematic == "subbands" else 0,
        pn_pair_mode=pmode,
        pn_band_hz=pn_band,
        pn_subbands=subbands,
        pn_systematic="estimators"
        if systematic == "estimators"
        else ("subbands" if systematic == "subbands" else "none"),
    )
    report = evaluate_tdoa(
        recs,
        truth_ll,
        method=meth,
        options=options,
        sigma_floor_s=sigma_floor_us * 1e-6,
        problems=problems,
    )
    d: dict[str, Any] = report.to_dict()
    for p in d["pairs"]:
        line = f"{p['b']:>8} − {p['a']:<8} {p['lag_us']:10.2f} ± {p['sigma_us']:.2f} µs"
        line += f"  q {p['quality']:.2f}"
        if p["sigma_sys_us"] is not None:
            line += f" (stat {p['sigma_stat_us']:.2f}, sys {p['sigma_sys_us']:.2f})"
        if p["error_us"] is not None:
            line += f"  (expected {p['expected_us']:.2f}, error {p['error_us']:+.2f} µs)"
        typer.echo(line)
    for name, arr in report.arrivals.items():
        typer.echo(
            f"{name:>8} PN arrival {arr['toa_us']:9.2f} ± {arr['toa_sigma_us']:.2f} µs after "
            f"second + 0.2 s, peak SNR {arr['peak_snr']:.0f}, {arr['n_seconds']} s"
        )
    for name, why in report.problems.items():
        typer.echo(f"problem: {name}: {why}", err=True)
    if report.estimate is not None:
        ell = d["estimate"]["ellipse_1sigma"]
        typer.echo(
            f"fix {report.lat_deg:.4f} N {report.lon_deg:.4f} E, 1σ ellipse "
            f"{ell['semi_major_km']:.2f} × {ell['semi_minor_km']:.2f} km at {ell['angle_deg']:.0f}°"
        )
        sens = ", ".join(f"{n} {v:.2f}" for n, v in report.delay_sensitivity_km_per_us.items())
        typer.echo(f"fix moves per µs of unmodelled delay at a receiver (km): {sens}")
        if report.error_km is not None and report.mahalanobis2 is not None:
            typer.echo(
                f"error {report.error_km:.2f} km; truth at {math.sqrt(report.mahalanobis2):.2f} σ "
                f"({'inside' if report.inside_1sigma else 'outside'} the 1σ ellipse, "
                f"{'inside' if report.inside_2sigma else 'outside'} the 2σ ellipse)"
            )
    if json_out is not None:
        json_out.write_text(json.dumps(d, indent=2))
    if plot is not None:
        plot_report(report, plot)
    if report.estimate is None:
        raise typer.Exit(1)
