r"""Pairwise lags of one emission heard by N GPS-timed receivers (file-format free).

:func:`pair_lags` is what a stream stage calls per emission: the receivers' complex baseband
with a GPS time per sample (gaps where chunks are missing are allowed), the method, and the
method's options (:class:`LagOptions`); it returns every usable pair's lag ``t_b − t_a`` with
its statistical and systematic sigma and a quality, the receivers left out with a one-line
reason each, and — for methods that measure absolute arrival times — the per-receiver
arrival sigmas that make the pairs sharing a receiver correlated. :func:`~.fix.fix_from_lags`
turns them into a position.

Methods
-------
``xcorr`` (any emission): each recording is band-passed to ``band_hz`` either side of the
tuned frequency (zero-phase FIR, per gap-free run, by FFT convolution; runs too short for the
filter are dropped), resampled once onto one grid for the emission
(:func:`~heimdall.ml.tdoa.xcorr.union_grid`: N resamplings instead of N(N − 1)) at the rate
of the analysis band (:func:`grid_decimation`: 12 → 4 kHz for 30–1500 Hz; B-spline
interpolation of the band-passed samples, :func:`~heimdall.ml.tdoa.xcorr.resample_band_limited`),
and all pairs' lags come from :func:`~heimdall.ml.tdoa.xcorr.measure_lags_on_grid` (each
receiver's spectra computed once and shared by its pairs; one validity mask for all
receivers when that drops < 0.2 % of any pair's samples, :data:`SHARED_SUPPORT_LOSS`),
searched within ±(baseline/c + 0.5 ms) plus the margin of a search at the recordings' rate
(pair by pair on each pair's common interval when the union of the spans is more than twice
the longest). Against the code before this fast path (0f20dad: 12 kHz grid, Kaiser sinc,
Brent) the lags agree within 0.006 σ_stat and the sigmas within 0.2 % (stat) and 8 %
(sys) on the bench's signals and the shared DCF77 recordings (golden test); on noise-free
tonal signals, where the sub-window scatter is set by the windows' spectral leakage rather
than by noise, σ_stat moves by up to ~13 % and σ_sys by a few µs with the grid rate.
``sigma_stat_s`` is the sub-window standard error, ``sigma_sys_s`` the excess spread of the
pair's group delay over ``n_subbands`` contiguous sub-bands of the pass band
(:mod:`.dispersion`: receiver-filter and resolvable sky-wave dispersion; not a receiver's
constant delay), and ``sigma_s = sqrt(σ_stat² + σ_sys²)``.

``dcf77-pn`` (DCF77 only, 77.5 kHz centred, GPS-second-aligned stamps): the matched filter of
the PN phase modulation per receiver (:func:`~.dcf77.pn_channel`), pairs by
:func:`~.dcf77.pn_lag` (``pn_pair_mode``: ``toa`` arrival-time differences, whose
per-receiver sigmas come back in ``toa_sigma_s``; or ``cross``), systematic term by
``pn_systematic`` (see :class:`LagOptions`).

A receiver is left out (``problems``) when its samples are too short, non-finite or their
times do not increase, when its method-specific processing fails, when it overlaps no other
receiver in time, or when its best normalised correlation with every other is below
``min_quality``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pyproj import Geod
from scipy import signal

from heimdall.ml.estimators.tdoa import SPEED_OF_LIGHT_M_S
from heimdall.ml.tdoa.dcf77 import PairMode, PnChannel, pn_channel, pn_lag
from heimdall.ml.tdoa.dispersion import passband_edges
from heimdall.ml.tdoa.xcorr import (
    LagMeasurement,
    common_grid,
    contiguous_segments,
    measure_lag_on_grid,
    measure_lags_on_grid,
    resample_band_limited,
    union_grid,
)

__all__ = [
    "LagOptions",
    "PairLag",
    "PairLags",
    "TdoaMethod",
    "TdoaRecording",
    "bandpass",
    "grid_decimation",
    "max_lag_s",
    "pair_lags",
]

#: ``xcorr``: band-passed cross-correlation of the whole recordings (any emission);
#: ``dcf77-pn``: matched filter of the DCF77 phase modulation (:mod:`.dcf77`).
TdoaMethod = Literal["xcorr", "dcf77-pn"]

_GEOD = Geod(ellps="WGS84")


@dataclass(frozen=True)
class TdoaRecording:
    """One receiver's recording of the emission (no file format here).

    Attributes
    ----------
    name : str
        Station name.
    lat_deg, lon_deg : float
        Receiver position.
    samples : numpy.ndarray, complex
        Baseband IQ.
    times_s : numpy.ndarray, float64
        Time of each sample on a clock common to all recordings (GPS seconds), strictly
        increasing; a step > 1.5 median steps is a gap (missing chunks).
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
    """Lag ``t_b − t_a`` of one pair (s), its sigmas, and what a known truth implies.

    ``sigma_s`` is the total used by the fix, ``sqrt(sigma_stat_s² + sigma_sys_s²)``;
    ``quality`` the normalised correlation at the peak (0…1).
    """

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
class LagOptions:
    """Options of :func:`pair_lags` (defaults: those of ``heimdall eval tdoa``).

    Attributes
    ----------
    band_hz : (float, float)
        ``xcorr``: pass band either side of the tuned frequency, Hz.
    n_windows : int
        Sub-windows for the statistical sigma (``xcorr``).
    n_subbands : int
        ``xcorr``: sub-bands of the pass band for the systematic term (even, ≥ 2; 0: none).
    min_quality : float
        A receiver whose best normalised correlation with every other is below this is left
        out.
    pn_pair_mode : {"toa", "cross"}
        ``dcf77-pn``: arrival-time differences (pairs share their receivers' errors) or the
        cross-correlation of the matched-filter outputs.
    pn_band_hz : float
        ``dcf77-pn``: half-width of the band used, Hz.
    pn_subbands : int
        ``dcf77-pn``: sub-bands for ``pn_systematic="subbands"``.
    pn_systematic : {"subbands", "estimators", "none"}
        ``dcf77-pn`` systematic term, from the data only: ``subbands`` the excess spread of
        the pair's group delay over ``pn_subbands`` contiguous sub-bands; ``estimators``
        ``|lag_toa − lag_cross| / √2`` (smaller, and on both DCF77 example sets too small:
        truth at 5–6.5 σ); ``none``.
    """

    band_hz: tuple[float, float] = (30.0, 1500.0)
    n_windows: int = 16
    n_subbands: int = 4
    min_quality: float = 0.1
    pn_pair_mode: PairMode = "toa"
    pn_band_hz: float = 2_700.0
    pn_subbands: int = 4
    pn_systematic: Literal["subbands", "estimators", "none"] = "subbands"


