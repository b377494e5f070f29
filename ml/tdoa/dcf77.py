r"""Arrival times and TDOA from the DCF77 pseudo-random phase modulation (matched filter).

What DCF77 transmits
--------------------
Besides the AM second marks (carrier reduced to ~15 % for the first 100 or 200 ms of every
second), the DCF77 carrier (77.5 kHz, Mainflingen) is phase-modulated by ±15.6° with a
512-chip pseudo-random sequence; each chip lasts 120 carrier cycles (1.548 ms, chip rate
645.16 Hz), the sequence starts 200 ms after the start of the second (carrier cycle 15 500)
and ends at cycle 76 940 (992.8 ms); it is sent every second, inverted when the second's
time-code bit is 1. The sequence is a 511-chip maximal-length sequence of the 9-bit LFSR
``s[n+9] = s[n] ⊕ s[n+4]`` (characteristic polynomial ``x⁹ + x⁴ + 1``) started from the
state ``000010001`` and preceded by one extra 0 chip, so 0s and 1s are balanced and the mean
phase is unchanged (PTB; the published first 35 chips ``00000100011000010011100101010110000``
fix both the recurrence and the place of the extra chip, which the recordings confirm: the
matched filter's peak is one chip off with the extra chip at the end).

With ``m = 15.6°`` and ``p(t) = ±1`` the chip waveform, the transmitted baseband is
``A (cos m + i sin m · p(t))``: after removing each receiver's carrier phase (a 1 Hz low-pass
of the IQ) the modulation is ``i A sin m · p(t − τ)`` in quadrature. AGC and the slow AM
keying act on the amplitude, not on this phase term, and the PN sequence is only sent while
the carrier is at full power (200–993 ms), so the matched filter is free of the AM edges.

Method
------
1. Each recording is resampled (time-base interpolation, :func:`~.xcorr.resample_with_mask`)
   onto a grid of exactly ``grid_rate_hz`` (default 12 000 Hz) aligned with the integer GPS
   second, so each second's PN segment starts on the same grid offset.
2. For every whole second ``S`` the segment ``[S + 0.2 − pre, S + 0.2 + 0.7928 + post]`` is
   Fourier transformed and multiplied by the conjugate of the *exact* (continuous-time,
   band-limited) spectrum of the rectangular-chip replica,

   .. math:: P(f) = T_c\,\mathrm{sinc}(f T_c)\,e^{-iπ f T_c} \sum_{n=0}^{511} c_n
             e^{-i2π f (t_0 + n T_c)},

   giving the per-second matched-filter spectrum ``Y_S(f) = Z_S(f) P^*(f)``: its inverse
   transform is the channel impulse response (transmitter antenna, propagation, receiver)
   convolved with the PN autocorrelation.
3. Absolute time of arrival (per receiver): the peak of ``|Σ_S b_S r_S(τ)|`` with the
   time-code bit ``b_S = ±1`` of each second found from the sign of its correlation; the
   offset is relative to the nominal PN start (GPS second + 0.2 s), i.e. it contains the
   propagation delay plus the transmitter's and the receiver's group delays.
4. Pair lag (``pair_mode="cross"``, default): the generalised cross-correlation of the two
   receivers' matched-filter outputs, ``G(f) = Σ_S Y_{b,S}(f) Y_{a,S}^*(f)`` — the bits
   cancel (``b_S² = 1``), the transmitter's response cancels in phase, and the cross-spectrum
   is weighted by ``|P(f)|⁴`` (twice the replica weighting) — maximised over τ with the
   band-limited refinement of :mod:`.xcorr`. With
   ``pair_mode="toa"`` the lag is the difference of the two absolute arrival times.
5. Uncertainty: ``σ_stat`` is the standard error of the per-second lags (as in
   :mod:`.xcorr`). ``σ_sys`` is the dispersion of the *local group delay* of the pair across
   ``n_subbands`` contiguous sub-bands of the pass band (weighted phase-slope fits of
   ``G(f)`` after removing the full-band lag): if the two channels differ only by a delay the
   sub-band group delays agree within noise; receiver filters with different amplitude tilt,
   or a sky wave arriving ~40–110 µs after the ground wave, make them disagree (the group
   delay of ``1 + κ e^{-i2πfΔ}`` swings between ``κΔ/(1+κ)`` and ``−κΔ/(1−κ)`` over
   ``1/Δ ≈ 10 kHz``), and the full-band lag is biased by up to about that spread. ``σ_sys`` is
   the weighted standard deviation of the sub-band group delays in excess of what their
   statistical errors explain (zero when they agree); it uses no knowledge of the
   transmitter's position. The code is shared with :mod:`.xcorr`; :mod:`.dispersion` says
   what this term can and cannot bound. ``sigma_s`` reported is ``sqrt(σ_stat² + σ_sys²)``.

Why a two-path (ground + sky wave) fit is not offered: on the 2017 DCF77 recordings a joint
fit of per-receiver echoes with a free common transmitter response is not identifiable with
~5.4 kHz of bandwidth — adding echoes keeps lowering χ² while the fitted lags move by up to
±90 µs (see the issue report).

References
----------
- PTB, "DCF77 phase modulation",
  https://www.ptb.de/cms/en/ptb/fachabteilungen/abt4/fb-44/ag-442/dissemination-of-legal-time/dcf77/dcf77-phase-modulation.html
- P. Hetzel, "Time dissemination via the LF transmitter DCF77 using a pseudo-random phase-shift
  keying of the carrier", Proc. 2nd European Frequency and Time Forum, 1988, 351–364.
- C. H. Knapp, G. C. Carter, "The generalized correlation method for estimation of time
  delay", IEEE Trans. ASSP 24(4), 1976 (ML weighting of the cross-spectrum).
- ITU-R P.684 (LF sky wave: delays and reflection at the D layer), ITU-R P.368 (ground wave).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft
from scipy import signal
from scipy.optimize import minimize_scalar

from heimdall.ml.tdoa.dispersion import excess_spread, subband_delays, symmetric_edges
from heimdall.ml.tdoa.xcorr import resample_with_mask

__all__ = [
    "CARRIER_HZ",
    "CHIP_S",
    "N_CHIPS",
    "PHASE_DEVIATION_RAD",
    "PN_START_S",
    "PairMode",
    "PnChannel",
    "PnLag",
    "dcf77_chips",
    "pn_channel",
    "pn_lag",
    "replica_spectrum",
]

FloatArray = npt.NDArray[np.float64]
ComplexArray = npt.NDArray[np.complex128]
PairMode = Literal["cross", "toa"]

#: DCF77 carrier, Hz.
CARRIER_HZ = 77_500.0
#: One chip: 120 carrier cycles, s.
CHIP_S = 120.0 / CARRIER_HZ
#: Chips per second.
N_CHIPS = 512
#: Start of the sequence after the start of the second (carrier cycle 15 500), s.
PN_START_S = 15_500.0 / CARRIER_HZ
#: Phase deviation ±15.6°.
PHASE_DEVIATION_RAD = math.radians(15.6)


def dcf77_chips() -> FloatArray:
    """The 512 chips of one second as ±1 (chip value 0 → +1, 1 → −1), time-code bit 0.

    One 0 chip followed by the 511-chip m-sequence of ``s[n+9] = s[n] ⊕ s[n+4]`` from the
    state ``000010001`` (module docstring). Its first 35 chips are PTB's published
    ``00000100011000010011100101010110000``; it has 256 zeros and 256 ones.
    """
    s = [0, 0, 0, 0, 1, 0, 0, 0, 1]
    while len(s) < N_CHIPS - 1:
        n = len(s) - 9
        s.append(s[n] ^ s[n + 4])
    bits = np.array([0, *s], dtype=np.float64)
    return 1.0 - 2.0 * bits


def replica_spectrum(freqs_hz: npt.ArrayLike, start_s: float, chunk: int = 2048) -> ComplexArray:
    """Fourier transform of the rectangular-chip replica starting at ``start_s``.

    ``P(f) = ∫ p(t) e^{−i2πft} dt`` with ``p`` the ±1 chip sequence of :func:`dcf77_chips`
    (exact, no sampling), evaluated at ``freqs_hz``.
    """
    f = np.asarray(freqs_hz, dtype=np.float64).reshape(-1)
    chips = dcf77_chips()
    t_n = start_s + np.arange(N_CHIPS) * CHIP_S
    out = np.empty(f.size, dtype=np.complex128)
    for s in range(0, f.size, chunk):
        ff = f[s : s + chunk]
        out[s : s + chunk] = np.exp(-2j * np.pi * np.outer(ff, t_n)) @ chips
    return out * CHIP_S * np.sinc(f * CHIP_S) * np.exp(-1j * np.pi * f * CHIP_S)


@dataclass(frozen=True, slots=True, eq=False)
class PnChannel:
    """Per-second matched-filter spectra of one recording (:func:`pn_channel`).

    Attributes
    ----------
    seconds : numpy.ndarray of int64
        GPS seconds ``S`` whose PN segment lies inside the recording, with no gap in it.
    freqs_hz : numpy.ndarray
        FFT bin frequencies (``fftfreq`` order), Hz.
    spectra : numpy.ndarray, complex, (n_seconds, n_freqs)
        ``Y_S(f) = Z_S(f) P^*(f)``; ``τ`` = 0 is the nominal PN start ``S + 0.2 s``.
    grid_rate_hz : float
        Rate of the resampling grid, Hz.
    bits : numpy.ndarray of int8
        Decoded time-code bit of each second (0/1, from the sign of the correlation; the
        absolute sign convention of the chips is PTB's).
    toa_s : float
        Arrival time of the PN sequence after its nominal start, s (module docstring, 3).
    toa_sigma_s : float
        Standard error of ``toa_s`` from the per-second arrival times, s.
    peak_snr : float
        ``|Σ_S b_S r_S(τ̂)|`` over the RMS of the combined correlation 10–40 chips away from
        the peak; capped near 75–80 by the sequence's own aperiodic side lobes, so it flags
        a failed detection (≲ 10) rather than measuring the SNR.
    band_hz : float
        Half-width of the band kept in ``spectra`` for ``toa_s``, Hz.
    """

    seconds: npt.NDArray[np.int64]
    freqs_hz: FloatArray
    spectra: ComplexArray
    grid_rate_hz: float
    bits: npt.NDArray[np.int8]
    toa_s: float
    toa_sigma_s: float
    peak_snr: float
    band_hz: float


def _corr(freqs: FloatArray, spec: ComplexArray, tau: float) -> complex:
    return complex(np.sum(spec * np.exp(2j * np.pi * freqs * tau)))


def _refine_peak(freqs: FloatArray, spec: ComplexArray, lo: float, hi: float, step: float) -> float:
    """Maximise ``|Σ_f spec e^{i2πfτ}|`` over ``[lo, hi]``: grid of ``step``, then Brent."""
    grid = np.arange(lo, hi + 0.5 * step, step)
    vals = np.abs(np.exp(2j * np.pi * np.outer(grid, freqs)) @ spec)
    c = float(grid[int(np.argmax(vals))])
    res = minimize_scalar(
        lambda v: -abs(_corr(freqs, spec, float(v))),
        bounds=(c - step, c + step),
        method="bounded",
        options={"xatol": 1e-10},
    )
    return float(res.x)


def pn_channel(
    x: npt.ArrayLike,
    t: npt.ArrayLike,
    *,
    grid_rate_hz: float = 12_000.0,
    band_hz: float = 2_700.0,
    carrier_lowpass_hz: float = 1.0,
    pre_s: float = 0.03,
    post_s: float = 0.03,
    max_toa_s: float = 0.025,
    quadrature_only: bool = False,
    gate_s: float = 0.002,
) -> PnChannel:
    """Matched-filter the DCF77 PN phase modulation in one recording.

    Parameters
    ----------
    x : array_like, complex
        Baseband IQ centred on 77.5 kHz (a small carrier offset, < 0.1 Hz, is tracked).
    t : array_like, float64
        GPS time of each sample, s (time of week or any GPS-aligned origin: the integer
        seconds must be GPS/UTC seconds).
    grid_rate_hz : float
        Integer rate of the resampling grid (each second is a whole number of samples).
    band_hz : float
        Frequencies ``|f| ≤ band_hz`` are kept (the KiwiSDR IQ pass band of the example ends
        near 3 kHz).
    carrier_lowpass_hz : float
        Cut-off of the low-pass that estimates each receiver's carrier phase.
    pre_s, post_s : float
        Margins of each second's segment before the nominal PN start and after its end, for
        the first (coarse) pass.
    gate_s : float
        Margin either side of the PN sequence, as received, of the second pass's segments.
    quadrature_only : bool
        Keep only the quadrature component after carrier-phase removal (drops the AM, and
        anything in phase with the carrier; makes the spectrum Hermitian).
    max_toa_s : float
        Search range ``0 ≤ τ ≤ max_toa_s`` of the absolute arrival time (propagation up to
        ~7000 km plus filter delays).

    Returns
    -------
    PnChannel

    Raises
    ------
    ValueError
        Fewer than two whole seconds of PN in the recording, or mismatched inputs.
    """
    xa = np.asarray(x).astype(np.complex128, copy=False).reshape(-1)
    ta = np.asarray(t, dtype=np.float64).reshape(-1)
    if xa.shape != ta.shape or xa.size < 16:
        raise ValueError(f"samples {xa.shape} and times {ta.shape} must match")
    fs = float(grid_rate_hz)
    if fs != round(fs):
        raise ValueError("grid_rate_hz must be a whole number of samples per second")
    k0 = math.ceil(ta[0] * fs)
    k1 = math.floor(ta[-1] * fs)
    base = math.floor(ta[0])
    # grid times as (integer second origin) + offset, to keep float64 precision
    kk = np.arange(k0, k1 + 1, dtype=np.float64)
    grid = kk / fs
    z, valid = resample_with_mask(xa, ta, grid)
    sos = signal.butter(2, carrier_lowpass_hz, fs=fs, output="sos")
    c = signal.sosfiltfilt(sos, z)
    z = z * np.exp(-1j * np.angle(c))
    if quadrature_only:
        z = 1j * z.imag

    def segments(
        shift_s: float, pre: float, post: float
    ) -> tuple[list[int], list[ComplexArray], FloatArray, int]:
        # segment of second s: [s + 0.2 + shift − pre, s + 0.2 + 0.7928 + shift + post]
        n = round((pre + N_CHIPS * CHIP_S + post) * fs)
        nfft = sfft.next_fast_len(n + round(N_CHIPS * CHIP_S * fs) + 1)
        freqs = sfft.fftfreq(nfft, 1.0 / fs)
        p = replica_spectrum(freqs, pre - shift_s)  # τ = 0 at the nominal PN start
        keep = np.abs(freqs) <= band_hz
        secs: list[int] = []
        specs: list[ComplexArray] = []
        for s in range(base, math.floor(ta[-1]) + 1):
            i0 = round((s + PN_START_S + shift_s - pre) * fs) - k0
            if i0 < 0 or i0 + n > z.size or not valid[i0 : i0 + n].all():
                continue  # outside the recording, or across a gap (missing samples)
            seg = z[i0 : i0 + n]
            y = sfft.fft(seg - seg.mean(), nfft) * np.conj(p)
            specs.append(np.where(keep, y, 0.0))
            secs.append(s)
        return secs, specs, freqs, nfft

    # pass 1: fixed windows, coarse arrival (whole samples)
    seconds, spectra, freqs, nfft = segments(0.0, pre_s, post_s)
    if len(seconds) < 2:
        raise ValueError(f"only {len(seconds)} whole seconds of PN modulation in the recording")
    r1 = np.abs(sfft.ifft(np.array(spectra), axis=1)) ** 2
    lag_max = min(round(max_toa_s * fs), nfft // 2)
    shift = int(np.argmax(r1[:, : lag_max + 1].sum(axis=0))) / fs
    # pass 2: windows aligned on this receiver's own arrival, so that every receiver's window
    # holds the same part of the signal (the AM edges next to the PN start and end fall at the
    # same place in each), with a margin of ``gate_s`` either side
    seconds, spectra, freqs, nfft = segments(shift, gate_s, gate_s)
    if len(seconds) < 2:
        raise ValueError(f"only {len(seconds)} whole seconds of PN modulation in the recording")
    keep = np.abs(freqs) <= band_hz
    ys = np.array(spectra)
    fk = freqs[keep]
    yk = ys[:, keep]
    # absolute arrival: non-coherent peak over seconds, then the bits, then coherent refine
    tau0 = shift
    rs = np.array([_corr(fk, yk[j], tau0) for j in range(len(seconds))])
    ref = rs[int(np.argmax(np.abs(rs)))]
    sgn = np.where((rs * np.conj(ref)).real >= 0, 1.0, -1.0)
    if np.sign((ref * np.conj(1j)).real) < 0:  # modulation is +i·sin m·p for bit 0
        sgn = -sgn
    comb = (sgn[:, None] * yk).sum(axis=0)
    toa = _refine_peak(fk, comb, tau0 - 2.0 / fs, tau0 + 2.0 / fs, 0.1 / fs)
    per = np.array(
        [_refine_peak(fk, yk[j], toa - 1.0 / fs, toa + 1.0 / fs, 0.1 / fs) for j in range(len(rs))]
    )
    toa_sigma = float(np.std(per, ddof=1)) / math.sqrt(per.size)
    far = np.arange(10, 40) * CHIP_S
    side = np.array([abs(_corr(fk, comb, toa + d)) for d in np.r_[far, -far]])
    peak_snr = abs(_corr(fk, comb, toa)) / max(float(np.sqrt(np.mean(side**2))), 1e-300)
    return PnChannel(
        seconds=np.asarray(seconds, dtype=np.int64),
        freqs_hz=fk,
        spectra=yk,
        grid_rate_hz=fs,
        bits=(sgn < 0).astype(np.int8),
        toa_s=toa,
        toa_sigma_s=toa_sigma,
        peak_snr=float(peak_snr),
        band_hz=float(band_hz),
    )


@dataclass(frozen=True, slots=True, eq=False)
class PnLag:
    """Result of :func:`pn_lag` (``lag_s = τ_b − τ_a``).

    Attributes
    ----------
    lag_s : float
        The lag, s.
    sigma_s : float
        ``sqrt(sigma_stat_s² + sigma_sys_s²)``, s.
    sigma_stat_s : float
        Standard error from the per-second lags, s.
    sigma_sys_s : float
        Excess spread of the sub-band group delays (module docstring), s.
    subband_delays_s, subband_sigmas_s : numpy.ndarray
        Local group delay of each sub-band and its statistical error, s.
    quality : float
        ``|G(τ̂)| / sqrt(Σ|Y_a|² Σ|Y_b|²)``: the normalised correlation of the matched-filter
        outputs, 0…1.
    n_seconds : int
        Seconds used.
    """

    lag_s: float
    sigma_s: float
    sigma_stat_s: float
    sigma_sys_s: float
    subband_delays_s: FloatArray
    subband_sigmas_s: FloatArray
    quality: float
    n_seconds: int


def pn_lag(
    a: PnChannel,
    b: PnChannel,
    *,
    max_lag_s: float,
    pair_mode: PairMode = "cross",
    n_subbands: int = 4,
) -> PnLag:
    """Lag ``τ_b − τ_a`` between two receivers' DCF77 matched-filter outputs.

    Parameters
    ----------
    a, b : PnChannel
        From :func:`pn_channel` with the same ``grid_rate_hz`` and ``band_hz``.
    max_lag_s : float
        Search ``|lag| ≤ max_lag_s`` (baseline / c plus a margin).
    pair_mode : {"cross", "toa"}
        ``cross``: peak of the cross-correlation of the matched-filter outputs; ``toa``:
        difference of the absolute arrival times (module docstring, 4).
    n_subbands : int
        Contiguous sub-bands for ``sigma_sys_s`` (≥ 2; 0 disables it).

    Returns
    -------
    PnLag

    Raises
    ------
    ValueError
        No common seconds, or different grids.
    """
    if a.grid_rate_hz != b.grid_rate_hz or a.freqs_hz.shape != b.freqs_hz.shape:
        raise ValueError("the two channels were computed on different grids")
    common, ia, ib = np.intersect1d(a.seconds, b.seconds, return_indices=True)
    if common.size < 2:
        raise ValueError(f"{common.size} common seconds of PN modulation, need ≥ 2")
    f = a.freqs_hz
    g_sec = b.spectra[ib] * np.conj(a.spectra[ia])
    g = g_sec.sum(axis=0)
    fs = a.grid_rate_hz
    step = 0.25 / fs
    if pair_mode == "toa":
        lag = b.toa_s - a.toa_s
        stat = math.hypot(a.toa_sigma_s, b.toa_sigma_s)
    elif pair_mode == "cross":
        # coarse search on a 1/(8 fs) grid over the whole range, then refine
        nco = max(2, math.ceil(2 * max_lag_s * fs * 8))
        coarse = np.linspace(-max_lag_s, max_lag_s, nco)
        vals = np.abs(np.exp(2j * np.pi * np.outer(coarse, f)) @ g)
        c0 = float(coarse[int(np.argmax(vals))])
        lag = _refine_peak(f, g, c0 - 2 * step, c0 + 2 * step, step)
        per = np.array(
            [
                _refine_peak(f, g_sec[j], lag - 4 * step, lag + 4 * step, step)
                for j in range(common.size)
            ]
        )
        stat = float(np.std(per, ddof=1)) / math.sqrt(per.size)
    else:
        raise ValueError(f"unknown pair_mode {pair_mode!r}")
    energy = math.sqrt(
        float(np.sum(np.abs(a.spectra[ia]) ** 2)) * float(np.sum(np.abs(b.spectra[ib]) ** 2))
    )
    quality = abs(_corr(f, g, lag)) / energy if energy > 0 else 0.0
    if n_subbands >= 2:
        dl, ds = subband_delays(f, g_sec, lag, symmetric_edges(a.band_hz, n_subbands))
        sys = excess_spread(dl, ds)
    else:
        dl, ds, sys = np.empty(0), np.empty(0), 0.0
    return PnLag(
        lag_s=float(lag),
        sigma_s=math.hypot(stat, sys),
        sigma_stat_s=stat,
        sigma_sys_s=sys,
        subband_delays_s=dl,
        subband_sigmas_s=ds,
        quality=float(quality),
        n_seconds=int(common.size),
    )
