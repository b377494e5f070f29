"""Simulated receivers: description and thermal noise.

A receiver is an antenna at a WGS84 position followed by a front end with a noise
figure and an ideal complex (IQ) sampler. Its samples are in units of sqrt(mW) at the
antenna port: mean |x|^2 is power in mW, 10 log10(mean |x|^2) is dBm (the chunk's
``full_scale_dbm`` is 0 for these float samples).

References
----------
.. [1] H. T. Friis, "Noise figures of radio receivers", Proc. IRE 32(7), 1944.
.. [2] IEEE Std 161 / IRE 1959 standard: noise factor defined at T0 = 290 K.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from .clocks import ClockSpec

__all__ = [
    "BOLTZMANN_J_K",
    "T0_K",
    "ReceiverSpec",
    "complex_awgn",
    "quantize",
    "thermal_noise_power_dbm",
]

BOLTZMANN_J_K: float = 1.380649e-23
"""Boltzmann constant k, J/K (exact, SI 2019)."""

T0_K: float = 290.0
"""Standard noise temperature T0, K [2]_."""


def thermal_noise_power_dbm(bandwidth_hz: float, noise_figure_db: float) -> float:
    """Noise power of a receiver referred to its antenna port.

    P = k T0 B F  (W), F = 10^(NF / 10), so in dBm::

        P_dBm = 10 log10(k T0 / 1 mW) + 10 log10(B) + NF = -173.98 + 10 log10(B) + NF

    (the familiar "-174 dBm/Hz + 10 log B + NF"; [1]_, [2]_). For complex sampling at
    rate fs the noise bandwidth is B = fs.

    Parameters
    ----------
    bandwidth_hz : float
        Noise bandwidth B, Hz.
    noise_figure_db : float
        Noise figure NF, dB.

    Returns
    -------
    float
        Noise power, dBm.
    """
    ktb_mw = BOLTZMANN_J_K * T0_K * bandwidth_hz * 1e3
    return 10.0 * math.log10(ktb_mw) + noise_figure_db


def complex_awgn(
    rng: np.random.Generator, shape: tuple[int, ...], power_mw: float
) -> NDArray[np.complex64]:
    """Circular complex white Gaussian noise with E|n|^2 = ``power_mw``.

    n = sqrt(P / 2) (g_I + j g_Q) with g_I, g_Q independent standard normals, drawn in
    float32 (numpy's float32 ziggurat, about twice as fast as float64).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness.
    shape : tuple of int
        Output shape.
    power_mw : float
        Mean power E|n|^2, mW.

    Returns
    -------
    numpy.ndarray
        complex64 array of ``shape``.
    """
    flat = rng.standard_normal((*shape[:-1], 2 * shape[-1]), dtype=np.float32)
    flat *= np.float32(math.sqrt(power_mw / 2.0))
    return flat.view(np.complex64)


class ReceiverSpec(BaseModel):
    """A simulated receiver.

    Attributes
    ----------
    receiver_id : str
        Stable identifier (also the Kafka key of its IQ stream).
    lat_deg, lon_deg, alt_m : float
        WGS84 position of the antenna (alt above the ellipsoid), deg, deg, m.
    noise_figure_db : float
        Front-end noise figure, dB.
    antenna_height_m : float
        Height of the antenna above the local ground, m (two-ray and Hata models).
    antenna_gain_dbi : float
        Antenna gain towards the transmitters (omnidirectional), dBi; scales the signal,
        not the thermal noise (referred to the antenna port).
    gain_db : float
        Front-end gain before the ADC, dB: the ADC's full scale referred to the antenna
        port is ``adc_full_scale_dbm - gain_db``.
    adc_bits : int or None
        ADC resolution N (per I and Q). ``None``: ideal float samples. Otherwise the
        samples are clipped to the full scale and rounded to N bits (:func:`quantize`)
        and the chunk carries that full scale (published as ci16).
    adc_full_scale_dbm : float
        Power of a full-scale complex sine at the ADC input, dBm.
    lo_ppm : float
        Local-oscillator error, ppm: the receiver tunes to f_c (1 + ppm 1e-6), so a
        carrier at f appears at f - f_c (1 + ppm 1e-6) in its baseband.
    sample_clock_ppm : float
        Sample-clock error eps, ppm: samples are taken at t0 + k / (fs (1 + eps))
        (:mod:`.clocks`).
    clock : ClockSpec
        Timestamp source (ideal, gps, ntp, free).
    calibration_offset_db : float
        Error of the receiver's power calibration, dB: everything it reports (signal
        and noise) reads this much high. Not published (estimators are not told).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    receiver_id: str = Field(min_length=1)
    lat_deg: float = Field(ge=-90.0, le=90.0)
    lon_deg: float = Field(ge=-180.0, le=180.0)
    alt_m: float = 0.0
    noise_figure_db: float = Field(default=6.0, ge=0.0)
    antenna_height_m: float = Field(default=10.0, gt=0.0)
    antenna_gain_dbi: float = 0.0
    gain_db: float = 0.0
    adc_bits: int | None = Field(default=None, ge=2, le=16)
    adc_full_scale_dbm: float = -30.0
    lo_ppm: float = Field(default=0.0, ge=-1000.0, le=1000.0)
    sample_clock_ppm: float = Field(default=0.0, ge=-1000.0, le=1000.0)
    clock: ClockSpec = Field(default_factory=ClockSpec)
    calibration_offset_db: float = 0.0

    @property
    def adc_full_scale_at_antenna_dbm(self) -> float:
        """Full scale referred to the antenna port, ``adc_full_scale_dbm - gain_db``."""
        return self.adc_full_scale_dbm - self.gain_db


def quantize(x: NDArray[np.complex64], bits: int) -> NDArray[np.complex64]:
    """Clip and round complex samples (full scale 1 per component) to ``bits`` bits.

    q = clip(round(x 2^(N-1)), -2^(N-1), 2^(N-1) - 1) / 2^(N-1), separately on I and Q
    (a mid-tread uniform quantiser; for a signal well inside the range the error is
    uniform with power Delta^2 / 12 per component, Delta = 2^-(N-1), so a full-scale
    complex sine has SQNR = 6.02 N + 1.76 dB [Bennett 1948]). The result is exactly
    representable in ci16 (x 32768).
    """
    scale = float(1 << (bits - 1))
    flat = x.view(np.float32).astype(np.float32, copy=True)
    flat *= np.float32(scale)
    np.rint(flat, out=flat)
    np.clip(flat, -scale, scale - 1.0, out=flat)
    flat *= np.float32(1.0 / scale)
    return flat.view(np.complex64)