@dataclass(frozen=True)
class PairLags:
    """Result of :func:`pair_lags`.

    Attributes
    ----------
    pairs : list of PairLag
        Lags among the usable receivers, each pair once (``a`` before ``b`` in input order).
    receivers : dict
        Usable receivers, name → (lat_deg, lon_deg), in input order.
    problems : dict
        Receivers left out, name → one-line reason.
    toa_sigma_s : dict or None
        Per-receiver arrival-time sigma (s) when the pair lags are differences of absolute
        arrival times (``dcf77-pn``/``toa``): pairs sharing a receiver are then correlated;
        pass it to :func:`~.fix.fix_from_lags`. None: the pairs are independent.
    arrivals : dict
        Per-receiver details of methods that measure arrivals (``dcf77-pn``).
    notes : list of str
        Per-pair remarks (pairs that failed, estimator comparisons).
    method : str
        ``xcorr`` or ``dcf77-pn/<pair mode>``.
    """

    pairs: list[PairLag]
    receivers: dict[str, tuple[float, float]]
    problems: dict[str, str]
    toa_sigma_s: dict[str, float] | None = None
    arrivals: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    method: str = "xcorr"

    @property
    def closure_s(self) -> float | None:
        """``lag_01 + lag_12 − lag_02`` for exactly three receivers and pairs (≈ 0), s."""
        if len(self.receivers) != 3 or len(self.pairs) != 3:
            return None
        p01, p02, p12 = self.pairs
        return p01.lag_s + p12.lag_s - p02.lag_s


def bandpass(
    x: npt.ArrayLike,
    fs: float,
    band_hz: tuple[float, float],
    numtaps: int = 401,
    times_s: npt.ArrayLike | None = None,
) -> npt.NDArray[np.complex128]:
    """Zero-phase band-pass ``lo ≤ |f| ≤ hi`` of complex baseband (both sides of the carrier).

    A linear-phase FIR (``firwin``, Hamming) applied forwards and backwards (``filtfilt``):
    no group delay, so the lags are not shifted as long as every recording gets the same
    filter relative to its own rate. With ``times_s``, each gap-free run
    (:func:`~.xcorr.contiguous_segments`) is filtered on its own (no filter memory across a
    gap); a run too short for ``filtfilt`` (≤ 3 × ``numtaps`` samples) is set to 0. Each
    pass is an FFT convolution equal to ``scipy.signal.filtfilt`` to rounding (:func:`_filtfilt`).
    """
    lo, hi = band_hz
    taps = signal.firwin(numtaps, [lo, hi], pass_zero=False, fs=fs)
    xc = np.asarray(x, dtype=np.complex128)
    pad = 3 * numtaps
    segs = (
        [(0, xc.size)]
        if times_s is None
        else contiguous_segments(np.asarray(times_s, dtype=np.float64))
    )
    return _bandpass_runs(xc, taps, pad, segs)


