r"""Time difference of arrival between two time-stamped complex baseband recordings.

Convention
----------
If the same signal ``s(t)`` reaches receiver a at ``τ_a`` and receiver b at ``τ_b`` then
``x_a(t) = s(t − τ_a)`` and ``x_b(t) = s(t − τ_b)`` on the receivers' (GPS) clocks, and
:func:`measure_lag` returns ``lag_s = τ_b − τ_a`` (positive when b hears it later) — the
``t_b − t_a`` of the pair ``(b, a)`` in :mod:`heimdall.ml.estimators.tdoa`.

Common time grid
----------------
Each recording comes with the time of every sample (float64 s, e.g. interpolated from
per-block GPS stamps), and the receivers' true sample rates differ slightly (KiwiSDR:
nominal 12001 Hz, true rate off by ~10⁻⁵): a correlation on the native sample indices would
drift by ``Δf/f · N`` samples over the record (≈ 4 samples over 30 s) and smear the peak.
Both recordings are therefore put on one uniform grid ``t_k = t_0 + k/f_s`` over their
common interval, ``f_s`` the lower of the two measured mean rates. The *time base* is what
is interpolated: the fractional sample index of each grid time, ``u(t_k)``, comes from
linear interpolation of (sample time → index), exact for a piecewise-uniform clock. A
recording whose ``u(t_k)`` are all integers (within 10⁻³ sample) is then read directly,
with no signal interpolation at all; otherwise its samples are interpolated at ``u(t_k)``
with a Kaiser-windowed sinc (32 taps, β = 8: passband error < 10⁻³ up to 0.4 f_s), the
band-limited interpolator suited to complex baseband that fills most of its Nyquist band
(linear or cubic interpolation would bias the lag by a fraction of a sample there).

Gaps
----
A recording may miss whole blocks (chunks not received or not detected): a step in its
sample times larger than 1.5 × the median step splits it into contiguous segments. The
mean rate is then ``Σ (n_i − 1) / Σ T_i`` over the segments (not ``(N − 1)/(t_{N−1} − t_0)``,
which would count the gap as samples and put the grid at too low a rate), grid times that
fall inside a gap are *missing* (value 0, :func:`resample_with_mask`), and the sinc
interpolator uses no sample across a gap (a segment's edge is treated like a record's end).
The correlation is taken over the grid times valid in both recordings (the others are
zero in both, so they add nothing to ``R`` nor to the energies of ``quality``); a
sub-window with less than half of its samples valid is not used for the uncertainty.

Correlation and sub-sample peak
-------------------------------
``R(ℓ) = Σ_k x_a^*[k] x_b[k + ℓ]`` via FFT (zero-padded, so linear, not circular); the
integer peak of ``|R|`` within ``±max_lag_s`` is refined by maximising the band-limited
continuation of the correlation

.. math:: R(τ) = \frac1{N_{fft}} \sum_j X_a^*(ν_j) X_b(ν_j)\, e^{i 2π ν_j τ},

over τ within ±1.25 samples of it: on a grid of quarter samples, then within ±¼ sample of the
best grid point on the Taylor series of ``R`` about it (``Σ_p δ^p/p! Σ_j S_j e^{i2πν_j c}
(i2πν_j)^p``, truncated where the remainder is below 10⁻¹⁵ of ``Σ|S_j|``: exact to rounding)
by a dense look and Newton steps on ``|R|²`` — vectorised over the sub-windows, one set of
moments per row instead of the ~20 full sums per row of a bounded Brent search (which the
code used before; same maximum). This is exact for band-limited signals —
unlike a parabola through three samples of ``|R|``, which is biased towards the nearest
integer by up to ~0.05 sample for a peak as narrow as the sample spacing. The modulus is
used: the carrier phases of independent receivers' local oscillators are unrelated, so only
the envelope of the correlation carries the delay. With ``band_hz`` (the pass band the
recordings were filtered to) the sum runs over that band's bins only; the others hold the
filter's stop-band leakage.

Unbiased correlation (valid mode)
---------------------------------
The linear correlation of two records of ``L`` samples sums ``L − |ℓ|`` products at lag ``ℓ``:
``|R|`` is the true correlation tapered by ``(L − |ℓ|)/L``, a kink at zero lag that pulls a
peak of curvature ``c`` (samples⁻², ``c ≈ (2π B_rms / f_s)²``) towards zero by ``1/(cL)``
samples — and holds it *at* zero when the true lag is smaller. For a narrowband emission the
pull is large: 2FSK at 50 Bd (``B_rms`` ≈ 85 Hz) over 8 s at 4 kHz is 0.44 µs on the full
record and 16× that on a sub-window, where it also suppresses the scatter of near-zero lags
(so ``σ_stat`` came out 3–10× too small on the ``hf-tdoa`` scenario). Dividing by the overlap
does not cure it when the signal does not fill the record (a burst: then it biases *away*
from zero by the same amount). With ``max_lag_s`` the correlation is therefore taken in
*valid mode*: side ``a`` of each pair (full record and every sub-window) has its first and
last ``T`` samples set to zero, ``T`` the search half-width (integer search, refinement and
the sub-windows' search) rounded up to a power of two, so every searched lag sums the same
samples of ``a`` against real samples of ``b``; noise-free, Cauchy–Schwarz puts the maximum
of ``|R|`` at the true lag wherever the energy of ``b`` over the shifted span does not
change (a constant-envelope signal, a burst inside the record). Cost: ``2T`` samples of each
window of ``a`` (< 2 % for baselines of 1000 km and 0.5 s windows) and a second spectrum per
receiver for its ``a`` sides (shared by pairs with the same ``T``). Without ``max_lag_s``
(search a quarter of the record) the tapered estimate is kept.

Many pairs on one grid
----------------------
:func:`measure_lags_on_grid` measures every pair of N recordings on one grid with the
spectra shared: a receiver's signal over a pair's span (mean removed, zero where the pair is
not both valid) is Fourier transformed once — the full record zero-padded to
``next_fast_len(2n)``, the sub-windows in one 2-D FFT — and reused by every pair with the
same span and mask, so a pair costs the products of spectra, one inverse FFT for the integer
peak and the refinements. :func:`measure_lag_on_grid` is the one-pair case. With
``search_rate_hz`` the search limits (±M integer lags then ±1.25 samples, and the
sub-windows' ±``window_search_samples``) are those of a grid at that rate, in time, so a
coarser grid (below) searches the same lags.

Band-limited input, coarser grid
--------------------------------
For recordings already band-passed well inside their Nyquist band (:func:`~.lags.pair_lags`),
:func:`resample_band_limited` interpolates with a B-spline of order 5 instead of the sinc
(same time base and validity) and the grid may be coarser than the recordings: after a
30–1500 Hz band-pass at 12 kHz a 4 kHz complex grid holds the whole band
(:func:`~.lags.grid_decimation`), with 3× fewer samples for every FFT. The number of bins in
the band — hence the refinement's cost — does not change (same resolution ``1/(2T)``).

Uncertainty
-----------
The record is cut into ``n_windows`` (default 16) equal sub-windows; each gives its own lag
(same refinement, searched within a few samples of the full-record peak so a weak window
cannot jump to a side lobe), and

.. math:: σ_{\hat τ} = \frac{\operatorname{std}(\hat τ_1, …, \hat τ_K)}{\sqrt K}.

This is estimated from the data, so it includes what a formula would miss: non-white or
non-Gaussian noise, interference, fading multipath, residual clock wander. For stationary
conditions the full-record lag has the variance of the sub-window mean to first order (the
Fisher information of disjoint windows adds), which is why the standard error is the right
scale. Its own relative uncertainty is ``1/sqrt(2(K − 1))`` (18 % for K = 16); a Student-t
with K − 1 dof is the exact reference for its intervals. For comparison the Cramér–Rao bound
of the delay between two noisy copies of a signal of bandwidth ``B`` observed for ``T`` is

.. math:: σ_τ^2 \ge \frac{1}{8π^2 B_{rms}^2 \cdot \mathrm{SNR}_{eff} \cdot T B},
          \qquad \mathrm{SNR}_{eff}^{-1} = \mathrm{SNR}_a^{-1} + \mathrm{SNR}_b^{-1}
          + (\mathrm{SNR}_a \mathrm{SNR}_b)^{-1}

(Knapp & Carter 1976; Carter 1987), with ``B_rms`` the RMS bandwidth; it needs the SNRs and
spectra, which are rarely known for real recordings, hence the data-driven choice. The
window estimate is only valid above the threshold SNR where each window's peak is the true
one (``quality`` well above the side-lobe level); ``quality`` is reported for that check.

``quality`` is the normalised correlation ``|R(τ̂)| / sqrt(Σ|x_a|² Σ|x_b|²)`` in [0, 1].

Systematic term (dispersion between the two channels)
-----------------------------------------------------
The window scatter says nothing about a bias common to the whole record. With
``subband_edges_hz`` the sub-windows' cross-spectra ``G_j(f) = X_{a,j}^*(f) X_{b,j}(f)``
(each turned by the phase of its own correlation at the full-record lag: the receivers'
local-oscillator phase difference is a nuisance that may drift from window to window,
which is also why the peak of ``|R|`` is used) give a local group delay per sub-band and
its standard error, and ``sigma_sys_s`` is their spread in excess of those errors
(:mod:`.dispersion`, the same estimator as the DCF77 matched filter's): different receiver
filter phase responses or a sky wave that the band resolves make the sub-bands disagree, and
the full-band lag is biased by up to about that spread. Only sub-bands that hold at least
:data:`MIN_SUBBAND_SHARE` of the coherent cross-spectrum count: a narrowband emission (the
``hf-tdoa`` 2FSK fills one sub-band of four) leaves the others with spectral leakage and noise
whose phase slopes are far from their linearised errors, and the DerSimonian–Laird
denominator ``Σw − Σw²/Σw`` is then about those sub-bands' weight alone, so that σ_sys came
out as 0 or as hundreds of µs at random (lags good to ~1 µs); with one usable sub-band the
term is 0 (the band resolves no dispersion). It cannot see what is a pure delay
to first order over the band (a receiver's constant group delay, an echo much shorter than
the inverse bandwidth): :mod:`.dispersion` gives the coverage of a two-path bias.

References
----------
- C. H. Knapp, G. C. Carter, "The generalized correlation method for estimation of time
  delay", IEEE Trans. Acoust. Speech Signal Process. 24(4), 320–327, 1976.
- G. C. Carter, "Coherence and time delay estimation", Proc. IEEE 75(2), 236–255, 1987.
- A. V. Oppenheim, R. W. Schafer, *Discrete-Time Signal Processing*, 3rd ed., 2010, §4.6 and
  §7.5 (band-limited interpolation, Kaiser window).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft
from scipy import ndimage, special

from heimdall.ml.tdoa.dispersion import excess_spread, subband_delays

__all__ = [
    "LagMeasurement",
    "common_grid",
    "contiguous_segments",
    "mean_rate_hz",
    "measure_lag",
    "measure_lag_on_grid",
    "measure_lags_on_grid",
    "resample_band_limited",
    "resample_to_times",
    "resample_with_mask",
    "union_grid",
]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]

#: A sub-band with less than this share of the pair's coherent cross-spectrum (``|mean|``
#: over the sub-windows, summed over its bins) is left out of the systematic term.
MIN_SUBBAND_SHARE = 0.02
_HALF_TAPS = 16
_KAISER_BETA = 8.0
_CHUNK = 1 << 15
#: A step in the sample times larger than this many median steps is a gap.
GAP_FACTOR = 1.5


@dataclass(frozen=True, slots=True)
class LagMeasurement:
    """Result of :func:`measure_lag`.

    Attributes
    ----------
    lag_s : float
        ``τ_b − τ_a``, s (module docstring).
    sigma_s : float
        Standard error of ``lag_s`` from the sub-window scatter (statistical), s.
    quality : float
        Normalised correlation at the peak, 0…1.
    n_windows : int
        Sub-windows used for ``sigma_s`` (those at least half valid).
    window_lags_s : numpy.ndarray
        The sub-window lags, s.
    sample_rate_hz : float
        Rate of the common grid.
    start_s : float
        Time of the first common-grid sample.
    duration_s : float
        Length of the common interval, s.
    sigma_sys_s : float
        Excess spread of the sub-band group delays (0 without ``subband_edges_hz``), s.
    subband_delays_s, subband_sigmas_s : numpy.ndarray
        Local group delay of each sub-band and its statistical error, s.
    valid_fraction : float
        Fraction of the common grid where both recordings have data (< 1 across gaps).
    """

    lag_s: float
    sigma_s: float
    quality: float
    n_windows: int
    window_lags_s: FloatArray
    sample_rate_hz: float
    start_s: float
    duration_s: float
    sigma_sys_s: float = 0.0
    subband_delays_s: FloatArray = field(default_factory=lambda: np.empty(0))
    subband_sigmas_s: FloatArray = field(default_factory=lambda: np.empty(0))
    valid_fraction: float = 1.0

    @property
    def sigma_total_s(self) -> float:
        """``sqrt(sigma_s² + sigma_sys_s²)``, s."""
        return math.hypot(self.sigma_s, self.sigma_sys_s)


def _check(x: npt.ArrayLike, t: npt.ArrayLike, name: str) -> tuple[ComplexArray, FloatArray]:
    xa = np.asarray(x).astype(np.complex128, copy=False).reshape(-1)
    ta = np.asarray(t, dtype=np.float64).reshape(-1)
    if xa.shape != ta.shape or xa.size < 16:
        raise ValueError(f"{name}: samples {xa.shape} and times {ta.shape} must match, ≥ 16")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ta))):
        raise ValueError(f"{name}: non-finite samples or times")
    if np.any(np.diff(ta) <= 0.0):
        raise ValueError(f"{name}: sample times must increase strictly")
    return xa, ta


def contiguous_segments(t: FloatArray) -> list[tuple[int, int]]:
    """Index ranges ``[start, stop)`` of the gap-free runs of the sample times ``t``.

    A step larger than :data:`GAP_FACTOR` × the median step starts a new run.
    """
    if t.size < 2:
        return [(0, int(t.size))]
    dt = np.diff(t)
    cuts = np.flatnonzero(dt > GAP_FACTOR * float(np.median(dt))) + 1
    bounds = [0, *cuts.tolist(), int(t.size)]
    return [(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]


def mean_rate_hz(t: FloatArray) -> float:
    """Mean sample rate over the gap-free runs: ``Σ (n_i − 1) / Σ T_i``, Hz."""
    n = 0
    span = 0.0
    for i0, i1 in contiguous_segments(t):
        if i1 - i0 >= 2:
            n += i1 - i0 - 1
            span += float(t[i1 - 1] - t[i0])
    if n == 0 or span <= 0.0:
        raise ValueError("fewer than two consecutive samples: no sample rate")
    return n / span


def common_grid(t_a: FloatArray, t_b: FloatArray) -> tuple[FloatArray, float]:
    """Uniform grid over the common interval at the lower measured mean rate.

    The rates are measured over the gap-free runs (:func:`mean_rate_hz`).

    Returns
    -------
    times : numpy.ndarray
        Grid times, s (``t_0 + k/f_s``; computed as offsets to keep float64 precision).
    fs : float
        Its rate, Hz.
    """
    fs = float(min(mean_rate_hz(t_a), mean_rate_hz(t_b)))
    t0 = max(float(t_a[0]), float(t_b[0]))
    t1 = min(float(t_a[-1]), float(t_b[-1]))
    if t1 <= t0:
        raise ValueError("the recordings do not overlap in time")
    n = math.floor((t1 - t0) * fs) + 1
    return t0 + np.arange(n) / fs, fs


def resample_to_times(x: ComplexArray, t: FloatArray, times: FloatArray) -> ComplexArray:
    """Samples of ``x`` (taken at ``t``) at ``times``: time-base interpolation, then sinc.

    The fractional index ``u = interp(times, t, 0..n−1)``; integer ``u`` (within 10⁻³) are
    read directly, otherwise a Kaiser-windowed sinc (32 taps, β = 8) interpolates. Grid
    times outside ``t`` are clamped to its ends; grid times inside a gap of ``t`` are 0
    (:func:`resample_with_mask` also says which values are valid).
    """
    return resample_with_mask(x, t, times)[0]


def resample_with_mask(
    x: ComplexArray, t: FloatArray, times: FloatArray
) -> tuple[ComplexArray, npt.NDArray[np.bool_]]:
    """:func:`resample_to_times` and whether each value is backed by data.

    Valid: inside a gap-free run of ``t`` (:func:`contiguous_segments`), within half a
    sample of its ends. Inside a gap the value is 0; the sinc uses no sample of another run.
    """
    segs = contiguous_segments(t)
    u = np.interp(times - t[0], t - t[0], np.arange(t.size, dtype=float))
    starts = np.array([i0 for i0, _ in segs])
    ends = np.array([i1 - 1 for _, i1 in segs])
    half = 0.5 * (t[ends] - t[starts]) / np.maximum(ends - starts, 1)
    k = np.clip(np.searchsorted(t[starts] - half, times, side="right") - 1, 0, len(segs) - 1)
    valid = (times >= t[starts][k] - half[k]) & (times <= t[ends][k] + half[k])
    seg_id = np.repeat(np.arange(len(segs)), [i1 - i0 for i0, i1 in segs])
    in_gap = np.zeros(times.size, dtype=bool)
    if len(segs) > 1:
        base = np.clip(np.floor(u).astype(np.intp), 0, t.size - 1)
        nxt = np.clip(base + 1, 0, t.size - 1)
        in_gap = (seg_id[nxt] != seg_id[base]) & (u - base > 1e-9)
    iu = np.rint(u)
    if np.all((np.abs(u - iu) < 1e-3) | in_gap):
        out = np.asarray(x[iu.astype(np.intp)])
        return np.where(in_gap, 0.0, out), valid & ~in_gap
    out = np.empty(u.size, dtype=np.complex128)
    offs = np.arange(-_HALF_TAPS + 1, _HALF_TAPS + 1)
    norm = float(special.i0(_KAISER_BETA))
    for s in range(0, u.size, _CHUNK):
        uu = u[s : s + _CHUNK]
        base = np.floor(uu).astype(np.intp)
        idx = base[:, None] + offs[None, :]
        dist = uu[:, None] - idx
        win_arg = 1.0 - (dist / _HALF_TAPS) ** 2
        w = np.sinc(dist) * special.i0(_KAISER_BETA * np.sqrt(np.clip(win_arg, 0.0, None))) / norm
        w[win_arg <= 0.0] = 0.0
        valid_tap = (idx >= 0) & (idx < x.size)
        if len(segs) > 1:
            # taps only within the run of the sample below (rows near a run's edge)
            own = seg_id[np.clip(base, 0, x.size - 1)]
            lo_i, hi_i = starts[own], ends[own]
            edge = (base + offs[0] < lo_i) | (base + offs[-1] > hi_i)
            valid_tap[edge] &= (idx[edge] >= lo_i[edge, None]) & (idx[edge] <= hi_i[edge, None])
        w = np.where(valid_tap, w, 0.0)
        out[s : s + _CHUNK] = np.sum(w * x[np.clip(idx, 0, x.size - 1)], axis=1)
    out[in_gap] = 0.0
    return out, valid & ~in_gap


def resample_band_limited(
    x: ComplexArray,
    t: FloatArray,
    times: FloatArray,
    order: int = 5,
    segments: list[tuple[int, int]] | None = None,
) -> tuple[ComplexArray, npt.NDArray[np.bool_]]:
    r""":func:`resample_with_mask` for a recording already band-limited well below its Nyquist.

    The same time-base interpolation ``u(t_k)`` and the same validity (gaps, ends), but the
    signal is interpolated with a B-spline of ``order`` (``scipy.ndimage.map_coordinates``,
    run by run, mirror boundaries) instead of the 32-tap Kaiser sinc: for a signal confined to
    ``|ν| ≤ ν_max`` cycles per sample the cardinal spline of order ``n`` approximates the ideal
    interpolator with an error of order ``(ν_max/(1 − ν_max))^{n+1}`` (Unser, Aldroubi &
    Eden 1991) — 2·10⁻⁵ relative to the sinc's output for order 5 on a 30–1500 Hz band at
    12 kHz (ν_max = 1/8), at about 1/20 of its cost. Used by :func:`~.lags.pair_lags` after
    the band-pass, where the grid is also coarser than the recording (decimation).
    ``segments``: :func:`contiguous_segments` of ``t`` when the caller has them.
    """
    segs = contiguous_segments(t) if segments is None else segments
    u = np.interp(times - t[0], t - t[0], np.arange(t.size, dtype=float))
    starts = np.array([i0 for i0, _ in segs])
    ends = np.array([i1 - 1 for _, i1 in segs])
    half = 0.5 * (t[ends] - t[starts]) / np.maximum(ends - starts, 1)
    k = np.clip(np.searchsorted(t[starts] - half, times, side="right") - 1, 0, len(segs) - 1)
    valid = (times >= t[starts][k] - half[k]) & (times <= t[ends][k] + half[k])
    seg_id = np.repeat(np.arange(len(segs)), [i1 - i0 for i0, i1 in segs])
    base = np.clip(np.floor(u).astype(np.intp), 0, t.size - 1)
    in_gap = np.zeros(times.size, dtype=bool)
    if len(segs) > 1:
        nxt = np.clip(base + 1, 0, t.size - 1)
        in_gap = (seg_id[nxt] != seg_id[base]) & (u - base > 1e-9)
    out = np.zeros(u.size, dtype=np.complex128)
    own = seg_id[base]
    for s, (i0, i1) in enumerate(segs):
        rows = np.flatnonzero((own == s) & ~in_gap)
        if rows.size == 0:
            continue
        seg = x[i0:i1]
        coords = np.clip(u[rows] - i0, 0.0, i1 - i0 - 1.0)[None, :]
        if seg.size <= order:
            # too short for the spline: nearest sample (such runs are filter edges anyway)
            out[rows] = seg[np.rint(coords[0]).astype(np.intp)]
            continue
        for part, sign in ((seg.real, 1.0), (seg.imag, 1j)):
            c = ndimage.spline_filter1d(part, order=order, mode="mirror")
            out[rows] += sign * ndimage.map_coordinates(
                c, coords, order=order, prefilter=False, mode="mirror"
            )
    return out, valid & ~in_gap


def _phasor(theta: FloatArray) -> ComplexArray:
    """``e^{iθ}`` from ``cos`` and ``sin`` (faster than the complex ``exp``)."""
    out = np.empty(theta.shape, dtype=np.complex128)
    out.real = np.cos(theta)
    out.imag = np.sin(theta)
    return out


@dataclass(frozen=True, slots=True)
class _Tables:
    """What :func:`_peaks_near` needs of a frequency set and grid step, kept for reuse.

    ``omega = 2π f``, ``z = e^{iωh}`` and the Taylor weights ``w[p] = ω^p / p!``; for the bins
    ``f = j / N`` of an FFT also ``j`` and the roots of unity ``e^{i2πk/N}``, so that
    ``e^{iωτ}`` at ``τ = K + m h`` (K integer) is a table look-up and ``m`` products.
    """

    step: float
    omega: FloatArray
    z: ComplexArray
    w: FloatArray
    bins: npt.NDArray[np.intp] | None = None
    roots: ComplexArray | None = None

    @classmethod
    def of(
        cls, f: FloatArray, step: float, bins: npt.NDArray[np.intp] | None = None, nfft: int = 0
    ) -> _Tables:
        omega = 2 * np.pi * f
        n_terms = _taylor_terms(float(np.max(np.abs(omega), initial=0.0)) * step)
        w = np.empty((n_terms, f.size))
        w[0] = 1.0
        for p in range(1, n_terms):
            np.multiply(w[p - 1], omega / p, out=w[p])
        roots = None
        if bins is not None and nfft > 0:
            roots = _phasor(2 * np.pi * np.arange(nfft) / nfft)
        return cls(step, omega, _phasor(omega * step), w, bins, roots)

    def phasor(self, tau: float) -> ComplexArray:
        """``e^{iωτ}``: from the roots of unity when ``τ`` is on the steps' grid, else computed."""
        k = math.floor(tau)
        m = (tau - k) / self.step
        if self.roots is None or self.bins is None or abs(m - round(m)) > 1e-9:
            return _phasor(self.omega * tau)
        out = self.roots[(self.bins * k) % self.roots.size]
        for _ in range(round(m)):
            out = out * self.z
        return out


