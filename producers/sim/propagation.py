"""Geometry and radio propagation for the simulated receiver network.

Everything here is a pure function of positions and frequencies, vectorised over
numpy arrays. Positions are WGS84 geodetic (latitude and longitude in degrees,
height above the ellipsoid in metres); distances are 3-D straight-line (slant)
ranges computed in Earth-centred, Earth-fixed (ECEF) coordinates.

References
----------
.. [2] ITU-R P.525-4, "Calculation of free-space attenuation", 2019, eq. (4).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from heimdall.core import geodesy as core_geodesy

__all__ = [
    "SPEED_OF_LIGHT_M_S",
    "amplitude_gain",
    "fspl_db",
    "geodetic_to_ecef",
    "propagation_delay_s",
    "slant_range_m",
]

SPEED_OF_LIGHT_M_S: float = 299_792_458.0
"""Speed of light in vacuum, m/s (exact, SI definition)."""


def geodetic_to_ecef(
    lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike
) -> NDArray[np.float64]:
    """WGS84 geodetic (degrees, m) to ECEF (m), coordinates stacked on the last axis.

    The conversion is :func:`heimdall.core.geodesy.geodetic_to_ecef` (PROJ); this only
    stacks X, Y, Z so that positions broadcast as ``(..., 3)`` arrays.
    """
    return np.stack(core_geodesy.geodetic_to_ecef(lat_deg, lon_deg, alt_m), axis=-1)


def surface_path_m(
    rx_lat_deg: ArrayLike,
    rx_lon_deg: ArrayLike,
    rx_alt_m: ArrayLike,
    tx_lat_deg: ArrayLike,
    tx_lon_deg: ArrayLike,
    tx_alt_m: ArrayLike,
) -> NDArray[np.float64]:
    """Length of the path a wave travels along the Earth between two sites, m.

    L = sqrt(s^2 + (h_tx - h_rx)^2), with s the WGS84 geodesic (surface) distance between
    the two sites (Karney's algorithm through :class:`pyproj.Geod`). Inputs broadcast
    against each other, e.g. ``(R, 1)`` receivers against ``(1, S)`` transmitters.

    The straight line through the Earth (the chord, :func:`slant_range_m`) is shorter by
    s - chord ~= s^3 / (24 R_E^2): 8 mm at 20 km, 0.13 m at 50 km, 0.13 km at 500 km, 1.0 km
    at 1000 km.
    A VHF line-of-sight link does not see the difference; an HF ground wave between
    receivers hundreds of km apart follows the surface, and a TDOA fix across a
    continent (which measures geodesic distances, :class:`~heimdall.core.geodesy.
    AzimuthalFrame`) would be biased by hundreds of metres by a chord delay.
    """
    from pyproj import Geod

    arrays = np.broadcast_arrays(
        *(np.asarray(a, dtype=np.float64) for a in
          (rx_lat_deg, rx_lon_deg, rx_alt_m, tx_lat_deg, tx_lon_deg, tx_alt_m))
    )  # fmt: skip
    la1, lo1, h1, la2, lo2, h2 = (a.ravel() for a in arrays)
    _, _, s = Geod(ellps="WGS84").inv(lo1, la1, lo2, la2)
    path = np.hypot(np.asarray(s, dtype=np.float64), h2 - h1)
    return path.reshape(arrays[0].shape)


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