def _bandpass_runs(
    xc: npt.NDArray[np.complex128],
    taps: npt.NDArray[np.float64],
    pad: int,
    segs: list[tuple[int, int]],
) -> npt.NDArray[np.complex128]:
    """:func:`bandpass` of the gap-free runs ``segs`` of ``xc``."""
    if len(segs) == 1:
        if xc.size <= pad:
            raise ValueError(f"{xc.size} samples: need more than {pad} for the band-pass")
        return _filtfilt(taps, xc, pad)
    out = np.zeros_like(xc)
    for i0, i1 in segs:
        if i1 - i0 > pad:
            out[i0:i1] = _filtfilt(taps, xc[i0:i1], pad)
    return out


def _filtfilt(
    taps: npt.NDArray[np.float64], x: npt.NDArray[np.complex128], pad: int
) -> npt.NDArray[np.complex128]:
    """``scipy.signal.filtfilt(taps, [1], x, padlen=pad)`` (odd extension) by FFT convolution.

    Each pass is ``lfilter`` started in the steady state of its first input value
    (``lfilter_zi × ext[0]``): for an FIR that is the convolution with the input preceded by
    ``numtaps − 1`` copies of that value. Away from the ends (``pad + numtaps`` samples) the
    two passes are one convolution with the taps' autocorrelation (the FIR is linear
    phase), computed by one FFT convolution; the two ends are run through both passes on a
    piece long enough that the piece's own other end cannot reach them (an FIR forgets after
    ``numtaps`` samples). Equal to ``filtfilt`` to rounding (10⁻¹⁵ relative).
    """
    n = x.size
    edge = pad + 2 * taps.size
    if n <= 4 * edge:
        return _filtfilt_direct(taps, x, pad)
    h2 = np.convolve(taps, taps[::-1])
    half = taps.size - 1
    y = np.empty_like(x)
    y[edge:-edge] = signal.oaconvolve(x[edge - half : n - edge + half], h2, mode="valid")
    y[:edge] = _filtfilt_direct(taps, x[: 3 * edge], pad)[:edge]
    y[-edge:] = _filtfilt_direct(taps, x[-3 * edge :], pad)[-edge:]
    return y


def _filtfilt_direct(
    taps: npt.NDArray[np.float64], x: npt.NDArray[np.complex128], pad: int
) -> npt.NDArray[np.complex128]:
    """:func:`_filtfilt` of a short record: both passes (FFT convolutions)."""
    ext = np.concatenate((2 * x[0] - x[pad:0:-1], x, 2 * x[-1] - x[-2 : -pad - 2 : -1]))
    n_pre = taps.size - 1
    y = signal.fftconvolve(np.concatenate((np.full(n_pre, ext[0]), ext)), taps, mode="valid")
    y = y[::-1]
    y = signal.fftconvolve(np.concatenate((np.full(n_pre, y[0]), y)), taps, mode="valid")
    return np.asarray(y[::-1][pad:-pad])


_NUMTAPS = 401


def _filtered(
    r: TdoaRecording, band_hz: tuple[float, float]
) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64], bool]:
    """Band-passed samples and their times, without the runs too short to filter; one run?

    The first and last :data:`_NUMTAPS` samples of every run are dropped after filtering:
    there the zero-phase filter has seen the padding (odd extension) instead of the signal.
    A recording cut while the emission is still on (a block that ends at a chunk boundary
    before the far receivers' tail has arrived) would otherwise carry a different filter
    transient at each receiver, since each sees a different part of the waveform at the cut:
    on the ``hf-tdoa`` scenario's 8 s bursts that biased pair lags by up to 0.25 µs, about
    3 of their sigmas, the same in every seed.
    """
    t = np.asarray(r.times_s, dtype=np.float64)
    segs = contiguous_segments(t)
    lo, hi = band_hz
    taps = signal.firwin(_NUMTAPS, [lo, hi], pass_zero=False, fs=r.sample_rate_hz)
    xc = np.asarray(r.samples, dtype=np.complex128)
    if len(segs) == 1 and xc.size <= 3 * _NUMTAPS:
        return xc[:0], t[:0], True  # too short to filter: a problem, not an exception
    x = _bandpass_runs(xc, taps, 3 * _NUMTAPS, segs)
    edge = _NUMTAPS
    if len(segs) == 1:
        return x[edge:-edge], t[edge:-edge], True
    keep = np.zeros(t.size, dtype=bool)
    for i0, i1 in segs:
        if i1 - i0 > 3 * _NUMTAPS:
            keep[i0 + edge : i1 - edge] = True
    return x[keep], t[keep], False