def _taylor_terms(x_max: float, tol: float = 1e-15) -> int:
    """Terms ``P`` of the Taylor series of ``e^{ix}``, ``|x| ≤ x_max``, with remainder < tol."""
    p, term = 0, 1.0
    while term > tol or p < 2:
        p += 1
        term *= x_max / p
    return p + 1


def _peaks_near(
    spec: ComplexArray,
    f: FloatArray,
    lo: float,
    hi: float,
    nfft: int,
    step: float = 0.25,
    tables: _Tables | None = None,
) -> tuple[FloatArray, FloatArray]:
    r"""Maximise ``|R_k(τ)| = |Σ_j S_{kj} e^{i2π f_j τ}| / N_{fft}`` of each row over [lo, hi].

    The grid ``lo, lo + h, …`` (``h = step``) is evaluated for all rows at once (the phasors
    ``e^{i2π f (τ_0 + m h)}`` by recurrence, one product per point); around each row's best
    grid point ``c`` the maximum within ``[c − h, c + h]`` is found on the Taylor series

    .. math:: R(c + δ) = \sum_{p < P} \frac{δ^p}{p!} \sum_j S_j e^{i2π f_j c} (i2π f_j)^p,

    whose ``P`` terms make the remainder below 10⁻¹⁵ of ``Σ|S_j|`` for ``|2π f δ| ≤ 2π
    max|f| h`` (exact for the band-limited correlation, like the sum it replaces): a dense
    look at 41 points of ``δ`` and Newton steps on ``|R|²`` from the best, kept inside
    ``[c − h, c + h] ∩ [lo, hi]``. The same maximum the bounded Brent search of ``|R|``
    found, without its ~20 evaluations of the whole sum per row.

    Returns
    -------
    tau : numpy.ndarray
        Argmax of each row, samples.
    peak : numpy.ndarray
        ``|R_k(τ_k)| / N_fft``.
    """
    spec = np.atleast_2d(spec)
    h = step
    grid = np.arange(lo, hi + 1e-9, h)
    if grid.size < 2:
        grid = np.array([lo, hi])
    tab = tables if tables is not None and tables.step == h else _Tables.of(f, h)
    z, w = tab.z, tab.w
    ph = np.empty((grid.size, f.size), dtype=np.complex128)
    ph[0] = tab.phasor(float(grid[0]))
    for m in range(1, grid.size):
        np.multiply(ph[m - 1], z, out=ph[m])
    vals = np.abs(ph @ spec.T).T  # rows × grid
    best = np.argmax(vals, axis=1)
    centre = grid[best]
    rot = spec * ph[best]
    n_terms = w.shape[0]
    # R(c + δ) = Σ_p mom_p δ^p (real products: numpy has no BLAS for complex × real)
    mom = (w @ rot.real.T + 1j * (w @ rot.imag.T)).T * (1j ** np.arange(n_terms))
    dense = np.linspace(-h, h, 41)
    vals_d = np.abs(mom @ (dense[None, :] ** np.arange(n_terms)[:, None]).astype(complex))
    d_lo = np.maximum(lo - centre, -h)
    d_hi = np.minimum(hi - centre, h)
    vals_d = np.where((dense >= d_lo[:, None]) & (dense <= d_hi[:, None]), vals_d, -1.0)
    d = np.clip(dense[np.argmax(vals_d, axis=1)], d_lo, d_hi)
    pw = np.arange(n_terms)
    c1 = mom[:, 1:] * pw[1:]
    c2 = c1[:, 1:] * pw[1:-1]
    for _ in range(4):
        r0 = np.sum(mom * d[:, None] ** pw, axis=1)
        r1 = np.sum(c1 * d[:, None] ** pw[:-1], axis=1)
        r2 = np.sum(c2 * d[:, None] ** pw[:-2], axis=1)
        g = np.real(np.conj(r0) * r1)
        curv = np.abs(r1) ** 2 + np.real(np.conj(r0) * r2)
        newton = np.where(curv < 0, -g / np.where(curv < 0, curv, -1.0), 0.0)
        d = np.clip(d + newton, d_lo, d_hi)
    peak = np.abs(np.sum(mom * d[:, None] ** pw, axis=1)) / nfft
    return centre + d, peak


