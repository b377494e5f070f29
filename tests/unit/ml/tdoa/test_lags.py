r"""Pairwise lags of one emission (heimdall.ml.tdoa.lags.pair_lags), synthetic.

Three receivers around a transmitter at 50 N 9 E record ``s(t − d_i/c)`` (96 tones in
100–1400 Hz either side of the carrier, plus a strong carrier the band-pass removes) at
their own slightly wrong rates with exact time bases, 3 s at 12 kHz, 20 dB SNR; one of them
misses 6 chunks of 512 samples (its time base has a 0.26 s gap). A fourth recording has a
broken time base. Checked: every pair's lag within 2 µs of the geodesic truth (the gap
changes nothing), total sigma = hypot(statistical, systematic), independent pairs
(``toa_sigma_s`` None) for ``xcorr``, the broken receiver left out with its reason, a bad
method named in the error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from pyproj import Geod

from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S as C
from heimdall.ml.tdoa.lags import LagOptions, TdoaRecording, pair_lags

FS = 12_000.0
TX = (50.0, 9.0)
STATIONS = {"DF0KL": (53.665, 7.283), "F1JEK": (45.779, 0.615), "HB9RYZ": (47.172, 8.427)}
_G = Geod(ellps="WGS84")


def _delay(lat: float, lon: float) -> float:
    return float(_G.inv(TX[1], TX[0], lon, lat)[2]) / C


def _recording(name: str, lat: float, lon: float, seed: int) -> TdoaRecording:
    rng = np.random.default_rng(0)
    f = rng.choice([-1, 1], 96) * rng.uniform(100.0, 1400.0, 96)
    ph = rng.uniform(0, 2 * np.pi, 96)
    n = 36_000
    eps = (seed - 1) * 1.5e-5
    t = np.arange(n) / (FS * (1 + eps))
    tt = t - _delay(lat, lon)
    s = np.exp(1j * (2 * np.pi * f[:, None] * tt[None, :] + ph[:, None])).sum(axis=0) / 10
    noise = np.random.default_rng(seed)
    x = 3.0 + s + 0.1 * (noise.standard_normal(n) + 1j * noise.standard_normal(n))
    return TdoaRecording(name, lat, lon, x.astype(np.complex64), 1e5 + t, FS * (1 + eps))


def test_pair_lags_with_a_gap_and_a_broken_receiver() -> None:
    recs = [_recording(k, *v, i) for i, (k, v) in enumerate(STATIONS.items())]
    g = recs[2]
    keep = np.r_[0:15_000, 15_000 + 6 * 512 : g.samples.size]
    recs[2] = TdoaRecording(g.name, g.lat_deg, g.lon_deg, g.samples[keep], g.times_s[keep], FS)
    broken = _recording("BROKEN", 48.0, 12.0, 7)
    bt = broken.times_s.copy()
    bt[100] = bt[99]
    recs.append(TdoaRecording("BROKEN", 48.0, 12.0, broken.samples, bt, FS))
    pl = pair_lags(recs, options=LagOptions(n_windows=16))
    assert set(pl.problems) == {"BROKEN"} and "increase" in pl.problems["BROKEN"]
    assert list(pl.receivers) == list(STATIONS)
    assert pl.toa_sigma_s is None and pl.method == "xcorr"
    assert len(pl.pairs) == 3
    for p in pl.pairs:
        expected = _delay(*STATIONS[p.b]) - _delay(*STATIONS[p.a])
        print(
            f"\n{p.b}−{p.a}: error {(p.lag_s - expected) * 1e6:+.3f} µs, σ_stat "
            f"{(p.sigma_stat_s or 0) * 1e6:.3f}, σ_sys {(p.sigma_sys_s or 0) * 1e6:.3f}"
        )
        assert abs(p.lag_s - expected) < 2e-6
        assert p.sigma_stat_s is not None and p.sigma_sys_s is not None
        assert p.sigma_s == pytest.approx(math.hypot(p.sigma_stat_s, p.sigma_sys_s))
        assert p.quality > 0.5
    assert pl.closure_s is not None and abs(pl.closure_s) < 1e-6


def test_bad_method_and_options() -> None:
    recs = [_recording(k, *v, i) for i, (k, v) in enumerate(STATIONS.items())]
    with pytest.raises(ValueError, match="unknown TDOA method 'gcc'"):
        pair_lags(recs, method="gcc")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="even"):
        pair_lags(recs, options=LagOptions(n_subbands=3))
    none = pair_lags(recs[:1])
    assert none.pairs == [] and "no other recording" in none.problems[recs[0].name]


def test_runs_too_short_to_filter() -> None:
    """Every other 512-sample chunk missing: no run is long enough for the band-pass."""
    recs = [_recording(k, *v, i) for i, (k, v) in enumerate(STATIONS.items())]
    g = recs[0]
    keep = (np.arange(g.samples.size) // 512) % 2 == 0
    recs[0] = TdoaRecording(g.name, g.lat_deg, g.lon_deg, g.samples[keep], g.times_s[keep], FS)
    pl = pair_lags(recs)
    assert "too short for the band-pass" in pl.problems["DF0KL"]
    assert len(pl.pairs) == 1 and set(pl.receivers) == {"F1JEK", "HB9RYZ"}


def test_bandpass_by_run_equals_filtfilt_of_each_run() -> None:
    from scipy import signal

    from heimdall.ml.tdoa.lags import bandpass

    rng = np.random.default_rng(3)
    x = rng.standard_normal(9000) + 1j * rng.standard_normal(9000)
    t = np.arange(9000) / FS
    t[4000:] += 0.5  # a gap after sample 3999
    y = bandpass(x, FS, (30.0, 1500.0), times_s=t)
    taps = signal.firwin(401, [30.0, 1500.0], pass_zero=False, fs=FS)
    for i0, i1 in ((0, 4000), (4000, 9000)):
        ref = signal.filtfilt(taps, [1.0], x[i0:i1])
        assert np.max(np.abs(y[i0:i1] - ref)) < 1e-12 * np.max(np.abs(ref))


def _max_lag_s(a: TdoaRecording, b: TdoaRecording) -> float:
    """The lag search of :func:`pair_lags`: baseline / c + 0.5 ms."""
    from pyproj import Geod

    from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S

    _, _, d = Geod(ellps="WGS84").inv(a.lon_deg, a.lat_deg, b.lon_deg, b.lat_deg)
    return float(d) / SPEED_OF_LIGHT_M_S + 5e-4


def test_one_grid_per_emission_matches_pair_by_pair() -> None:
    """The union grid (one resampling per receiver) gives the pair-by-pair lags, and a
    receiver with a wrong clock (a day off) is left out, not put on a day-long grid.

    Pair by pair is each pair on its own common interval (measure_lag's grid) at the same
    analysis rate (``grid_decimation``) with the same resampler, as ``pair_lags`` falls back
    to when the spans are far apart."""
    from heimdall.ml.tdoa.lags import bandpass, grid_decimation
    from heimdall.ml.tdoa.xcorr import common_grid, measure_lag_on_grid, resample_band_limited

    recs = [_recording(k, *v, i) for i, (k, v) in enumerate(STATIONS.items())]
    off = _recording("OFF", 48.0, 12.0, 7)
    recs.append(TdoaRecording("OFF", 48.0, 12.0, off.samples, off.times_s + 86_400.0, FS))
    pl = pair_lags(recs)
    assert "overlap" in pl.problems["OFF"] and len(pl.pairs) == 3
    by = {r.name: r for r in recs}
    edge = 401  # pair_lags drops the band-pass's transients, its 401 taps at each end

    def filtered(r: TdoaRecording) -> tuple[np.ndarray, np.ndarray]:
        return bandpass(r.samples, FS, (30.0, 1500.0))[edge:-edge], r.times_s[edge:-edge]

    for p in pl.pairs:
        (xa, ta), (xb, tb) = filtered(by[p.a]), filtered(by[p.b])
        ra, rb = by[p.a], by[p.b]
        times, fs = common_grid(ta, tb)
        q = grid_decimation(fs, (30.0, 1500.0))
        assert q == 3
        m = measure_lag_on_grid(
            *resample_band_limited(xa, ta, times[::q]),
            *resample_band_limited(xb, tb, times[::q]),
            times[::q],
            fs / q,
            # the search pair_lags makes (baseline / c + 0.5 ms): the valid-mode correlation
            # leaves out as many samples of side a as the search is wide
            max_lag_s=_max_lag_s(ra, rb),
            band_hz=(30.0, 1500.0),
            subband_edges_hz=[(-1500.0, -765.0), (-765.0, -30.0), (30.0, 765.0), (765.0, 1500.0)],
            search_rate_hz=fs,
        )
        assert abs(p.lag_s - m.lag_s) < 0.02e-6
        assert p.sigma_stat_s == pytest.approx(m.sigma_s, rel=0.05)