def _screen(
    recordings: Sequence[TdoaRecording], min_samples: int
) -> tuple[list[TdoaRecording], dict[str, str]]:
    probs: dict[str, str] = {}
    good: list[TdoaRecording] = []
    for r in recordings:
        x = np.asarray(r.samples)
        t = np.asarray(r.times_s, dtype=float)
        if x.shape != t.shape or x.size < min_samples:
            probs[r.name] = f"{x.size} samples / {t.size} times: too short or mismatched"
        elif not (np.all(np.isfinite(x)) and np.all(np.isfinite(t))):
            probs[r.name] = "non-finite samples or sample times"
        elif np.any(np.diff(t) <= 0):
            probs[r.name] = "sample times do not increase (time base broken)"
        else:
            good.append(r)
    return good, probs


class _Work:
    """What the per-method helpers of :func:`pair_lags` fill in."""

    def __init__(self, good: list[TdoaRecording], probs: dict[str, str], speed_m_s: float):
        self.good = good
        self.probs = probs
        self.speed_m_s = speed_m_s
        self.notes: list[str] = []
        self.lags: dict[tuple[str, str], PairLag] = {}
        self.arrivals: dict[str, dict[str, Any]] = {}
        self.toa_sigma: dict[str, float] = {}

    def max_lag_s(self, a: TdoaRecording, b: TdoaRecording) -> float:
        return max_lag_s(a, b, self.speed_m_s)


def max_lag_s(a: TdoaRecording, b: TdoaRecording, speed_m_s: float = SPEED_OF_LIGHT_M_S) -> float:
    """The largest lag a pair can show: its geodesic baseline / speed + 0.5 ms, s."""
    _, _, d = _GEOD.inv(a.lon_deg, a.lat_deg, b.lon_deg, b.lat_deg)
    return float(d) / speed_m_s + 5e-4


def _xcorr_pairs(w: _Work, opt: LagOptions) -> None:
    """Band-pass, one grid per emission, every pair by cross-correlation (module docstring)."""
    edges = passband_edges(*opt.band_hz, opt.n_subbands) if opt.n_subbands else None
    filt: dict[str, tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64]]] = {}
    runs: dict[str, list[tuple[int, int]]] = {}  # one gap-free run: no need to look again
    for r in w.good:
        x, t, one_run = _filtered(r, opt.band_hz)
        if one_run:
            runs[r.name] = [(0, t.size)]
        if x.size < 64 * opt.n_windows:
            w.probs[r.name] = (
                f"{x.size} samples in gap-free runs longer than {3 * _NUMTAPS}: too short "
                "for the band-pass"
            )
        else:
            filt[r.name] = (x, t)
    span = {n: (float(t[0]), float(t[-1])) for n, (_, t) in filt.items()}
    for n in list(filt):
        if len(filt) > 1 and not any(
            span[n][0] < span[k][1] and span[k][0] < span[n][1] for k in filt if k != n
        ):
            w.probs[n] = "no overlap in time with any other recording"
            del filt[n]
    # one grid for the emission at the analysis band's rate: each receiver resampled once,
    # N(N − 1)/2 pairs on it sharing the receivers' spectra; per pair (measure_lag's common
    # interval) if the union of the spans is much longer than any of them
    names = [r.name for r in w.good if r.name in filt]
    pairs = list(itertools.combinations(range(len(names)), 2))
    by_name = {r.name: r for r in w.good}
    kw: dict[str, Any] = {
        "n_windows": opt.n_windows,
        "subband_edges_hz": edges,
        "band_hz": opt.band_hz,
    }
    results: list[LagMeasurement | ValueError] = []
    max_lags = [w.max_lag_s(by_name[names[i]], by_name[names[j]]) for i, j in pairs]
    if len(filt) >= 2:
        t0 = min(span[n][0] for n in names)
        t1 = max(span[n][1] for n in names)
        if t1 - t0 <= 2.0 * max(span[n][1] - span[n][0] for n in names):
            times, fs = union_grid([filt[n][1] for n in names])
            q = grid_decimation(fs, opt.band_hz)
            kw["search_rate_hz"] = fs
            times, fs = times[::q], fs / q
            grid = _shared_support(
                [resample_band_limited(*filt[n], times, segments=runs.get(n)) for n in names]
            )
            results = measure_lags_on_grid(
                grid,
                times,
                fs,
                [(i, j, m) for (i, j), m in zip(pairs, max_lags, strict=True)],
                **kw,
            )
        else:
            for (i, j), lim in zip(pairs, max_lags, strict=True):
                results.append(_pair_on_common_grid(filt[names[i]], filt[names[j]], opt, lim, kw))
    for (i, j), m in zip(pairs, results, strict=True):
        na, nb = names[i], names[j]
        if isinstance(m, ValueError):
            w.notes.append(f"{na}–{nb}: {m}")
            continue
        w.lags[(na, nb)] = PairLag(
            na,
            nb,
            m.lag_s,
            m.sigma_total_s,
            m.quality,
            sigma_stat_s=m.sigma_s,
            sigma_sys_s=m.sigma_sys_s,
        )


