"""Large-scale path-loss models, configurable per scenario.

Every model maps link geometry to a median (mean, in dB) path loss L (dB, positive),
vectorised over numpy arrays. The geometry of one link is described by

- ``distance_m``: 3-D slant range d between the antennas, m;
- ``ground_distance_m``: horizontal distance along the ground, m;
- ``h_tx_m``, ``h_rx_m``: antenna heights above the local ground, m;
- ``freq_hz``: carrier frequency, Hz.

Models
------
``free_space``
    L = 20 log10(4 pi d f / c) (Friis; ITU-R P.525).
``two_ray``
    Exact two-ray ground reflection [3]_ (Rappaport [1]_ sec. 4.6; Goldsmith [4]_ sec. 2.4)::

        L = -20 log10( lambda / (4 pi) | 1/r1 + Gamma(psi) exp(-j k (r2 - r1)) / r2 | )
        r1 = sqrt(g^2 + (h_t - h_r)^2),  r2 = sqrt(g^2 + (h_t + h_r)^2),  k = 2 pi / lambda
        sin(psi) = (h_t + h_r) / r2      (grazing angle)

    with Gamma = -1 or the Fresnel reflection coefficient of a ground of relative
    permittivity eps_r and conductivity sigma (S/m), eps_c = eps_r - j 60 lambda sigma::

        Gamma_H = (sin psi - sqrt(eps_c - cos^2 psi)) / (sin psi + sqrt(eps_c - cos^2 psi))
        Gamma_V = (eps_c sin psi - sqrt(eps_c - cos^2 psi))
                  / (eps_c sin psi + sqrt(eps_c - cos^2 psi))

    Beyond the crossover distance d_c = 4 pi h_t h_r / lambda (Gamma -> -1) the loss
    tends to the d^-4 asymptote ``two_ray_asymptote_db``: L = 40 log10 g - 20 log10(h_t h_r).
``log_distance``
    L = L(d0) + 10 n log10(d / d0), with L(d0) the free-space loss at d0 unless given
    (Rappaport [1]_ eq. 4.68).
``hata``
    Okumura-Hata [2]_ (150-1500 MHz) and COST-231 Hata [5]_ (1500-2000 MHz), see
    :func:`hata_loss_db`. The base station is the higher antenna, the mobile the lower.

References
----------
.. [1] T. S. Rappaport, *Wireless Communications: Principles and Practice*, 2nd ed.,
   Prentice Hall, 2002, sec. 4.2-4.10.
.. [2] M. Hata, "Empirical formula for propagation loss in land mobile radio services",
   IEEE Trans. Veh. Technol. VT-29(3), 317-325, 1980.
.. [3] W. C. Jakes (ed.), *Microwave Mobile Communications*, Wiley, 1974, ch. 2.
.. [4] A. Goldsmith, *Wireless Communications*, Cambridge Univ. Press, 2005, sec. 2.4.
.. [5] COST Action 231, "Digital mobile radio towards future generation systems, final
   report", EUR 18957, European Commission, 1999, sec. 4.4.1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field

from .propagation import SPEED_OF_LIGHT_M_S, fspl_db

__all__ = [
    "FreeSpaceSpec",
    "HataSpec",
    "LinkGeometry",
    "LogDistanceSpec",
    "PathLossSpec",
    "TwoRaySpec",
    "hata_loss_db",
    "log_distance_loss_db",
    "reflection_coefficient",
    "two_ray_asymptote_db",
    "two_ray_loss_db",
]

_F64 = NDArray[np.float64]


@dataclass(frozen=True)
class LinkGeometry:
    """Geometry of a set of links (arrays broadcast together); see the module docstring."""

    distance_m: _F64
    ground_distance_m: _F64
    h_tx_m: _F64
    h_rx_m: _F64
    freq_hz: _F64


def reflection_coefficient(
    sin_psi: ArrayLike,
    freq_hz: ArrayLike,
    polarization: Literal["horizontal", "vertical"],
    eps_r: float,
    sigma_s_m: float,
) -> NDArray[np.complex128]:
    """Fresnel reflection coefficient of a flat lossy ground at grazing angle psi.

    eps_c = eps_r - j 60 lambda sigma;  s = sqrt(eps_c - cos^2 psi)::

        Gamma_H = (sin psi - s) / (sin psi + s)
        Gamma_V = (eps_c sin psi - s) / (eps_c sin psi + s)

    Both tend to -1 at grazing incidence (psi -> 0) [1]_ (eq. 4.24-4.25).

    Parameters
    ----------
    sin_psi : array_like
        sin of the grazing angle (0 = grazing).
    freq_hz : array_like
        Frequency, Hz.
    polarization : {"horizontal", "vertical"}
        Polarisation of the E field with respect to the ground.
    eps_r : float
        Relative permittivity of the ground (e.g. 15 average ground, 81 sea water).
    sigma_s_m : float
        Conductivity, S/m (e.g. 0.005 average ground, 5 sea water).

    Returns
    -------
    numpy.ndarray
        Complex Gamma.
    """
    sp = np.asarray(sin_psi, dtype=np.float64)
    lam = SPEED_OF_LIGHT_M_S / np.asarray(freq_hz, dtype=np.float64)
    eps_c = eps_r - 1j * 60.0 * lam * sigma_s_m
    s = np.sqrt(eps_c - (1.0 - sp * sp))
    if polarization == "horizontal":
        return np.asarray((sp - s) / (sp + s), dtype=np.complex128)
    return np.asarray((eps_c * sp - s) / (eps_c * sp + s), dtype=np.complex128)


def two_ray_loss_db(
    ground_distance_m: ArrayLike,
    h_tx_m: ArrayLike,
    h_rx_m: ArrayLike,
    freq_hz: ArrayLike,
    gamma: ArrayLike | None = None,
    *,
    polarization: Literal["horizontal", "vertical"] = "vertical",
    eps_r: float = 15.0,
    sigma_s_m: float = 0.005,
) -> _F64:
    """Exact two-ray (direct + ground-reflected) path loss, dB (module docstring).

    Parameters
    ----------
    ground_distance_m, h_tx_m, h_rx_m, freq_hz : array_like
        g, h_t, h_r (m, > 0) and f (Hz).
    gamma : array_like, optional
        Fixed reflection coefficient (e.g. -1). ``None``: the Fresnel coefficient of
        the ground (``polarization``, ``eps_r``, ``sigma_s_m``), see
        :func:`reflection_coefficient`.

    Returns
    -------
    numpy.ndarray
        L, dB.
    """
    g = np.asarray(ground_distance_m, dtype=np.float64)
    ht = np.asarray(h_tx_m, dtype=np.float64)
    hr = np.asarray(h_rx_m, dtype=np.float64)
    f = np.asarray(freq_hz, dtype=np.float64)
    lam = SPEED_OF_LIGHT_M_S / f
    r1 = np.hypot(g, ht - hr)
    r2 = np.hypot(g, ht + hr)
    if gamma is None:
        gam = reflection_coefficient((ht + hr) / r2, f, polarization, eps_r, sigma_s_m)
    else:
        gam = np.asarray(gamma, dtype=np.complex128)
    # r2 - r1 = ((r2^2 - r1^2)) / (r1 + r2) = 4 h_t h_r / (r1 + r2): no cancellation
    path_diff = 4.0 * ht * hr / (r1 + r2)
    field = 1.0 / r1 + gam * np.exp(-2j * np.pi * path_diff / lam) / r2
    return np.asarray(-20.0 * np.log10(lam / (4.0 * np.pi) * np.abs(field)), dtype=np.float64)


def two_ray_asymptote_db(
    ground_distance_m: ArrayLike, h_tx_m: ArrayLike, h_rx_m: ArrayLike
) -> _F64:
    """Far-field (d >> 4 pi h_t h_r / lambda, Gamma = -1) two-ray loss:
    L = 40 log10 d - 20 log10(h_t h_r), independent of frequency ([1]_ eq. 4.52)."""
    g = np.asarray(ground_distance_m, dtype=np.float64)
    return np.asarray(
        40.0 * np.log10(g) - 20.0 * np.log10(np.asarray(h_tx_m) * np.asarray(h_rx_m)),
        dtype=np.float64,
    )


def log_distance_loss_db(
    distance_m: ArrayLike,
    freq_hz: ArrayLike,
    exponent: float,
    ref_distance_m: float = 1.0,
    ref_loss_db: float | None = None,
) -> _F64:
    """Log-distance path loss L = L(d0) + 10 n log10(d / d0) ([1]_ eq. 4.68).

    L(d0) is ``ref_loss_db`` or, if ``None``, the free-space loss at d0 and f.
    """
    d = np.asarray(distance_m, dtype=np.float64)
    l0 = fspl_db(ref_distance_m, freq_hz) if ref_loss_db is None else ref_loss_db
    return np.asarray(l0 + 10.0 * exponent * np.log10(d / ref_distance_m), dtype=np.float64)


Environment = Literal["urban", "suburban", "open"]
CitySize = Literal["medium", "large"]
OutOfRange = Literal["raise", "clip"]

HATA_RANGES: dict[str, tuple[float, float]] = {
    "freq_mhz": (150.0, 2000.0),
    "h_base_m": (30.0, 200.0),
    "h_mobile_m": (1.0, 10.0),
    "distance_km": (1.0, 20.0),
}
"""Validity of Okumura-Hata (150-1500 MHz) + COST-231 Hata (1500-2000 MHz) [2]_ [5]_."""


def _check_range(name: str, x: _F64, out_of_range: OutOfRange, lo: float, hi: float) -> _F64:
    if out_of_range == "clip":
        return np.clip(x, lo, hi)
    bad = (x < lo * (1 - 1e-9)) | (x > hi * (1 + 1e-9))
    if np.any(bad):
        v = float(np.asarray(x)[bad].flat[0])
        raise ValueError(f"hata: {name} = {v:g} outside its validity range [{lo:g}, {hi:g}]")
    return x


def hata_loss_db(
    distance_m: ArrayLike,
    freq_hz: ArrayLike,
    h_base_m: ArrayLike,
    h_mobile_m: ArrayLike,
    environment: Environment = "urban",
    city_size: CitySize = "medium",
    out_of_range: OutOfRange = "raise",
) -> _F64:
    """Okumura-Hata / COST-231 Hata median path loss, dB.

    With f in MHz, h_b, h_m in m, d in km (log = log10)::

        a(h_m) = (1.1 log f - 0.7) h_m - (1.56 log f - 0.8)          medium/small city
        a(h_m) = 8.29 (log 1.54 h_m)^2 - 1.1     (f < 300 MHz)       large city
               = 3.2 (log 11.75 h_m)^2 - 4.97    (f >= 300 MHz)
        A      = 69.55 + 26.16 log f            (Hata, 150 <= f <= 1500)
               = 46.3 + 33.9 log f + C_M        (COST-231, 1500 < f <= 2000;
                                                 C_M = 0 medium, 3 dB large/metropolitan)
        L_urban = A - 13.82 log h_b - a(h_m) + (44.9 - 6.55 log h_b) log d
        L_suburban = L_urban - 2 (log(f / 28))^2 - 5.4
        L_open     = L_urban - 4.78 (log f)^2 + 18.33 log f - 40.94

    (Hata [2]_ eqs. 4-6 and 11-15; COST-231 [5]_ eq. 4.4.3; the suburban and open
    corrections are Hata's and are applied to COST-231 too, as is usual practice.)

    Validity: f 150-2000 MHz, h_b 30-200 m, h_m 1-10 m, d 1-20 km
    (:data:`HATA_RANGES`). ``out_of_range="raise"`` raises ``ValueError`` naming the
    offending quantity; ``"clip"`` evaluates the formula at the nearest valid value of
    each input (so the loss is constant, not extrapolated, outside the range).
    """
    f = _check_range(
        "freq_mhz",
        np.asarray(freq_hz, dtype=np.float64) / 1e6,
        out_of_range,
        *HATA_RANGES["freq_mhz"],
    )
    hb = _check_range(
        "h_base_m",
        np.asarray(h_base_m, dtype=np.float64),
        out_of_range,
        *HATA_RANGES["h_base_m"],
    )
    hm = _check_range(
        "h_mobile_m",
        np.asarray(h_mobile_m, dtype=np.float64),
        out_of_range,
        *HATA_RANGES["h_mobile_m"],
    )
    d = _check_range(
        "distance_km",
        np.asarray(distance_m, dtype=np.float64) / 1e3,
        out_of_range,
        *HATA_RANGES["distance_km"],
    )
    lf = np.log10(f)
    if city_size == "medium":
        a_hm = (1.1 * lf - 0.7) * hm - (1.56 * lf - 0.8)
    else:
        a_hm = np.where(
            f < 300.0,
            8.29 * np.log10(1.54 * hm) ** 2 - 1.1,
            3.2 * np.log10(11.75 * hm) ** 2 - 4.97,
        )
    c_m = 3.0 if city_size == "large" else 0.0
    a = np.where(f <= 1500.0, 69.55 + 26.16 * lf, 46.3 + 33.9 * lf + c_m)
    lhb = np.log10(hb)
    loss = a - 13.82 * lhb - a_hm + (44.9 - 6.55 * lhb) * np.log10(d)
    if environment == "suburban":
        loss = loss - 2.0 * np.log10(f / 28.0) ** 2 - 5.4
    elif environment == "open":
        loss = loss - 4.78 * lf**2 + 18.33 * lf - 40.94
    return np.asarray(loss, dtype=np.float64)


class _ModelBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def loss_db(self, geo: LinkGeometry) -> _F64:  # pragma: no cover - abstract
        """Median path loss of the links, dB."""
        raise NotImplementedError


class FreeSpaceSpec(_ModelBase):
    """Free space: L = 20 log10(4 pi d f / c)."""

    kind: Literal["free_space"] = "free_space"

    def loss_db(self, geo: LinkGeometry) -> _F64:
        return fspl_db(geo.distance_m, geo.freq_hz)


class TwoRaySpec(_ModelBase):
    """Exact two-ray ground reflection (:func:`two_ray_loss_db`).

    Attributes
    ----------
    reflection : {"ground", "minus_one"}
        Fresnel coefficient of the ground, or Gamma = -1 (perfect reflector at grazing).
    polarization : {"vertical", "horizontal"}
    eps_r, sigma_s_m : float
        Ground relative permittivity and conductivity (S/m); ITU-R P.527 "average
        ground" is about 15 and 0.005.
    """

    kind: Literal["two_ray"] = "two_ray"
    reflection: Literal["ground", "minus_one"] = "ground"
    polarization: Literal["vertical", "horizontal"] = "vertical"
    eps_r: float = Field(default=15.0, ge=1.0)
    sigma_s_m: float = Field(default=0.005, ge=0.0)

    def loss_db(self, geo: LinkGeometry) -> _F64:
        return two_ray_loss_db(
            np.maximum(geo.ground_distance_m, 1e-3),
            geo.h_tx_m,
            geo.h_rx_m,
            geo.freq_hz,
            -1.0 if self.reflection == "minus_one" else None,
            polarization=self.polarization,
            eps_r=self.eps_r,
            sigma_s_m=self.sigma_s_m,
        )


class LogDistanceSpec(_ModelBase):
    """Log-distance model (:func:`log_distance_loss_db`).

    Attributes
    ----------
    exponent : float
        Path-loss exponent n (2 free space, 2.7-3.5 urban, 3-5 shadowed urban).
    ref_distance_m : float
        d0, m.
    ref_loss_db : float or None
        L(d0), dB; ``None`` = free-space loss at d0.
    """

    kind: Literal["log_distance"] = "log_distance"
    exponent: float = Field(default=3.0, gt=0.0, le=10.0)
    ref_distance_m: float = Field(default=100.0, gt=0.0)
    ref_loss_db: float | None = None

    def loss_db(self, geo: LinkGeometry) -> _F64:
        return log_distance_loss_db(
            np.maximum(geo.distance_m, 1e-3),
            geo.freq_hz,
            self.exponent,
            self.ref_distance_m,
            self.ref_loss_db,
        )


class HataSpec(_ModelBase):
    """Okumura-Hata / COST-231 Hata (:func:`hata_loss_db`).

    Attributes
    ----------
    environment : {"urban", "suburban", "open"}
    city_size : {"medium", "large"}
    out_of_range : {"raise", "clip"}
        What to do with links outside the validity ranges. Receivers closer than 1 km
        or handheld transmitters below 30 m are common in simulated scenes, so the
        scenarios that use Hata say ``clip``.
    """

    kind: Literal["hata"] = "hata"
    environment: Environment = "urban"
    city_size: CitySize = "medium"
    out_of_range: OutOfRange = "raise"

    def loss_db(self, geo: LinkGeometry) -> _F64:
        h_base = np.maximum(geo.h_tx_m, geo.h_rx_m)
        h_mobile = np.minimum(geo.h_tx_m, geo.h_rx_m)
        return hata_loss_db(
            geo.ground_distance_m,
            geo.freq_hz,
            h_base,
            h_mobile,
            self.environment,
            self.city_size,
            self.out_of_range,
        )


PathLossSpec = Annotated[
    FreeSpaceSpec | TwoRaySpec | LogDistanceSpec | HataSpec, Field(discriminator="kind")
]
"""Any path-loss model spec, discriminated by ``kind``."""
