r"""TDOA fix from time-stamped recordings of one emission, with an honest error report.

Pipeline
--------
``evaluate_tdoa`` is the stream-facing API plus a truth report:

1. :func:`~heimdall.ml.tdoa.lags.pair_lags` — every pair's lag ``t_b − t_a`` with its
   statistical and systematic sigma and quality, and the receivers left out with a reason.
   Default method ``xcorr``: band-pass to ``band_hz`` (default 30–1500 Hz either side of
   the tuned frequency: the stop band below 30 Hz removes the carrier and the slow amplitude
   keying, whose constant-ish envelope gives a broad, uninformative correlation; for DCF77
   the pass band keeps the pseudo-random phase modulation — 512 chips at 645.16 chip/s,
   main lobe ±645 Hz, first side lobe to ±1290 Hz — which gives a correlation peak ~1.5 ms
   wide; the band was fixed before looking at the result), cross-correlation with the
   sub-window statistical sigma and the sub-band dispersion as the systematic sigma
   (:mod:`.dispersion`). ``dcf77-pn``: the DCF77 matched filter (:mod:`.dcf77`).
2. :func:`~heimdall.ml.tdoa.fix.fix_from_lags` — the fix on the ellipsoid (AEQD re-centred
   on the fix) with its covariance in the local east/north frame at the fix, built from the
   pairs' sigmas (and, for arrival-time differences, their shared receiver terms; for
   cross-correlation lags the per-receiver sigmas of ``shared_receivers``) plus
   ``sigma_floor_s`` in quadrature, scaled by the fit's reduced χ² with four receivers or
   more when the χ² test rejects the sigmas at :data:`~.fix.CHI2_ALPHA` (``scale_by_chi2``;
   the stream's fix does the same). With three receivers the
   three lags have one redundancy (the closure ``lag_ab + lag_bc + lag_ca`` should be 0):
   the GLS reduction turns them into two differences, which fix the position exactly.
3. The report: the fix and covariance re-expressed in the receivers' centroid-centred AEQD
   frame (the map's frame; the covariance mapped with the Jacobian between the two
   projections: mostly a rotation by the meridian convergence, ~3° for the DCF77 example),
   each pair's expected lag and error when the truth is given, the error in km and the
   truth's Mahalanobis distance.

Problems with individual recordings (unreadable, no overlap with the others, a weak
correlation peak with every other recording) are reported with the reason, and the rest are
still used when at least three remain.

Systematic errors
-----------------
The statistical sigmas come from the scatter over sub-windows and capture noise only; the
systematic sigmas capture the dispersion between the two channels that the band resolves
(:mod:`.dispersion`). What is a pure delay over the band, to first order, is in neither: a
receiver's own group delay (front-end filters, active antennas: tens of µs at LF are
possible), the ground-wave propagation speed (slower than c over land by ~10⁻⁴ and
path-dependent), and sky-wave energy arriving 40–100 µs after the ground wave at 300–800
km, which pulls the envelope peak by a band-dependent amount (a second path of relative
amplitude a at a delay d far below the inverse bandwidth cannot be separated from the
first; it biases the arrival by up to a·d/(1 − a), the largest group delay of
1 + a·e^{−i2πfd}: up to 43 µs for a = 0.3, d = 100 µs; tested in ``test_dcf77`` and
``test_dispersion``, which also shows how little of it the sub-band spread sees). On the
DCF77 example these dominate (see the report of this module's author in the issue); use
``sigma_floor_s`` to state such a budget explicitly. The report's
``delay_sensitivity_km_per_us`` says how far 1 µs of such a delay at each receiver moves the
fix (:func:`~heimdall.ml.estimators.tdoa.tdoa_delay_sensitivity`, at the fix): with three
receivers nothing in the data reveals the delay, so this is the price of every µs not
calibrated. For the DCF77 example (DF0KL, F1JEK, HB9RYZ): 0.19, 0.43 and 0.36 km/µs.

References
----------
- PTB, "DCF77 phase modulation" (P. Hetzel, "Time dissemination via the LF transmitter
  DCF77 using a pseudo-random phase-shift keying of the carrier", Proc. 2nd EFTF, 1988).
- ITU-R P.368 (ground-wave propagation), ITU-R P.684 (LF sky wave).
- C. Hein, hcab14/TDoA (KiwiSDR TDOA tool; the DCF77 example recordings).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pyproj import Geod

from heimdall.core.errors import EstimationError
from heimdall.core.geodesy import AzimuthalFrame
from heimdall.ml.estimators.ellipse import error_ellipse, mahalanobis2
from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S, TdoaEstimate
from heimdall.ml.tdoa.fix import CHI2_ALPHA, fix_from_lags
from heimdall.ml.tdoa.lags import (
    LagOptions,
    PairLag,
    TdoaMethod,
    TdoaRecording,
    bandpass,
    pair_lags,
)

__all__ = [
    "LagOptions",
    "PairLag",
    "TdoaMethod",
    "TdoaRecording",
    "TdoaReport",
    "bandpass",
    "evaluate_tdoa",
]

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class TdoaReport:
    """Result of :func:`evaluate_tdoa`; ``to_dict`` gives a JSON-ready summary."""

    receivers: dict[str, tuple[float, float]]
    pairs: list[PairLag]
    problems: dict[str, str]
    estimate: TdoaEstimate | None
    lat_deg: float | None
    lon_deg: float | None
    projection: str
    truth_latlon: tuple[float, float] | None = None
    error_km: float | None = None
    mahalanobis2: float | None = None
    closure_s: float | None = None
    notes: list[str] = field(default_factory=list)
    method: str = "xcorr"
    arrivals: dict[str, dict[str, Any]] = field(default_factory=dict)
    delay_sensitivity_km_per_us: dict[str, float] = field(default_factory=dict)

    @property
    def inside_1sigma(self) -> bool | None:
        """The truth lies inside the 1-σ ellipse (39.3 % for a correct Gaussian ellipse)."""
        return None if self.mahalanobis2 is None else self.mahalanobis2 <= 1.0

    @property
    def inside_2sigma(self) -> bool | None:
        """The truth lies inside the 2-σ ellipse (86.5 % for a correct Gaussian ellipse)."""
        return None if self.mahalanobis2 is None else self.mahalanobis2 <= 4.0

    def coverage(self) -> dict[str, float | int | None]:
        """``coverage_1sigma``/``coverage_2sigma`` as every ``eval`` reports them: the fraction
        of this run's fixes (one, or none without truth) whose ellipse holds the truth."""
        if self.mahalanobis2 is None:
            return {"n_fixes": 0, "coverage_1sigma": None, "coverage_2sigma": None}
        return {
            "n_fixes": 1,
            "coverage_1sigma": float(bool(self.inside_1sigma)),
            "coverage_2sigma": float(bool(self.inside_2sigma)),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary."""
        est = self.estimate
        ell = None
        if est is not None:
            a, b, ang = error_ellipse(est.cov_en, 1.0)
            ell = {"semi_major_km": a / 1e3, "semi_minor_km": b / 1e3, "angle_deg": ang}
        return {
            "receivers": {k: list(v) for k, v in self.receivers.items()},
            "pairs": [
                {
                    "a": p.a,
                    "b": p.b,
                    "lag_us": p.lag_s * 1e6,
                    "sigma_us": p.sigma_s * 1e6,
                    "quality": p.quality,
                    "expected_us": None if p.expected_s is None else p.expected_s * 1e6,
                    "error_us": None if p.error_s is None else p.error_s * 1e6,
                    "sigma_stat_us": None if p.sigma_stat_s is None else p.sigma_stat_s * 1e6,
                    "sigma_sys_us": None if p.sigma_sys_s is None else p.sigma_sys_s * 1e6,
                }
                for p in self.pairs
            ],
            "closure_us": None if self.closure_s is None else self.closure_s * 1e6,
            "problems": self.problems,
            "estimate": None
            if est is None
            else {
                "lat_deg": self.lat_deg,
                "lon_deg": self.lon_deg,
                "cov_en_km2": (est.cov_en / 1e6).tolist(),
                "ellipse_1sigma": ell,
                "residual_rms_m": est.residual_rms_m,
                "method": est.method,
                "ambiguous": est.ambiguous,
                "converged": est.converged,
            },
            "truth": None if self.truth_latlon is None else list(self.truth_latlon),
            "error_km": self.error_km,
            "mahalanobis2": self.mahalanobis2,
            "inside_1sigma": self.inside_1sigma,
            "inside_2sigma": self.inside_2sigma,
            **self.coverage(),
            "projection": self.projection,
            "notes": self.notes,
            "method": self.method,
            "arrivals": self.arrivals,
            "delay_sensitivity_km_per_us": self.delay_sensitivity_km_per_us,
        }


def evaluate_tdoa(
    recordings: Sequence[TdoaRecording],
    truth_latlon: tuple[float, float] | None = None,
    *,
    method: TdoaMethod = "xcorr",
    options: LagOptions | None = None,
    sigma_floor_s: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
    problems: dict[str, str] | None = None,
) -> TdoaReport:
    """Pairwise lags, the TDOA fix and its error against a known transmitter.

    Parameters
    ----------
    recordings : sequence of TdoaRecording
        Three or more receivers' recordings of the same emission.
    truth_latlon : (float, float), optional
        The transmitter's true position, for ``error_km`` and the ellipse check.
    method : {"xcorr", "dcf77-pn"}
        Lag method (:mod:`heimdall.ml.tdoa.lags`).
    options : LagOptions, optional
        The method's options (band, windows, sub-bands, DCF77 pair mode…).
    sigma_floor_s : float
        Systematic timing budget added in quadrature to every pair's sigma, s.
    speed_m_s : float
        Propagation speed.
    problems : dict, optional
        Problems found upstream (unreadable files), carried into the report.

    Returns
    -------
    TdoaReport
        ``estimate`` is None (and ``problems`` says why) when fewer than three usable
        recordings remain or the estimator fails.
    """
    pl = pair_lags(recordings, method=method, options=options, speed_m_s=speed_m_s)
    probs: dict[str, str] = {**(problems or {}), **pl.problems}
    notes = list(pl.notes)
    used = pl.receivers

    def expected(a: str, b: str) -> float | None:
        if truth_latlon is None:
            return None
        _, _, da = _GEOD.inv(truth_latlon[1], truth_latlon[0], used[a][1], used[a][0])
        _, _, db = _GEOD.inv(truth_latlon[1], truth_latlon[0], used[b][1], used[b][0])
        return (float(db) - float(da)) / speed_m_s

    pairs = [dataclasses.replace(p, expected_s=expected(p.a, p.b)) for p in pl.pairs]
    lat0 = float(np.mean([v[0] for v in used.values()])) if used else 0.0
    lon0 = float(np.mean([v[1] for v in used.values()])) if used else 0.0
    report_frame = AzimuthalFrame(lat0, lon0)
    crs = report_frame.proj
    report_base: dict[str, Any] = {
        "receivers": dict(used),
        "pairs": pairs,
        "problems": probs,
        "projection": crs,
        "truth_latlon": truth_latlon,
        "closure_s": pl.closure_s,
        "notes": notes,
        "method": pl.method,
        "arrivals": pl.arrivals,
    }
    if len(used) < 3:
        probs["_fix"] = f"only {len(used)} usable recordings: 2-D TDOA needs 3"
        return TdoaReport(estimate=None, lat_deg=None, lon_deg=None, **report_base)
    try:
        fix = fix_from_lags(
            used,
            pairs,
            toa_sigma=pl.toa_sigma_s,
            shared_receivers=True,
            scale_by_chi2=True,
            chi2_alpha=CHI2_ALPHA,
            sigma_floor_s=sigma_floor_s,
            speed_m_s=speed_m_s,
        )
    except EstimationError as exc:
        probs["_fix"] = str(exc)
        return TdoaReport(estimate=None, lat_deg=None, lon_deg=None, **report_base)
    est = fix.estimate
    e_c, n_c = report_frame.to_en(fix.lat_deg, fix.lon_deg)
    # express the fix and its covariance in the centroid-centred frame of the report:
    # C' = M C Mᵀ with M the Jacobian of (fix frame → report frame), by central differences
    h = 10.0
    jac = np.empty((2, 2))
    for j in range(2):
        dp = np.zeros(2)
        dp[j] = h
        plus = report_frame.to_en(*fix.frame.from_en(est.east_m + dp[0], est.north_m + dp[1]))
        minus = report_frame.to_en(*fix.frame.from_en(est.east_m - dp[0], est.north_m - dp[1]))
        jac[:, j] = (np.array(plus) - np.array(minus)) / (2 * h)
    est = dataclasses.replace(
        est, east_m=float(e_c), north_m=float(n_c), cov_en=jac @ est.cov_en @ jac.T
    )
    err_km = m2 = None
    if truth_latlon is not None:
        _, _, d = _GEOD.inv(fix.lon_deg, fix.lat_deg, truth_latlon[1], truth_latlon[0])
        err_km = float(d) / 1e3
        te, tn = report_frame.to_en(truth_latlon[0], truth_latlon[1])
        m2 = mahalanobis2([te - est.east_m, tn - est.north_m], est.cov_en)
    if fix.ambiguous:
        notes.append(
            "two admissible solutions (3-receiver hyperbola intersections); the one nearer "
            f"the receivers was taken; other(s) (lat, lon): {fix.alternatives_latlon}"
        )
    return TdoaReport(
        estimate=est,
        lat_deg=fix.lat_deg,
        lon_deg=fix.lon_deg,
        error_km=err_km,
        mahalanobis2=m2,
        delay_sensitivity_km_per_us=fix.delay_sensitivity_km_per_us,
        **report_base,
    )