#: Largest fraction of a pair's samples :func:`_shared_support` may drop.
SHARED_SUPPORT_LOSS = 2e-3


def _shared_support(
    grid: list[tuple[npt.NDArray[np.complex128], npt.NDArray[np.bool_]]],
) -> list[tuple[npt.NDArray[np.complex128], npt.NDArray[np.bool_]]]:
    """One validity mask for all receivers when that costs each pair < 0.2 % of its samples.

    A pair is measured where both recordings are valid; receivers whose spans end a sample
    apart (rate errors) or whose gaps are a sample wider make every pair's span and mask a
    little different, and then no receiver's spectra can be shared between its pairs. When
    the intersection of all masks keeps all but :data:`SHARED_SUPPORT_LOSS` of every pair's
    both-valid samples it is used for all (N FFTs per emission instead of 2 per pair); else
    the masks are left as they are.
    """
    common = np.logical_and.reduce([v for _, v in grid])
    n_common = int(common.sum())
    if n_common == 0:
        return grid
    for i, j in itertools.combinations(range(len(grid)), 2):
        n_pair = int(np.count_nonzero(grid[i][1] & grid[j][1]))
        if n_common < (1.0 - SHARED_SUPPORT_LOSS) * n_pair:
            return grid
    return [(g, common) for g, _ in grid]


def grid_decimation(fs: float, band_hz: tuple[float, float]) -> int:
    """Integer step ``q`` of the analysis grid: ``f_s / q ≥ 2 × 1.25 × band_hz[1]`` (≥ 1).

    After the band-pass nothing but the filter's stop-band leakage (−100 dB after both
    passes) lies beyond ``band_hz[1]`` (plus its ~100 Hz transition), so a complex rate with
    a Nyquist 25 % above the band edge loses nothing: 12 kHz → 4 kHz (q = 3) for 30–1500 Hz.
    """
    return max(1, math.floor(fs / (2.5 * band_hz[1])))


def _pair_on_common_grid(
    a: tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64]],
    b: tuple[npt.NDArray[np.complex128], npt.NDArray[np.float64]],
    opt: LagOptions,
    max_lag_s: float,
    kw: dict[str, Any],
) -> LagMeasurement | ValueError:
    """One pair on its own common interval (:func:`~.xcorr.measure_lag`'s grid), decimated."""
    try:
        times, fs = common_grid(a[1], b[1])
        q = grid_decimation(fs, opt.band_hz)
        kw = {**kw, "search_rate_hz": fs}
        times, fs = times[::q], fs / q
        if times.size < 64 * opt.n_windows:
            raise ValueError(f"common interval has {times.size} samples, need {64 * opt.n_windows}")
        return measure_lag_on_grid(
            *resample_band_limited(*a, times),
            *resample_band_limited(*b, times),
            times,
            fs,
            max_lag_s=max_lag_s,
            **kw,
        )
    except ValueError as exc:
        return exc


