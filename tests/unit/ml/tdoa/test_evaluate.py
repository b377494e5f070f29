r"""TDOA evaluation from recordings (heimdall.ml.tdoa.evaluate), synthetic.

Three receivers around a transmitter at 50 N 9 E (the DCF77 stations' positions: DF0KL
53.665 N 7.283 E, F1JEK 45.779 N 0.615 E, HB9RYZ 47.172 N 8.427 E); each records
``s(t − d_i/c)`` (``d_i`` the geodesic distance; s a 96-tone signal in 100–1400 Hz either side
of the carrier, plus a strong carrier that the band-pass must remove) at its own slightly
wrong rate with an exact time base, at 20 dB SNR. The fix is within 1 km (the projection's
distortion and the lag noise are far below that) and the truth is within 3σ. A fourth
recording that does not overlap the others in time is reported as a problem and the other
three are still used.

A receiver whose signal is 20 µs late (its own group delay: invisible with three receivers)
moves the fix by the reported ``delay_sensitivity_km_per_us`` × 20 µs, to first order
(within 10 %; :func:`~heimdall.ml.estimators.tdoa.tdoa_delay_sensitivity`).
"""

from __future__ import annotations

import math

import numpy as np
from pyproj import Geod

from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S as C
from heimdall.ml.tdoa.evaluate import TdoaRecording, evaluate_tdoa

FS = 12_000.0
TX = (50.0, 9.0)
STATIONS = {"DF0KL": (53.665, 7.283), "F1JEK": (45.779, 0.615), "HB9RYZ": (47.172, 8.427)}


def _recording(
    name: str, lat: float, lon: float, t0: float, seed: int, delay_s: float = 0.0
) -> TdoaRecording:
    rng = np.random.default_rng(0)
    f = rng.choice([-1, 1], 96) * rng.uniform(100.0, 1400.0, 96)
    ph = rng.uniform(0, 2 * np.pi, 96)
    _, _, d = Geod(ellps="WGS84").inv(TX[1], TX[0], lon, lat)
    n = 36_000
    eps = (seed - 1) * 1.5e-5
    t = t0 + np.arange(n) / (FS * (1 + eps))
    tt = t - float(d) / C - delay_s
    s = np.exp(1j * (2 * np.pi * f[:, None] * tt[None, :] + ph[:, None])).sum(axis=0) / 10
    noise = np.random.default_rng(seed)
    x = 3.0 + s + 0.1 * (noise.standard_normal(n) + 1j * noise.standard_normal(n))
    return TdoaRecording(name, lat, lon, x.astype(np.complex64), 1e5 + t, FS * (1 + eps))


def test_synthetic_three_receivers_and_a_problem() -> None:
    recs = [_recording(k, *v, 0.0, i) for i, (k, v) in enumerate(STATIONS.items())]
    late = _recording("LATE", 48.0, 12.0, 100.0, 7)
    rep = evaluate_tdoa([*recs, late], TX)
    assert "LATE" in rep.problems and "overlap" in rep.problems["LATE"]
    assert rep.estimate is not None and rep.error_km is not None
    assert rep.error_km < 1.0
    assert rep.mahalanobis2 is not None and rep.mahalanobis2 < 9.0
    assert rep.closure_s is not None and abs(rep.closure_s) < 1e-6
    for p in rep.pairs:
        assert p.error_s is not None and abs(p.error_s) < 2e-6
    d = rep.to_dict()
    assert set(d["receivers"]) == set(STATIONS) and math.isfinite(d["error_km"])
    # the keys every eval reports: this run's one fix, inside its ellipses or not
    assert d["n_fixes"] == 1
    assert d["coverage_1sigma"] == float(rep.mahalanobis2 <= 1.0)
    assert d["coverage_2sigma"] == float(rep.mahalanobis2 <= 4.0)


def test_unmodelled_delay_moves_the_fix_as_reported() -> None:
    recs = [_recording(k, *v, 0.0, i) for i, (k, v) in enumerate(STATIONS.items())]
    base = evaluate_tdoa(recs, TX)
    late = [*recs[:2], _recording("HB9RYZ", *STATIONS["HB9RYZ"], 0.0, 2, delay_s=20e-6)]
    moved = evaluate_tdoa(late, TX)
    assert base.lat_deg is not None and moved.lat_deg is not None
    assert base.lon_deg is not None and moved.lon_deg is not None
    assert set(base.delay_sensitivity_km_per_us) == set(STATIONS)
    _, _, shift_m = Geod(ellps="WGS84").inv(
        base.lon_deg, base.lat_deg, moved.lon_deg, moved.lat_deg
    )
    predicted_km = 20.0 * base.delay_sensitivity_km_per_us["HB9RYZ"]
    assert predicted_km > 3.0
    assert abs(shift_m / 1e3 - predicted_km) < 0.1 * predicted_km
    # and it leaves no trace in the data: the residual (lag closure noise) does not grow
    assert base.estimate is not None and moved.estimate is not None
    assert moved.estimate.residual_rms_m < base.estimate.residual_rms_m + 1.0