@dataclass(slots=True)
class _Side:
    """One receiver's signal over a pair's span, prepared once for every pair that shares it."""

    x: ComplexArray
    energy: float
    spec: ComplexArray | None = None
    win_spec: ComplexArray | None = None
    #: the untrimmed signal of a trimmed side (its sub-windows are trimmed from it)
    base: ComplexArray | None = None


class _Spectra:
    """Spectra of the receivers on one grid, kept for the pairs that share a span and mask.

    A receiver's signal over a pair's span (mean removed, zero where the pair is not both
    valid) depends on the pair only through the span and, across gaps, the mask: pairs with
    the same span and mask (all pairs of an emission when the receivers' spans coincide) share
    its full-record FFT and its sub-windows' FFT (one 2-D FFT over the windows).
    """

    def __init__(self, signals: Sequence[tuple[ComplexArray, npt.NDArray[np.bool_]]]) -> None:
        self.signals = signals
        self._cache: dict[tuple[object, ...], _Side] = {}
        self._bands: dict[
            tuple[object, ...], tuple[FloatArray, npt.NDArray[np.bool_], _Tables]
        ] = {}

    def band(
        self, nfft: int, band: tuple[float, float] | None
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], _Tables]:
        """``fftfreq(nfft)``, the analysis band's bins and their :class:`_Tables` (cached)."""
        key = (nfft, band)
        got = self._bands.get(key)
        if got is None:
            freq, keep = _freq_keep(nfft, band)
            got = (freq, keep, _Tables.of(freq[keep], 0.25, np.flatnonzero(keep), nfft))
            self._bands[key] = got
        return got

    def side(
        self,
        r: int,
        i0: int,
        i1: int,
        valid: npt.NDArray[np.bool_] | None,
        remove_mean: bool,
        trim: int = 0,
    ) -> _Side:
        """The side of receiver ``r`` on ``[i0, i1)``; with ``trim`` its first and last
        ``trim`` samples are zero (the leading side of a valid-mode correlation)."""
        key: tuple[object, ...] = (r, i0, i1, remove_mean)
        if valid is not None:
            key += (np.packbits(valid).tobytes(),)
        if trim:
            full = self.side(r, i0, i1, valid, remove_mean)
            tkey = (*key, "trim", trim)
            got = self._cache.get(tkey)
            if got is None:
                g = full.x.copy()
                g[:trim] = 0.0
                g[g.size - trim :] = 0.0
                got = _Side(x=g, energy=float(np.vdot(g, g).real), base=full.x)
                self._cache[tkey] = got
            return got
        got = self._cache.get(key)
        if got is None:
            g = self.signals[r][0][i0:i1]
            if remove_mean:
                g = g - (g[valid].mean() if valid is not None else g.mean())
            if valid is not None:
                g = np.where(valid, g, 0.0)
            got = _Side(x=g, energy=float(np.vdot(g, g).real))
            self._cache[key] = got
        return got