def _pn_pairs(w: _Work, opt: LagOptions) -> None:
    """DCF77 matched filter per receiver, pairs by :func:`~.dcf77.pn_lag` (module docstring)."""
    chans: dict[str, PnChannel] = {}
    for r in w.good:
        try:
            ch = pn_channel(r.samples, r.times_s, band_hz=opt.pn_band_hz)
        except ValueError as exc:
            w.probs[r.name] = f"DCF77 matched filter: {exc}"
            continue
        chans[r.name] = ch
        w.toa_sigma[r.name] = ch.toa_sigma_s
        w.arrivals[r.name] = {
            "toa_us": ch.toa_s * 1e6,
            "toa_sigma_us": ch.toa_sigma_s * 1e6,
            "peak_snr": ch.peak_snr,
            "n_seconds": int(ch.seconds.size),
            "bits": "".join(str(int(b)) for b in ch.bits),
        }
    mode = opt.pn_pair_mode
    nsub = opt.pn_subbands if opt.pn_systematic == "subbands" else 0
    for ra, rb in itertools.combinations([r for r in w.good if r.name in chans], 2):
        max_lag = w.max_lag_s(ra, rb)
        try:
            pm = pn_lag(
                chans[ra.name], chans[rb.name], max_lag_s=max_lag, pair_mode=mode, n_subbands=nsub
            )
            other = pn_lag(
                chans[ra.name],
                chans[rb.name],
                max_lag_s=max_lag,
                pair_mode="cross" if mode == "toa" else "toa",
                n_subbands=0,
            )
        except ValueError as exc:
            w.notes.append(f"{ra.name}–{rb.name}: {exc}")
            continue
        sys = {
            "estimators": abs(pm.lag_s - other.lag_s) / math.sqrt(2.0),
            "subbands": pm.sigma_sys_s,
            "none": 0.0,
        }[opt.pn_systematic]
        toa, cross = (pm, other) if mode == "toa" else (other, pm)
        w.notes.append(
            f"{rb.name}−{ra.name}: toa/cross lags {toa.lag_s * 1e6:.2f} / "
            f"{cross.lag_s * 1e6:.2f} µs"
        )
        w.lags[(ra.name, rb.name)] = PairLag(
            ra.name,
            rb.name,
            pm.lag_s,
            math.hypot(pm.sigma_stat_s, sys),
            pm.quality,
            sigma_stat_s=pm.sigma_stat_s,
            sigma_sys_s=sys,
        )


def pair_lags(
    recordings: Sequence[TdoaRecording],
    *,
    method: TdoaMethod = "xcorr",
    options: LagOptions | None = None,
    speed_m_s: float = SPEED_OF_LIGHT_M_S,
) -> PairLags:
    """Lags of every pair of receivers of one emission, with sigmas and quality.

    Parameters
    ----------
    recordings : sequence of TdoaRecording
        The receivers' recordings of the same emission (GPS-timed, gaps allowed).
    method : {"xcorr", "dcf77-pn"}
        Module docstring.
    options : LagOptions, optional
        Method options (default ``LagOptions()``).
    speed_m_s : float
        Propagation speed (the lag search is ±(baseline / speed + 0.5 ms)).

    Returns
    -------
    PairLags
        Never raises for bad recordings: they are in ``problems`` with the reason.

    Raises
    ------
    ValueError
        Unknown ``method`` or invalid options.
    """
    opt = options or LagOptions()
    if method not in ("xcorr", "dcf77-pn"):
        raise ValueError(f"unknown TDOA method {method!r}: xcorr or dcf77-pn")
    good, probs = _screen(recordings, 64 * opt.n_windows)
    w = _Work(good, probs, speed_m_s)
    if method == "xcorr":
        _xcorr_pairs(w, opt)
    else:
        _pn_pairs(w, opt)
    for r in good:
        if r.name in probs:
            continue
        qs = [p.quality for k, p in w.lags.items() if r.name in k]
        if not qs:
            probs[r.name] = (
                "no overlap in time with any other recording"
                if len(good) > 1
                else "no other recording to pair with"
            )
        elif max(qs) < opt.min_quality:
            probs[r.name] = f"weak correlation with every other recording (best {max(qs):.3f})"
    used = {r.name: (r.lat_deg, r.lon_deg) for r in good if r.name not in probs}
    shared = method == "dcf77-pn" and opt.pn_pair_mode == "toa"
    return PairLags(
        pairs=[p for p in w.lags.values() if p.a in used and p.b in used],
        receivers=used,
        problems=probs,
        toa_sigma_s={k: v for k, v in w.toa_sigma.items() if k in used} if shared else None,
        arrivals=w.arrivals,
        notes=w.notes,
        method=method if method == "xcorr" else f"{method}/{opt.pn_pair_mode}",
    )
