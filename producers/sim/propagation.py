"""Geometry and radio propagation for the simulated receiver network.

Everything here is a pure function of positions and frequencies, vectorised over
numpy arrays. Positions are WGS84 geodetic (latitude and longitude in degrees,
height above the ellipsoid in metres); distances are 3-D straight-line (slant)
ranges computed in Earth-centred, Earth-fixed (ECEF) coordinates.

Notes
-----
The geodesy helpers (:func:`geodetic_to_ecef`, :func:`slant_range_m`) belong in the
shared bottom layer once it grows a geodesy module; they live here for now so that
the simulator has no dependency on code written in parallel.

References
----------
.. [1] NIMA TR8350.2, "Department of Defense World Geodetic System 1984", 3rd ed.,
   2000, sec. 3 (ellipsoid parameters) and sec. 4.1 (geodetic to ECEF).
.. [2] ITU-R P.525-4, "Calculation of free-space attenuation", 2019, eq. (4).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "SPEED_OF_LIGHT_M_S",
    "WGS84_A_M",
    "WGS84_E2",
    "WGS84_F",
    "amplitude_gain",
    "fspl_db",
    "geodetic_to_ecef",
    "propagation_delay_s",
    "slant_range_m",
]

SPEED_OF_LIGHT_M_S: float = 299_792_458.0
"""Speed of light in vacuum, m/s (exact, SI definition)."""

WGS84_A_M: float = 6_378_137.0
"""WGS84 semi-major axis, m [1]_."""

WGS84_F: float = 1.0 / 298.257223563
"""WGS84 flattening [1]_."""

WGS84_E2: float = WGS84_F * (2.0 - WGS84_F)
"""WGS84 first eccentricity squared, e^2 = f (2 - f)."""


def geodetic_to_ecef(
    lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike
) -> NDArray[np.float64]:
    """Convert WGS84 geodetic coordinates to ECEF.

    With the prime-vertical radius of curvature N(phi) = a / sqrt(1 - e^2 sin^2 phi)::

        X = (N + h) cos(phi) cos(lambda)
        Y = (N + h) cos(phi) sin(lambda)
        Z = (N (1 - e^2) + h) sin(phi)

    ([1]_, sec. 4.1).

    Parameters
    ----------
    lat_deg, lon_deg : array_like
        Geodetic latitude and longitude, degrees.
    alt_m : array_like
        Height above the WGS84 ellipsoid, m.

    Returns
    -------
    numpy.ndarray
        ECEF coordinates, m, shape ``broadcast(lat, lon, alt).shape + (3,)``.
    """
    phi = np.radians(np.asarray(lat_deg, dtype=np.float64))
    lam = np.radians(np.asarray(lon_deg, dtype=np.float64))
    h = np.asarray(alt_m, dtype=np.float64)
    sin_phi = np.sin(phi)
    n_m = WGS84_A_M / np.sqrt(1.0 - WGS84_E2 * sin_phi**2)
    x = (n_m + h) * np.cos(phi) * np.cos(lam)
    y = (n_m + h) * np.cos(phi) * np.sin(lam)
    z = (n_m * (1.0 - WGS84_E2) + h) * sin_phi
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def slant_range_m(ecef_a_m: ArrayLike, ecef_b_m: ArrayLike) -> NDArray[np.float64]:
    """3-D straight-line distance between ECEF points, d = ||a - b||_2.

    Parameters
    ----------
    ecef_a_m, ecef_b_m : array_like
        ECEF positions, m, with the coordinates on the last axis (size 3);
        the leading axes broadcast, e.g. ``(R, 1, 3)`` against ``(1, S, 3)``
        gives the ``(R, S)`` distance matrix.

    Returns
    -------
    numpy.ndarray
        Distances, m.
    """
    diff = np.asarray(ecef_a_m, dtype=np.float64) - np.asarray(ecef_b_m, dtype=np.float64)
    return np.sqrt(np.sum(diff * diff, axis=-1))


def propagation_delay_s(distance_m: ArrayLike) -> NDArray[np.float64]:
    """Free-space propagation delay, tau = d / c, s."""
    return np.asarray(distance_m, dtype=np.float64) / SPEED_OF_LIGHT_M_S


def fspl_db(distance_m: ArrayLike, freq_hz: ArrayLike) -> NDArray[np.float64]:
    """Free-space path loss between isotropic antennas.

    FSPL = 20 log10(4 pi d f / c)  (dB) ([2]_, eq. 4, written with f = c / lambda).

    Parameters
    ----------
    distance_m : array_like
        Slant range, m (must be > 0; the far-field formula is meaningless below
        a few wavelengths).
    freq_hz : array_like
        Carrier frequency, Hz.

    Returns
    -------
    numpy.ndarray
        Path loss, dB (positive).
    """
    d = np.asarray(distance_m, dtype=np.float64)
    f = np.asarray(freq_hz, dtype=np.float64)
    return 20.0 * np.log10(4.0 * np.pi * d * f / SPEED_OF_LIGHT_M_S)


def amplitude_gain(loss_db: ArrayLike) -> NDArray[np.float64]:
    """Voltage (amplitude) gain of a loss: g = 10^(-L / 20), so that g^2 = 10^(-L / 10)."""
    return np.power(10.0, -np.asarray(loss_db, dtype=np.float64) / 20.0)
