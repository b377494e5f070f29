r"""TDOA fix from time-stamped recordings of one emission, with an honest error report.

Pipeline
--------
1. Each recording (complex baseband, a GPS time per sample, the receiver's position) is
   band-passed to ``band_hz`` (default 30–1500 Hz either side of the tuned frequency):
   the stop band below 30 Hz removes the carrier and the slow amplitude keying, whose
   constant-ish envelope gives a broad, uninformative correlation; the pass band keeps the
   wide-band part of the emission. For DCF77 that is the pseudo-random phase modulation
   (512 chips at 645.16 chip/s, ±15.6°: main lobe ±645 Hz, first side lobe to ±1290 Hz),
   which gives a correlation peak ~1.5 ms wide. The band was fixed before looking at the
   result; see *Systematic errors* for how much the lags depend on it.
2. Every pair of recordings gives a lag ``t_b − t_a`` with its standard error and peak
   quality (:func:`~heimdall.ml.tdoa.xcorr.measure_lag`, search ±(baseline/c + 0.5 ms)).
3. The positions are projected with an azimuthal-equidistant projection, first centred at
   the receivers' centroid, then re-centred twice on the current fix: in that projection
   the distances from the centre — the transmitter — to every receiver are exact
   geodesics, so the planar range model of the estimator reproduces the geodesic range
   differences at the solution (ground-wave paths follow the Earth's surface). A single
   centroid-centred projection distorts 400–800 km ranges by ~0.1 % (a ~200 m bias, larger
   than the ellipse at good SNR); a tangent plane would shorten 500 km by ~1.5 km. The
   reported east/north and covariance are then expressed in the centroid-centred frame
   (covariance mapped with the Jacobian between the two projections: mostly a rotation by
   the meridian convergence, ~3° for the DCF77 example).
   With ``method="dcf77-pn"`` the lags come instead from a matched filter of the DCF77
   phase modulation (:mod:`heimdall.ml.tdoa.dcf77`), which also gives each receiver's
   absolute arrival time (``arrivals``) and a data-driven systematic sigma per pair.
4. All pairs enter :func:`~heimdall.ml.estimators.tdoa.estimate_tdoa` with independent
   per-pair sigmas ``sqrt(σ_ab² + σ_floor²)`` (``sigma_floor_s``, default 0). With three
   receivers the three lags have one redundancy (the closure ``lag_ab + lag_bc + lag_ca``
   should be 0): the GLS reduction turns them into two differences, which fix the position
   exactly; the covariance is the lag covariance mapped through the inverse Jacobian, so the
   ellipse is as good as the lag sigmas are.

Problems with individual recordings (unreadable, no overlap with the others, a weak
correlation peak with every other recording) are reported with the reason, and the rest are
still used when at least three remain.

Systematic errors
-----------------
The lag sigmas come from the scatter over sub-windows and capture noise only. Effects common
to a whole recording are not in them: a receiver's own group delay (front-end filters, active
antennas: tens of µs at LF are possible), the ground-wave propagation speed (slower than c
over land by ~10⁻⁴ and path-dependent), and sky-wave energy arriving 40–100 µs after the
ground wave at 300–800 km, which pulls the envelope peak by a band-dependent amount (a
second path of relative amplitude a at a delay d far below the inverse bandwidth — here
d ≈ 40–100 µs against 1/B ≈ 0.8 ms for the PN main lobe — cannot be separated from the
first; it biases the arrival by up to a·d/(1 − a), the largest group delay of
1 + a·e^{−i2πfd}: up to 43 µs for a = 0.3, d = 100 µs; tested in ``test_dcf77``). On the
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
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pyproj import Geod, Transformer
from scipy import signal

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators.ellipse import error_ellipse, mahalanobis2
from heimdall.ml.estimators.tdoa import (
    SPEED_OF_LIGHT_M_S,
    TdoaEstimate,
    estimate_tdoa,
    tdoa_delay_sensitivity,
)
from heimdall.ml.tdoa.dcf77 import PairMode, PnChannel, pn_channel, pn_lag
from heimdall.ml.tdoa.xcorr import measure_lag

__all__ = [
    "PairLag",
    "TdoaMethod",
    "TdoaRecording",
    "TdoaReport",
    "bandpass",
    "evaluate_tdoa",
]

#: ``xcorr``: band-passed cross-correlation of the whole recordings (any emission);
#: ``dcf77-pn``: matched filter of the DCF77 phase modulation (:mod:`.dcf77`).
TdoaMethod = Literal["xcorr", "dcf77-pn"]

_GEOD = Geod(ellps="WGS84")
_RECENTRE = 3


@dataclass(frozen=True)
class TdoaRecording:
    """One receiver's recording: what :func:`evaluate_tdoa` needs (no file format here).

    Attributes
    ----------
    name : str
        Station name.
    lat_deg, lon_deg : float
        Receiver position.
    samples : numpy.ndarray, complex
        Baseband IQ.
    times_s : numpy.ndarray, float64
        Time of each sample on a clock common to all recordings (GPS seconds).
    sample_rate_hz : float
        Mean true sample rate (used for the filter design).
    """

    name: str
    lat_deg: float
    lon_deg: float
    samples: npt.NDArray[Any]
    times_s: npt.NDArray[np.float64]
    sample_rate_hz: float


@dataclass(frozen=True)
class PairLag:
    """Lag ``t_b − t_a`` of one pair, and what the truth implies when known."""

    a: str
    b: str
    lag_s: float
    sigma_s: float
    quality: float
    expected_s: float | None = None
    sigma_stat_s: float | None = None
    sigma_sys_s: float | None = None

    @property
    def error_s(self) -> float | None:
        """Measured − expected lag, s."""
        return None if self.expected_s is None else self.lag_s - self.expected_s


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
            "projection": self.projection,
            "notes": self.notes,
            "method": self.method,
            "arrivals": self.arrivals,
            "delay_sensitivity_km_per_us": self.delay_sensitivity_km_per_us,
        }


def bandpass(
    x: npt.ArrayLike, fs: float, band_hz: tuple[float, float], numtaps: int = 401
) -> npt.NDArray[np.complex128]:
    """Zero-phase band-pass ``lo ≤ |f| ≤ hi`` of complex baseband (both sides of the carrier).

    A linear-phase FIR (``firwin``, Hamming) applied forwards and backwards (``filtfilt``):
    no group delay, so the lags are not shifted as long as every recording gets the same
    filter relative to its own rate.
    """
    lo, hi = band_hz
    taps = signal.firwin(numtaps, [lo, hi], pass_zero=False, fs=fs)
    return np.asarray(signal.filtfilt(taps, [1.0], np.asarray(x, dtype=np.complex128)))


def _aeqd(lat0: float, lon0: float) -> tuple[Transformer, str]:
    crs = f"+proj=aeqd +lat_0={lat0:.6f} +lon_0={lon0:.6f} +ellps=WGS84 +units=m"
    return Transformer.from_crs("EPSG:4326", crs, always_xy=True), crs


def _pair_covariance(
    pairs: Sequence[PairLag], toa_sigma: dict[str, float] | None, floor_s: float
) -> npt.NDArray[np.float64]:
    """Covariance of the pair lags, s².

    Without ``toa_sigma`` the pairs are independent: ``diag(σ_ab² + floor²)``. With it (lags
    that are differences of per-receiver arrival times), the statistical part is
    ``A diag(σ_i²) Aᵀ`` (``A`` the pair/receiver incidence: pairs sharing a receiver are
    correlated) and each pair's systematic part ``σ_sys² + floor²`` is added on the diagonal.
    """
    k = len(pairs)
    cov = np.zeros((k, k))
    for i, p in enumerate(pairs):
        if toa_sigma is None:
            cov[i, i] = p.sigma_s**2 + floor_s**2
            continue
        sys = p.sigma_sys_s or 0.0
        cov[i, i] += sys**2 + floor_s**2
        for j, q in enumerate(pairs):
            for name, sign_p in ((p.a, -1.0), (p.b, 1.0)):
                for other, sign_q in ((q.a, -1.0), (q.b, 1.0)):
                    if name == other:
                        cov[i, j] += sign_p * sign_q * toa_sigma[name] ** 2
    return cov


def evaluate_tdoa(
    recordings: Sequence[TdoaRecording],
    truth_latlon: tuple[float, float] | None = None,
    *,
    band_hz: tuple[float, float] = (30.0, 1500.0),
    n_windows: int = 16,
    min_quality: float = 0.1,
    sigma_floor_s: float = 0.0,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
    problems: dict[str, str] | None = None,
    method: TdoaMethod = "xcorr",
    pn_pair_mode: PairMode = "toa",
    pn_band_hz: float = 2_700.0,
    pn_subbands: int = 4,
    pn_systematic: Literal["estimators", "subbands", "none"] = "subbands",
) -> TdoaReport:
    """Pairwise lags, the TDOA fix and its error against a known transmitter.

    Parameters
    ----------
    recordings : sequence of TdoaRecording
        Three or more receivers' recordings of the same emission.
    truth_latlon : (float, float), optional
        The transmitter's true position, for ``error_km`` and the ellipse check.
    band_hz : (float, float)
        Pass band either side of the tuned frequency, Hz (module docstring).
    n_windows : int
        Sub-windows for the lag uncertainty.
    min_quality : float
        A recording whose best normalised correlation with every other is below this is
        dropped as a problem.
    sigma_floor_s : float
        Systematic timing budget added in quadrature to every pair's sigma, s.
    speed_m_s : float
        Propagation speed.
    problems : dict, optional
        Problems found upstream (unreadable files), carried into the report.
    method : {"xcorr", "dcf77-pn"}
        ``xcorr`` (default): cross-correlation of the band-passed recordings (``band_hz``,
        ``n_windows``). ``dcf77-pn``: matched filter of the DCF77 phase modulation per
        receiver (:func:`~heimdall.ml.tdoa.dcf77.pn_channel`, band ``|f| ≤ pn_band_hz``),
        pair lags by :func:`~heimdall.ml.tdoa.dcf77.pn_lag`; only for recordings of DCF77
        centred on 77.5 kHz with GPS-second-aligned time stamps.
    pn_pair_mode : {"toa", "cross"}
        With ``dcf77-pn``: ``toa`` differences each receiver's absolute arrival time (the
        three lags then share their receivers' errors, and the fix uses that covariance);
        ``cross`` correlates the matched-filter outputs pair by pair.
    pn_band_hz : float
        Half-width of the band used by ``dcf77-pn``, Hz.
    pn_subbands : int
        Sub-bands for ``pn_systematic="subbands"``.
    pn_systematic : {"subbands", "estimators", "none"}
        Systematic term of each ``dcf77-pn`` pair sigma, from the data only: ``subbands``
        (default) the excess spread of the pair's group delay over ``pn_subbands``
        contiguous sub-bands (:func:`~heimdall.ml.tdoa.dcf77.pn_lag`): dispersion between
        the two channels (receiver filters, sky wave) that biases any single-band lag;
        ``estimators`` ``|lag_toa − lag_cross| / √2``, the disagreement of the two pair
        modes (they weight the spectrum differently) — smaller, and on both DCF77 example
        sets too small (truth at 5–6.5 σ); ``none``.

    Returns
    -------
    TdoaReport
        ``estimate`` is None (and ``problems`` says why) when fewer than three usable
        recordings remain or the estimator fails.
    """
    probs: dict[str, str] = dict(problems or {})
    notes: list[str] = []
    good: list[TdoaRecording] = []
    for r in recordings:
        x = np.asarray(r.samples)
        t = np.asarray(r.times_s, dtype=float)
        if x.shape != t.shape or x.size < 64 * n_windows:
            probs[r.name] = f"{x.size} samples / {t.size} times: too short or mismatched"
        elif not (np.all(np.isfinite(x)) and np.all(np.isfinite(t))):
            probs[r.name] = "non-finite samples or sample times"
        elif np.any(np.diff(t) <= 0):
            probs[r.name] = "sample times do not increase (time base broken)"
        else:
            good.append(r)
    pos = {r.name: (r.lat_deg, r.lon_deg) for r in good}

    def baseline_s(a: str, b: str) -> float:
        _, _, d = _GEOD.inv(pos[a][1], pos[a][0], pos[b][1], pos[b][0])
        return float(d) / speed_m_s

    def expected(a: str, b: str) -> float | None:
        if truth_latlon is None:
            return None
        _, _, da = _GEOD.inv(truth_latlon[1], truth_latlon[0], pos[a][1], pos[a][0])
        _, _, db = _GEOD.inv(truth_latlon[1], truth_latlon[0], pos[b][1], pos[b][0])
        return (float(db) - float(da)) / speed_m_s

    lags: dict[tuple[str, str], PairLag] = {}
    arrivals: dict[str, dict[str, Any]] = {}
    toa_sigma: dict[str, float] = {}
    if method == "xcorr":
        filt = {r.name: bandpass(r.samples, r.sample_rate_hz, band_hz) for r in good}
        for ra, rb in itertools.combinations(good, 2):
            try:
                m = measure_lag(
                    filt[ra.name],
                    ra.times_s,
                    filt[rb.name],
                    rb.times_s,
                    max_lag_s=baseline_s(ra.name, rb.name) + 5e-4,
                    n_windows=n_windows,
                )
            except ValueError as exc:
                notes.append(f"{ra.name}–{rb.name}: {exc}")
                continue
            lags[(ra.name, rb.name)] = PairLag(
                ra.name,
                rb.name,
                m.lag_s,
                m.sigma_s,
                m.quality,
                expected_s=expected(ra.name, rb.name),
            )
    elif method == "dcf77-pn":
        chans: dict[str, PnChannel] = {}
        for r in good:
            try:
                ch = pn_channel(r.samples, r.times_s, band_hz=pn_band_hz)
            except ValueError as exc:
                probs[r.name] = f"DCF77 matched filter: {exc}"
                continue
            chans[r.name] = ch
            toa_sigma[r.name] = ch.toa_sigma_s
            arrivals[r.name] = {
                "toa_us": ch.toa_s * 1e6,
                "toa_sigma_us": ch.toa_sigma_s * 1e6,
                "peak_snr": ch.peak_snr,
                "n_seconds": int(ch.seconds.size),
                "bits": "".join(str(int(b)) for b in ch.bits),
            }
        for ra, rb in itertools.combinations([r for r in good if r.name in chans], 2):
            max_lag = baseline_s(ra.name, rb.name) + 5e-4
            nsub = pn_subbands if pn_systematic == "subbands" else 0
            try:
                pm = pn_lag(
                    chans[ra.name],
                    chans[rb.name],
                    max_lag_s=max_lag,
                    pair_mode=pn_pair_mode,
                    n_subbands=nsub,
                )
                other = pn_lag(
                    chans[ra.name],
                    chans[rb.name],
                    max_lag_s=max_lag,
                    pair_mode="cross" if pn_pair_mode == "toa" else "toa",
                    n_subbands=0,
                )
            except ValueError as exc:
                notes.append(f"{ra.name}–{rb.name}: {exc}")
                continue
            sys = {
                "estimators": abs(pm.lag_s - other.lag_s) / math.sqrt(2.0),
                "subbands": pm.sigma_sys_s,
                "none": 0.0,
            }[pn_systematic]
            notes.append(
                f"{rb.name}−{ra.name}: toa/cross lags "
                f"{(pm.lag_s if pn_pair_mode == 'toa' else other.lag_s) * 1e6:.2f} / "
                f"{(other.lag_s if pn_pair_mode == 'toa' else pm.lag_s) * 1e6:.2f} µs"
            )
            lags[(ra.name, rb.name)] = PairLag(
                ra.name,
                rb.name,
                pm.lag_s,
                math.hypot(pm.sigma_stat_s, sys),
                pm.quality,
                expected_s=expected(ra.name, rb.name),
                sigma_stat_s=pm.sigma_stat_s,
                sigma_sys_s=sys,
            )
    else:
        raise ValueError(f"unknown method {method!r}")
    for r in good:
        qs = [p.quality for k, p in lags.items() if r.name in k]
        if not qs:
            probs[r.name] = "no overlap in time with any other recording"
        elif max(qs) < min_quality:
            probs[r.name] = f"weak correlation with every other recording (best {max(qs):.3f})"
    used = [r for r in good if r.name not in probs]
    pairs = [p for p in lags.values() if p.a not in probs and p.b not in probs]
    closure = None
    if len(used) == 3 and len(pairs) == 3:
        (p01, p02, p12) = pairs  # (a,b): t_b − t_a; closure (t1−t0) + (t2−t1) − (t2−t0)
        closure = p01.lag_s + p12.lag_s - p02.lag_s
    lat0 = float(np.mean([r.lat_deg for r in used])) if used else 0.0
    lon0 = float(np.mean([r.lon_deg for r in used])) if used else 0.0
    fwd, crs = _aeqd(lat0, lon0)
    report_base: dict[str, Any] = {
        "receivers": {r.name: (r.lat_deg, r.lon_deg) for r in used},
        "pairs": pairs,
        "problems": probs,
        "projection": crs,
        "truth_latlon": truth_latlon,
        "closure_s": closure,
        "notes": notes,
        "method": method if method == "xcorr" else f"{method}/{pn_pair_mode}",
        "arrivals": arrivals,
    }
    if len(used) < 3:
        probs["_fix"] = f"only {len(used)} usable recordings: 2-D TDOA needs 3"
        return TdoaReport(estimate=None, lat_deg=None, lon_deg=None, **report_base)
    idx = {r.name: i for i, r in enumerate(used)}
    shared = method == "dcf77-pn" and pn_pair_mode == "toa"
    lon_e, lat_e = lon0, lat0
    est: TdoaEstimate | None = None
    pair_idx = [(idx[p.b], idx[p.a]) for p in pairs]
    cov_s2 = _pair_covariance(pairs, toa_sigma if shared else None, sigma_floor_s)
    lags_s = [p.lag_s for p in pairs]
    rx_xy = np.zeros((len(used), 2))
    for _ in range(_RECENTRE):
        ex, ny = fwd.transform([r.lon_deg for r in used], [r.lat_deg for r in used])
        rx_xy = np.c_[ex, ny]
        try:
            est = estimate_tdoa(rx_xy, lags_s, pairs=pair_idx, cov_s2=cov_s2, speed_m_s=speed_m_s)
        except EstimationError as exc:
            probs["_fix"] = str(exc)
            return TdoaReport(estimate=None, lat_deg=None, lon_deg=None, **report_base)
        lon_e, lat_e = fwd.transform(est.east_m, est.north_m, direction="INVERSE")
        # re-centre the projection on the fix: distances from the centre are exact geodesics
        fwd, crs = _aeqd(float(lat_e), float(lon_e))
    assert est is not None
    # in the last fix-centred frame, where ``est`` and ``rx_xy`` live
    sens = tdoa_delay_sensitivity(
        rx_xy, (est.east_m, est.north_m), pairs=pair_idx, cov_s2=cov_s2, speed_m_s=speed_m_s
    )
    last = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    fwd, crs = _aeqd(lat0, lon0)
    report_base["projection"] = crs
    e_c, n_c = fwd.transform(lon_e, lat_e)
    # express the fix and its covariance in the centroid-centred frame of the report:
    # C' = M C Mᵀ with M the Jacobian of (fix frame → report frame), by central differences
    h = 10.0
    jac = np.empty((2, 2))
    for j in range(2):
        dp = np.zeros(2)
        dp[j] = h
        plus = fwd.transform(*last.transform(est.east_m + dp[0], est.north_m + dp[1]))
        minus = fwd.transform(*last.transform(est.east_m - dp[0], est.north_m - dp[1]))
        jac[:, j] = (np.array(plus) - np.array(minus)) / (2 * h)
    est = dataclasses.replace(
        est, east_m=float(e_c), north_m=float(n_c), cov_en=jac @ est.cov_en @ jac.T
    )
    err_km = m2 = None
    if truth_latlon is not None:
        _, _, d = _GEOD.inv(lon_e, lat_e, truth_latlon[1], truth_latlon[0])
        err_km = float(d) / 1e3
        te, tn = fwd.transform(truth_latlon[1], truth_latlon[0])
        m2 = mahalanobis2([te - est.east_m, tn - est.north_m], est.cov_en)
    if est.ambiguous:
        notes.append(
            "two admissible solutions (3-receiver hyperbola intersections); the one nearer "
            f"the receivers was taken; other(s): {est.alternatives}"
        )
    return TdoaReport(
        estimate=est,
        lat_deg=float(lat_e),
        lon_deg=float(lon_e),
        error_km=err_km,
        mahalanobis2=m2,
        delay_sensitivity_km_per_us={
            r.name: float(np.hypot(*sens[i])) * 1e-9 for i, r in enumerate(used)
        },
        **report_base,
    )
