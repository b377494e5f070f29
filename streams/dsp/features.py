r"""Measurement of one channel in one complex IQ chunk.

Everything here is derived from one Welch power-spectral-density estimate of the chunk.

Amplitude convention
--------------------
A sample ``x`` is scaled so that ``mean(|x|²) · 10^(full_scale_dbm/10)`` is the power in
mW at the antenna port. With ``full_scale_dbm = 0`` a float chunk therefore has power
``10 log10(mean |x|²)`` dBm.

PSD
---
``scipy.signal.welch`` with a periodic Hann window ``w`` of ``L = nperseg`` samples, 50 %
overlap (step ``D = L/2``), no detrending, two-sided, ``scaling='density'``:

.. math:: \hat S(f_k) = \frac{g}{K}\sum_{s=0}^{K-1}
          \frac{\left|\sum_t w_t x_{sD+t} e^{-j2\pi kt/L}\right|^2}{f_s \sum_t w_t^2}
          \quad [\mathrm{mW/Hz}],\qquad g = 10^{\mathrm{full\_scale\_dbm}/10},

with ``K = ⌊(N − L)/D⌋ + 1`` segments. It integrates to the mean power:
``Σ_k Ŝ(f_k) Δf = g · mean_s(Σ_t |w_t x_t|²)/Σ_t w_t²`` with bin width ``Δf = f_s/L``; for
white noise of power P, ``E[Ŝ] = P/f_s``.

Noise floor (robust, derived)
-----------------------------
For circular complex Gaussian noise of density N0 every periodogram bin is N0 times an
Exp(1) variable, i.e. ``N0 · χ²₂/2``. Welch averages K of them, correlated through the
segment overlap; Welch (1967) / Percival & Walden (1993, eq. 292b) give the equivalent
degrees of freedom of the average (Satterthwaite moment matching):

.. math:: \nu = \frac{2K}{1 + 2\sum_{m=1}^{K-1}(1 - m/K)\,\rho(m)^2},\qquad
          \rho(m) = \frac{\sum_t w_t w_{t+mD}}{\sum_t w_t^2},

(for the Hann window at 50 % overlap ``ρ(1) = 1/6``, so ``ν ≈ 2K/1.056``) and
``Ŝ_k ≈ N0 · G`` with ``G = χ²_ν/ν`` (mean 1). The quantile function of G is
``G⁻¹(p) = 2 P⁻¹(ν/2, p)/ν`` (``P⁻¹`` the inverse regularised lower incomplete gamma).

A median of the bins divided by ``G⁻¹(1/2)`` is unbiased for N0 when the bins are noise,
but a signal that occupies more than half the band (narrow-band FM at 12 kHz sampling
does) breaks it. The estimator used is therefore a censored median:

1. start: ``N̂ = Q_{0.1}(Ŝ)/G⁻¹(0.1)`` (the 10 % quantile; robust up to ~80 % occupancy);
2. repeat until it settles (≤ 20 times): keep the bins below the noise-only
   ``1 − α`` quantile ``τ = N̂ G⁻¹(1 − α)`` (α = 1 %), and set
   ``N̂ = median(kept)/G⁻¹((1 − α)/2)`` — if the kept bins are exactly the noise bins
   below their ``1 − α`` quantile their median is the ``(1 − α)/2`` quantile of the noise.

``N0`` is a fixed point of step 2; the map's slope there is
``f(x_{1−α}) x_{1−α} / (2 f(x_m) x_m)`` (f the density of G), about 0.03 for ν = 32, so it
converges in 2–3 iterations and forgets the start. With noise only its spread is that
of a median of the ~256 bins: ``≈ 1.25·sqrt(2/ν)/sqrt(L)`` relative, 0.09 dB for ν = 32,
L = 256 (a little more because Hann makes neighbouring bins correlated). Signal bins
well above τ do not bias it; signal skirts between N0 and τ bias it slightly upward.

Channel quantities
------------------
The channel is the set C of bins with ``|f_k − f_c| ≤ B/2`` (``f_c`` = channel offset,
``B`` = channel bandwidth); ``B_eff = |C| Δf`` is the bandwidth actually integrated.

- signal power ``P_s = max(Σ_C (Ŝ_k − N̂) Δf, 10⁻⁶ N̂ B_eff)`` (the clamp is a −60 dB
  SNR floor), reported in dBm;
- ``SNR = P_s / (N̂ B_eff)``;
- occupied bandwidth: the 99 % power bandwidth (ITU-R SM.328 / SM.443: 0.5 % of the
  noise-subtracted channel power left out on each side), from the cumulative sum of
  ``Ŝ_k − N̂`` over C, each bin's power spread uniformly over its width (linear
  interpolation); resolution is limited by the Hann main lobe, so a pure tone measures
  about 1.5–2 bins;
- frequency offset: the power-weighted centroid ``Σ f_k d_k / Σ d_k − f_c`` with
  ``d_k = max(Ŝ_k − N̂, 0)`` over the bins inside the 99 % band (restricting to that
  band keeps the noise-only bins of a wide channel from adding variance). The Hann power
  response is symmetric about the tone, so the centroid interpolates between bins;
- ``detected = snr_db ≥ detect_threshold_db``.

With no positive noise-subtracted power (Σ ≤ 0) the occupied bandwidth and offset are 0.

References
----------
- P. D. Welch, "The use of fast Fourier transform for the estimation of power spectra",
  IEEE Trans. Audio Electroacoust. 15(2), 70–73, 1967.
- D. B. Percival, A. T. Walden, *Spectral Analysis for Physical Applications*,
  Cambridge Univ. Press, 1993, §6.17 (equivalent degrees of freedom of WOSA).
- F. J. Harris, "On the use of windows for harmonic analysis with the DFT",
  Proc. IEEE 66(1), 51–83, 1978.
- ITU-R SM.328-11 (2006), §2.2 "occupied bandwidth"; ITU-R SM.443-4 (2007).
- J. R. Carson, "Notes on the theory of modulation", Proc. IRE 10(1), 57–64, 1922.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import signal as sps
from scipy import special

from heimdall.core.dsp import occupied_band, welch_dof
from heimdall.core.errors import InvalidEventError

__all__ = [
    "ChannelMeasurement",
    "measure_channel",
    "noise_floor_psd",
    "welch_dof",
]

#: Fraction of the noise-only bin distribution kept by the censored median (1 − α).
_KEEP = 0.99
#: Quantile used for the starting value of the noise-floor iteration.
_START_Q = 0.10
#: Smallest PSD value carried (mW/Hz) so that an all-zero chunk gives finite dB numbers.
_PSD_FLOOR = 1e-30
#: Signal power clamp as a fraction of the in-channel noise power (−60 dB SNR floor).
_SNR_FLOOR = 1e-6


@dataclass(frozen=True, slots=True)
class ChannelMeasurement:
    """One channel measured in one IQ chunk.

    Attributes
    ----------
    power_dbm : float
        Noise-subtracted power in the channel, dBm.
    noise_floor_dbm_hz : float
        Noise power spectral density, dBm/Hz.
    snr_db : float
        ``power / (noise density × integrated channel bandwidth)``, dB.
    freq_offset_hz : float
        Power centroid of the signal relative to the channel centre, Hz.
    occupied_bw_hz : float
        99 % power bandwidth, Hz.
    detected : bool
        ``snr_db >= detect_threshold_db``.
    psd_dbm_hz : numpy.ndarray
        float32 Welch PSD, dBm/Hz, bins from −fs/2 to +fs/2 (fftshifted).
    psd_bin_hz : float
        Bin spacing of ``psd_dbm_hz`` (``fs / nperseg``), Hz.
    """

    power_dbm: float
    noise_floor_dbm_hz: float
    snr_db: float
    freq_offset_hz: float
    occupied_bw_hz: float
    detected: bool
    psd_dbm_hz: npt.NDArray[np.float32]
    psd_bin_hz: float


@lru_cache(maxsize=64)
@lru_cache(maxsize=256)
def _g_quantile(nu: float, p: float) -> float:
    """Quantile of G = χ²_ν/ν: ``2 P⁻¹(ν/2, p)/ν``."""
    return float(2.0 * special.gammaincinv(nu / 2.0, p) / nu)


def noise_floor_psd(psd: npt.NDArray[np.float64], dof: float, max_iter: int = 20) -> float:
    """Robust noise density from PSD bins (censored median, see module docstring).

    Parameters
    ----------
    psd : numpy.ndarray
        PSD bins (any units of density); noise bins are assumed ``N0 · χ²_ν/ν``.
    dof : float
        ν, the equivalent degrees of freedom of each bin (:func:`welch_dof`).
    max_iter : int
        Maximum number of censoring iterations.

    Returns
    -------
    float
        The estimate of N0, in the units of ``psd``.
    """
    p = np.sort(np.asarray(psd, dtype=float).ravel())
    if p.size == 0:
        raise ValueError("empty PSD")
    q_start = _g_quantile(dof, _START_Q)
    q_keep = _g_quantile(dof, _KEEP)
    q_med = _g_quantile(dof, _KEEP / 2.0)
    n0 = float(np.quantile(p, _START_Q)) / q_start
    if n0 <= 0.0:
        return 0.0
    for _ in range(max_iter):
        n_kept = int(np.searchsorted(p, n0 * q_keep, side="left"))
        if n_kept == 0:
            break
        new = float(np.median(p[:n_kept])) / q_med
        if abs(new - n0) <= 1e-6 * n0:
            n0 = new
            break
        n0 = new
    return n0


def check_samples_rate_bw(
    x: npt.NDArray[np.generic], sample_rate_hz: float, channel_bw_hz: float | None
) -> tuple[float, float]:
    """``(f_s, B)`` after checking the samples are finite and the rate and width positive."""
    if not np.all(np.isfinite(x)):
        raise InvalidEventError("iq: samples contain NaN or infinity")
    fs = float(sample_rate_hz)
    if not (fs > 0.0 and math.isfinite(fs)):
        raise InvalidEventError(f"sample_rate_hz: must be positive, got {sample_rate_hz}")
    bw = 0.8 * fs if channel_bw_hz is None else float(channel_bw_hz)
    if not (bw > 0.0 and math.isfinite(bw)):
        raise InvalidEventError(f"channel_bw_hz: must be positive, got {channel_bw_hz}")
    return fs, bw


def _to_db(x: float) -> float:
    return 10.0 * math.log10(max(x, _PSD_FLOOR))


def measure_channel(
    iq: npt.ArrayLike,
    sample_rate_hz: float,
    full_scale_dbm: float,
    channel_offset_hz: float = 0.0,
    channel_bw_hz: float | None = None,
    nperseg: int = 256,
    detect_threshold_db: float = 6.0,
) -> ChannelMeasurement:
    """Measure power, noise floor, SNR, offset and occupied bandwidth of one channel.

    Parameters
    ----------
    iq : array_like of complex
        One chunk of baseband samples (1-D); real input is accepted and treated as
        complex with zero imaginary part.
    sample_rate_hz : float
        Complex sample rate ``f_s``.
    full_scale_dbm : float
        Power in dBm of a signal with ``mean |x|² = 1`` (amplitude convention above).
    channel_offset_hz : float
        Centre of the channel relative to the chunk's centre frequency.
    channel_bw_hz : float, optional
        Width B of the channel; default ``0.8 f_s``.
    nperseg : int
        Welch segment length L (bin width ``f_s/L``); reduced to the chunk length if the
        chunk is shorter.
    detect_threshold_db : float
        SNR threshold for ``detected``.

    Returns
    -------
    ChannelMeasurement

    Raises
    ------
    InvalidEventError
        Samples are not 1-D, too few (< 16), or not finite; the rate or bandwidth is not
        positive; or the channel lies outside ``±f_s/2``.

    Notes
    -----
    The formulas, the noise-floor estimator and their references are in the module
    docstring.
    """
    x = np.asarray(iq)
    if x.ndim != 1:
        raise InvalidEventError(f"iq: expected a 1-D array, got shape {x.shape}")
    if x.size < 16:
        raise InvalidEventError(f"iq: {x.size} samples is too few to measure (need >= 16)")
    # double precision: scipy's Welch keeps complex64 in single precision, ~1e-7 per bin,
    # which the noise subtraction of a weak channel turns into ~1e-4 dB
    x = x.astype(np.complex128) if np.iscomplexobj(x) else x.astype(np.float64)
    fs, bw = check_samples_rate_bw(x, sample_rate_hz, channel_bw_hz)

    seg = int(min(nperseg, x.size))
    noverlap = seg // 2
    freqs, pxx = sps.welch(
        x,
        fs=fs,
        window="hann",
        nperseg=seg,
        noverlap=noverlap,
        detrend=False,
        return_onesided=False,
        scaling="density",
    )
    gain = 10.0 ** (float(full_scale_dbm) / 10.0)
    psd = np.fft.fftshift(np.asarray(pxx, dtype=float)) * gain  # mW/Hz, low -> high
    f = np.fft.fftshift(np.asarray(freqs, dtype=float))
    df = fs / seg

    n_seg = (x.size - seg) // (seg - noverlap) + 1
    nu = welch_dof(seg, n_seg)
    n0 = max(noise_floor_psd(psd, nu), _PSD_FLOOR)

    in_ch = np.abs(f - channel_offset_hz) <= bw / 2.0 + 1e-9 * fs
    if not np.any(in_ch):
        raise InvalidEventError(
            f"channel: {channel_offset_hz} Hz ± {bw / 2} Hz lies outside ±{fs / 2} Hz"
        )
    f_ch = f[in_ch]
    d = psd[in_ch] - n0
    b_eff = f_ch.size * df
    noise_in_ch = n0 * b_eff
    p_sig = max(float(d.sum()) * df, _SNR_FLOOR * noise_in_ch)
    snr_db = 10.0 * math.log10(p_sig / noise_in_ch)

    obw, centre_hz = occupied_band(d, f_ch, df)
    freq_offset = centre_hz - channel_offset_hz if math.isfinite(centre_hz) else 0.0

    psd_db = (10.0 * np.log10(np.maximum(psd, _PSD_FLOOR))).astype(np.float32)
    return ChannelMeasurement(
        power_dbm=_to_db(p_sig),
        noise_floor_dbm_hz=_to_db(n0),
        snr_db=snr_db,
        freq_offset_hz=freq_offset,
        occupied_bw_hz=obw,
        detected=bool(snr_db >= detect_threshold_db),
        psd_dbm_hz=psd_db,
        psd_bin_hz=df,
    )
