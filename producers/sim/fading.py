"""Small-scale fading: Rician (K factor) and Rayleigh (K = 0) with a Clarke/Jakes
Doppler spectrum, by a sum of sinusoids.

Model
-----
The complex gain of one link, relative to the large-scale mean, is::

    h(t) = sqrt(K / (K + 1))  +  sqrt(1 / (K + 1)) h_d(t),     E|h|^2 = 1
    h_d(t) = (1 / sqrt(M)) sum_m exp(j (2 pi f_D cos(alpha_m) t + phi_m))

with alpha_m (angles of arrival) and phi_m (phases) independent and uniform on
[0, 2 pi) per link (the random-angle sum-of-sinusoids simulator of Clarke's model;
Zheng & Xiao [3]_, Patzold [4]_). As M grows h_d tends to a circular complex Gaussian
of unit power whose autocorrelation is Clarke's [1]_ [2]_::

    E[h_d(t) h_d*(t + tau)] = J0(2 pi f_D tau)

(the U-shaped Jakes Doppler spectrum limited to |f| <= f_D), so |h| is Rice-distributed
with shape nu / s = sqrt(2 K) and scale s = sqrt(1 / (2 (K + 1))) (``scipy.stats.rice``),
Rayleigh for K = 0, and the coherence time is about T_c = 0.423 / f_D (Rappaport
eq. 5.40.c). The maximum Doppler is f_D = v / lambda + f_scatter: the transmitter's
speed v and an optional motion of the scatterers.

The LOS term carries no phase of its own: the simulator applies the geometric carrier
phase and the Doppler shift of the direct path, and h multiplies that (the diffuse
spectrum is therefore centred on the LOS-shifted carrier, a standard simplification).
A static link (f_D = 0) keeps one Rician draw forever.

Per sample, cheaply: h varies at most at f_D << fs, so it is evaluated at a coarse grid
of ``points_per_cycle`` points per 1 / f_D and interpolated linearly to the samples.

References
----------
.. [1] R. H. Clarke, "A statistical theory of mobile-radio reception", Bell Syst. Tech.
   J. 47(6), 957-1000, 1968.
.. [2] W. C. Jakes, *Microwave Mobile Communications*, Wiley, 1974, ch. 1.
.. [3] Y. R. Zheng, C. Xiao, "Simulation models with correct statistical properties for
   Rayleigh fading channels", IEEE Trans. Commun. 51(6), 920-928, 2003.
.. [4] M. Patzold, *Mobile Fading Channels*, Wiley, 2002, ch. 4.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field

from .waveforms import cycles_at

__all__ = ["FadingSpec", "SumOfSinusoidsFading", "rice_parameters"]


class FadingSpec(BaseModel):
    """Rician / Rayleigh small-scale fading.

    Attributes
    ----------
    k_factor : float
        Rician K (linear power ratio LOS / diffuse); 0 = Rayleigh.
    scatter_doppler_hz : float
        Doppler spread from moving scatterers, added to v / lambda, Hz. With 0 and a
        static transmitter the link keeps one fading draw.
    n_sinusoids : int
        M, sinusoids per link.
    per_sample : bool
        Vary h within a chunk (``True``) or hold h at its value at the chunk start.
    points_per_cycle : int
        Coarse evaluation points per 1 / f_D for the per-sample interpolation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    k_factor: float = Field(default=0.0, ge=0.0)
    scatter_doppler_hz: float = Field(default=0.0, ge=0.0)
    n_sinusoids: int = Field(default=32, ge=4, le=4096)
    per_sample: bool = True
    points_per_cycle: int = Field(default=32, ge=4)


def rice_parameters(k_factor: float) -> tuple[float, float]:
    """(b, scale) of ``scipy.stats.rice`` for |h| with E|h|^2 = 1:
    b = sqrt(2 K), scale = sqrt(1 / (2 (K + 1)))."""
    return math.sqrt(2.0 * k_factor), math.sqrt(0.5 / (k_factor + 1.0))


class SumOfSinusoidsFading:
    """Fading gains of a set of links (see the module docstring).

    Parameters
    ----------
    spec : FadingSpec
    seeds : sequence of numpy.random.SeedSequence
        One per link.
    max_doppler_hz : array_like
        f_D of each link, Hz, shape (L,).
    """

    def __init__(
        self,
        spec: FadingSpec,
        seeds: Sequence[np.random.SeedSequence],
        max_doppler_hz: ArrayLike,
    ) -> None:
        self.spec = spec
        m = spec.n_sinusoids
        n_links = len(seeds)
        alpha = np.empty((n_links, m))
        phi = np.empty((n_links, m))
        for i, ss in enumerate(seeds):
            rng = np.random.default_rng(ss)
            alpha[i] = rng.uniform(0.0, 2.0 * np.pi, m)
            phi[i] = rng.uniform(0.0, 2.0 * np.pi, m)
        self.max_doppler_hz = np.broadcast_to(
            np.asarray(max_doppler_hz, dtype=np.float64), (n_links,)
        ).copy()
        self.freqs_hz = self.max_doppler_hz[:, None] * np.cos(alpha)  # (L, M)
        self.phase_cycles = phi / (2.0 * np.pi)
        k = spec.k_factor
        self.los = math.sqrt(k / (k + 1.0))
        self.diffuse = math.sqrt(1.0 / ((k + 1.0) * m))

    def at(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.complex128]:
        """h(t) of every link at t = t0 + offset (offset shape (P,)), shape (L, P)."""
        off = np.asarray(offset_s, dtype=np.float64)
        cyc = (
            cycles_at(self.freqs_hz, t0_ns)[:, :, None]
            + self.freqs_hz[:, :, None] * off[None, None, :]
            + self.phase_cycles[:, :, None]
        )
        ph = (2.0 * np.pi * np.mod(cyc, 1.0)).astype(np.float32)
        hd = np.cos(ph).sum(axis=1, dtype=np.float64) + 1j * np.sin(ph).sum(
            axis=1, dtype=np.float64
        )
        return self.los + self.diffuse * hd

    def grid(self, t0_ns: int, sample_rate_hz: float, n_samples: int) -> NDArray[np.complex64]:
        """h at the samples t0 + n / fs, shape (L, N), complex64 (linear interpolation
        of a coarse grid; constant over the chunk if ``per_sample`` is off or f_D = 0)."""
        n_links = self.freqs_hz.shape[0]
        fd = float(self.max_doppler_hz.max(initial=0.0))
        dur = n_samples / sample_rate_hz
        if not self.spec.per_sample or fd == 0.0:
            h0 = self.at(t0_ns, np.zeros(1))
            return np.broadcast_to(h0.astype(np.complex64), (n_links, n_samples))
        n_coarse = min(n_samples, max(2, math.ceil(dur * fd * self.spec.points_per_cycle) + 1))
        tc = np.linspace(0.0, dur, n_coarse)
        hc = self.at(t0_ns, tc)
        t = np.arange(n_samples) / sample_rate_hz
        pos = t * ((n_coarse - 1) / dur)
        i0 = np.minimum(pos.astype(np.int64), n_coarse - 2)
        w = (pos - i0).astype(np.float32)
        out = hc[:, i0].astype(np.complex64)
        out += (hc[:, i0 + 1] - hc[:, i0]).astype(np.complex64) * w
        return out