def _freq_keep(
    nfft: int, band: tuple[float, float] | None
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    freq = sfft.fftfreq(nfft)
    if band is None:
        return freq, np.ones(nfft, dtype=bool)
    return freq, (np.abs(freq) >= band[0]) & (np.abs(freq) <= band[1])


def measure_lags_on_grid(
    signals: Sequence[tuple[ComplexArray, npt.NDArray[np.bool_]]],
    times: FloatArray,
    fs: float,
    pairs: Sequence[tuple[int, int, float | None]],
    *,
    n_windows: int = 16,
    window_search_samples: float = 3.0,
    remove_mean: bool = True,
    subband_edges_hz: Sequence[tuple[float, float]] | None = None,
    band_hz: tuple[float, float] | None = None,
    search_rate_hz: float | None = None,
) -> list[LagMeasurement | ValueError]:
    """:func:`measure_lag_on_grid` of many pairs of N recordings on one grid, sharing spectra.

    ``signals`` are the receivers' ``(values, valid)`` on ``times`` (rate ``fs``); ``pairs``
    are ``(a, b, max_lag_s)`` indices into it. Each receiver's full-record and sub-window
    spectra are computed once per span and mask (:class:`_Spectra`: N FFTs instead of 2 per
    pair when the spans coincide) and each pair is the product of its two sides' spectra.
    ``search_rate_hz`` as in :func:`measure_lag_on_grid`. Returns, per pair, its
    :class:`LagMeasurement` or the ValueError :func:`measure_lag_on_grid` would raise.
    """
    if n_windows < 4:
        raise ValueError("n_windows must be at least 4")
    spectra = _Spectra(signals)
    out: list[LagMeasurement | ValueError] = []
    for a, b, max_lag_s in pairs:
        try:
            out.append(
                _pair_on_grid(
                    spectra,
                    a,
                    b,
                    times,
                    fs,
                    max_lag_s=max_lag_s,
                    n_windows=n_windows,
                    window_search_samples=window_search_samples,
                    remove_mean=remove_mean,
                    subband_edges_hz=subband_edges_hz,
                    band_hz=band_hz,
                    search_rate_hz=search_rate_hz,
                )
            )
        except ValueError as exc:
            out.append(exc)
    return out


def _pair_on_grid(
    spectra: _Spectra,
    a: int,
    b: int,
    times: FloatArray,
    fs: float,
    *,
    max_lag_s: float | None,
    n_windows: int,
    window_search_samples: float,
    remove_mean: bool,
    subband_edges_hz: Sequence[tuple[float, float]] | None,
    band_hz: tuple[float, float] | None,
    search_rate_hz: float | None,
) -> LagMeasurement:
    va = spectra.signals[a][1]
    vb = spectra.signals[b][1]
    both_mask = va & vb
    both = np.flatnonzero(both_mask)
    if both.size == 0:
        raise ValueError("the recordings do not overlap in time")
    i0, i1 = int(both[0]), int(both[-1]) + 1
    n = i1 - i0
    if n < 64 * n_windows:
        raise ValueError(f"common interval has {n} samples, need {64 * n_windows}")
    valid = both_mask[i0:i1]
    n_valid = int(both.size)
    if n_valid < 64 * n_windows:
        raise ValueError(
            f"the recordings have data at the same time for {n_valid} samples, "
            f"need {64 * n_windows}"
        )
    gapped = n_valid < n
    # search limits as the sample-rate-``ref`` search had them: integer lags within ±M samples
    # at ``ref``, then ±1.25 samples around the best (grid ±1, refinement ±0.25)
    ref = fs if search_rate_hz is None else search_rate_hz
    n_ref = math.floor((n - 1) * ref / fs) + 1
    m_ref = n_ref // 4 if max_lag_s is None else min(math.ceil(max_lag_s * ref) + 1, n_ref - 1)
    limit = (m_ref + 1.25) * fs / ref
    max_lag = m_ref if ref == fs else min(math.ceil(limit), n - 1)
    half_w = (window_search_samples + 0.25) * fs / ref
    w = n // n_windows
    # valid mode (module docstring, *Unbiased correlation*): side a without its ends, so every
    # searched lag sums the same samples of a against real samples of b
    trim = 0
    if max_lag_s is not None:
        # rounded up to a power of two: pairs with similar searches share the trimmed
        # spectra, and a pair measured alone (:func:`measure_lag`) gets the same trim
        trim = 1 << math.ceil(limit + half_w).bit_length()
        if 4 * trim >= w:
            trim = 0  # windows too short to trim: the biased estimate (old behaviour)
    sa = spectra.side(a, i0, i1, valid if gapped else None, remove_mean, trim)
    sb = spectra.side(b, i0, i1, valid if gapped else None, remove_mean)
    band = None if band_hz is None else (band_hz[0] / fs, band_hz[1] / fs)

    # full record: integer peak of |R| within ±max_lag, then the band-limited maximum
    nfft = sfft.next_fast_len(2 * n)
    for s in (sa, sb):
        if s.spec is None:
            s.spec = sfft.fft(s.x, nfft)
    assert sa.spec is not None and sb.spec is not None
    spec = np.conj(sa.spec) * sb.spec
    r = np.abs(sfft.ifft(spec))
    lags_i = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    k0 = int(lags_i[int(np.argmax(r[lags_i % nfft]))])
    freq, keep, tab = spectra.band(nfft, band)
    tau, pk = _peaks_near(
        spec[keep], freq[keep], max(k0 - 1.25, -limit), min(k0 + 1.25, limit), nfft, tables=tab
    )
    lag = float(tau[0])
    energy = math.sqrt(sa.energy * sb.energy)
    quality = float(pk[0]) / energy if energy > 0 else 0.0

    # sub-windows: one 2-D FFT per side, the pairs' window spectra as products
    nfft_w = sfft.next_fast_len(2 * w)
    for s in (sa, sb):
        if s.win_spec is None:
            src = s.x if s.base is None else s.base
            xw = src[: n_windows * w].reshape(n_windows, w)
            if s.base is not None:
                xw = xw.copy()
                xw[:, :trim] = 0.0
                xw[:, w - trim :] = 0.0
            s.win_spec = sfft.fft(xw, nfft_w, axis=1)
    assert sa.win_spec is not None and sb.win_spec is not None
    if gapped:
        counts = valid[: n_windows * w].reshape(n_windows, w).sum(axis=1)
        used = np.flatnonzero(counts >= w // 2)
    else:
        used = np.arange(n_windows)
    if used.size < 4:
        raise ValueError(
            f"only {used.size} of {n_windows} windows are at least half covered by both "
            "recordings, need 4"
        )
    wspec = np.conj(sa.win_spec[used]) * sb.win_spec[used]
    freq_w, keep_w, tab_w = spectra.band(nfft_w, band)
    lags_arr, _ = _peaks_near(
        wspec[:, keep_w], freq_w[keep_w], lag - half_w, lag + half_w, nfft_w, tables=tab_w
    )
    sigma = float(np.std(lags_arr, ddof=1)) / math.sqrt(lags_arr.size)
    sys = 0.0
    d_sub = s_sub = np.empty(0)
    if subband_edges_hz is not None:
        # turn each window by the phase of its correlation at the lag (LO phase: nuisance)
        rw = wspec @ np.exp(2j * np.pi * freq_w * lag)
        turn = np.where(rw != 0, np.conj(rw) / np.where(rw != 0, np.abs(rw), 1.0), 1.0)
        f_hz = freq_w * fs
        lo = min(e[0] for e in subband_edges_hz)
        hi = max(e[1] for e in subband_edges_hz)
        sel = (f_hz >= lo) & (f_hz < hi)
        g_sec = wspec[:, sel] * turn[:, None]
        d_sub, s_sub = subband_delays(f_hz[sel], g_sec, lag / fs, subband_edges_hz)
        # only the sub-bands that hold the signal (module docstring, *Systematic term*)
        coherent = np.abs(g_sec.mean(axis=0))
        share = np.array(
            [coherent[(f_hz[sel] >= a) & (f_hz[sel] < b)].sum() for a, b in subband_edges_hz]
        ) / max(float(coherent.sum()), 1e-300)
        d_use = np.where(share >= MIN_SUBBAND_SHARE, d_sub, np.nan)
        sys = excess_spread(d_use, s_sub)
    return LagMeasurement(
        lag_s=lag / fs,
        sigma_s=sigma / fs,
        quality=float(quality),
        n_windows=int(lags_arr.size),
        window_lags_s=lags_arr / fs,
        sample_rate_hz=fs,
        start_s=float(times[i0]),
        duration_s=float(times[i1 - 1] - times[i0]),
        sigma_sys_s=sys,
        subband_delays_s=d_sub,
        subband_sigmas_s=s_sub,
        valid_fraction=n_valid / n,
    )


def measure_lag(
    x_a: npt.ArrayLike,
    t_a: npt.ArrayLike,
    x_b: npt.ArrayLike,
    t_b: npt.ArrayLike,
    *,
    max_lag_s: float | None = None,
    n_windows: int = 16,
    window_search_samples: float = 3.0,
    remove_mean: bool = True,
    subband_edges_hz: Sequence[tuple[float, float]] | None = None,
    band_hz: tuple[float, float] | None = None,
) -> LagMeasurement:
    """Delay of recording b relative to recording a, with its uncertainty (module docstring).

    Parameters
    ----------
    x_a, x_b : array_like, complex
        Baseband samples.
    t_a, t_b : array_like, float64
        Time of each sample, s, on a common clock (GPS); gaps allowed (module docstring).
    max_lag_s : float, optional
        Search ``|lag| ≤ max_lag_s`` (default a quarter of the common interval). For TDOA the
        receivers' separation / c bounds it.
    n_windows : int
        Sub-windows for the uncertainty (≥ 4).
    window_search_samples : float
        Half-width, in samples, of each sub-window's search around the full-record lag.
    remove_mean : bool
        Subtract each grid signal's mean (a DC or LO-leak line correlates at every lag).
    subband_edges_hz : sequence of (float, float), optional
        Contiguous sub-bands ``[lo, hi)`` (Hz, baseband, e.g.
        :func:`~heimdall.ml.tdoa.dispersion.passband_edges`) for ``sigma_sys_s``; none: 0.
    band_hz : (float, float), optional
        Pass band ``lo ≤ |f| ≤ hi`` (Hz) the recordings were filtered to: the sub-sample
        refinement then sums only those bins (the rest is the filter's stop-band leakage;
        4× fewer terms for 30–1500 Hz at 12 kHz). None: every bin.

    Returns
    -------
    LagMeasurement

    Raises
    ------
    ValueError
        Mismatched shapes, non-finite values, non-increasing times, no overlap, a common
        interval too short for ``n_windows`` windows of 64 samples, or fewer than 4 windows
        at least half covered by both recordings.
    """
    xa, ta = _check(x_a, t_a, "a")
    xb, tb = _check(x_b, t_b, "b")
    if n_windows < 4:
        raise ValueError("n_windows must be at least 4")
    times, fs = common_grid(ta, tb)
    if times.size < 64 * n_windows:
        raise ValueError(f"common interval has {times.size} samples, need {64 * n_windows}")
    ga, va = resample_with_mask(xa, ta, times)
    gb, vb = resample_with_mask(xb, tb, times)
    return measure_lag_on_grid(
        ga,
        va,
        gb,
        vb,
        times,
        fs,
        max_lag_s=max_lag_s,
        n_windows=n_windows,
        window_search_samples=window_search_samples,
        remove_mean=remove_mean,
        subband_edges_hz=subband_edges_hz,
        band_hz=band_hz,
    )


def union_grid(times: Sequence[FloatArray]) -> tuple[FloatArray, float]:
    """Uniform grid over the union of the recordings' spans at the lowest measured mean rate.

    For N receivers of one emission: each is resampled once onto it
    (:func:`resample_with_mask`; outside its own span it is invalid) and every pair is then
    measured on it (:func:`measure_lag_on_grid`) — N resamplings instead of N(N − 1).
    """
    fs = float(min(mean_rate_hz(t) for t in times))
    t0 = min(float(t[0]) for t in times)
    t1 = max(float(t[-1]) for t in times)
    n = math.floor((t1 - t0) * fs) + 1
    return t0 + np.arange(n) / fs, fs


def measure_lag_on_grid(
    ga: ComplexArray,
    va: npt.NDArray[np.bool_],
    gb: ComplexArray,
    vb: npt.NDArray[np.bool_],
    times: FloatArray,
    fs: float,
    *,
    max_lag_s: float | None = None,
    n_windows: int = 16,
    window_search_samples: float = 3.0,
    remove_mean: bool = True,
    subband_edges_hz: Sequence[tuple[float, float]] | None = None,
    band_hz: tuple[float, float] | None = None,
    search_rate_hz: float | None = None,
) -> LagMeasurement:
    """:func:`measure_lag` of two recordings already on one grid (``times``, rate ``fs``).

    ``ga``, ``gb`` are the resampled values and ``va``, ``vb`` their validity
    (:func:`resample_with_mask`); the pair is measured over the span from its first to its
    last grid time valid in both (the common interval of :func:`measure_lag`). With
    ``search_rate_hz`` the lag search has the limits, in time, of a grid at that rate (module
    docstring: a decimated grid searches what the recordings' rate would). Raises ValueError
    as :func:`measure_lag` does.
    """
    res = measure_lags_on_grid(
        [(ga, va), (gb, vb)],
        times,
        fs,
        [(0, 1, max_lag_s)],
        n_windows=n_windows,
        window_search_samples=window_search_samples,
        remove_mean=remove_mean,
        subband_edges_hz=subband_edges_hz,
        band_hz=band_hz,
        search_rate_hz=search_rate_hz,
    )[0]
    if isinstance(res, ValueError):
        raise res
    return res
