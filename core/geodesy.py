"""WGS84 geodetic coordinates <-> local East-North-Up (ENU) tangent frame.

Estimation in Heimdall works in metres in a local ENU frame anchored at a reference
point (typically the centroid of the receivers). This module provides the conversion
both ways, built on pyproj for the geodetic <-> Earth-Centred Earth-Fixed (ECEF) step
and the standard rotation for ECEF <-> ENU.

Maths
-----
Geodetic (φ, λ, h) on the WGS84 ellipsoid (EPSG:4979, 3-D) maps to ECEF (X, Y, Z)
(EPSG:4978) by

.. math::

    X = (N + h)\\cos φ \\cos λ,\\quad Y = (N + h)\\cos φ \\sin λ,\\quad
    Z = (N(1 - e^2) + h)\\sin φ,\\qquad N = a / \\sqrt{1 - e^2 \\sin^2 φ},

which pyproj evaluates (and inverts) exactly. Given a reference point with geodetic
(φ0, λ0, h0) and ECEF position r0, a point r has ENU coordinates

.. math::

    \\begin{pmatrix} e \\\\ n \\\\ u \\end{pmatrix} = R(φ_0, λ_0)\\,(r - r_0),\\qquad
    R = \\begin{pmatrix}
        -\\sin λ_0 & \\cos λ_0 & 0 \\\\
        -\\sin φ_0 \\cos λ_0 & -\\sin φ_0 \\sin λ_0 & \\cos φ_0 \\\\
        \\cos φ_0 \\cos λ_0 & \\cos φ_0 \\sin λ_0 & \\sin φ_0
    \\end{pmatrix},

and R is orthonormal, so the inverse is :math:`r = r_0 + R^T (e, n, u)^T`.
"Up" is along the ellipsoidal normal at the reference point (geodetic, not
geocentric, latitude).

References
----------
- NIMA TR8350.2, "Department of Defense World Geodetic System 1984", 3rd ed., 2000.
- J. Farrell, M. Barth, *The Global Positioning System and Inertial Navigation*,
  McGraw-Hill, 1999, §2.2 (ECEF <-> local tangent plane).
- PROJ / pyproj documentation, ``pyproj.Transformer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
from pyproj import Transformer

__all__ = [
    "AzimuthalFrame",
    "LocalFrame",
    "RefLike",
    "distance_m",
    "ecef_to_geodetic",
    "from_enu",
    "geodetic_to_ecef",
    "latlon_of_enu",
    "to_enu",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike


@dataclass(frozen=True, slots=True)
class LocalFrame:
    """A local ENU tangent frame anchored at a WGS84 reference point.

    Parameters
    ----------
    lat0_deg, lon0_deg : float
        Geodetic latitude and longitude of the origin, degrees.
    alt0_m : float
        Ellipsoidal height of the origin, metres (default 0).
    """

    lat0_deg: float
    lon0_deg: float
    alt0_m: float = 0.0

    def to_enu(
        self, lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike = 0.0
    ) -> tuple[Any, Any, Any]:
        """Geodetic -> (east, north, up) in metres relative to this frame's origin."""
        return to_enu(lat_deg, lon_deg, alt_m, self)

    def from_enu(self, e: ArrayLike, n: ArrayLike, u: ArrayLike = 0.0) -> tuple[Any, Any, Any]:
        """(east, north, up) in metres -> geodetic (lat_deg, lon_deg, alt_m)."""
        return from_enu(e, n, u, self)


RefLike = LocalFrame | tuple[float, float] | tuple[float, float, float]


@dataclass(frozen=True, slots=True)
class AzimuthalFrame:
    """Azimuthal-equidistant projection (AEQD, WGS84) centred at a point, in metres.

    The distance from the centre to any point, and its azimuth there, are the exact
    geodesic ones; distances between two points away from the centre are distorted by a
    relative ~(d/R)²/6 (d their distance from the centre, R the Earth's radius: ~0.1 % at
    500 km). For ranges of hundreds of km *from a transmitter at the centre* (TDOA over a
    continent: ground waves follow the surface) it is exact where a tangent plane (the
    :class:`LocalFrame` east/north) shortens 500 km by ~1 km. Near the centre its axes are
    the local east and north.
    """

    lat0_deg: float
    lon0_deg: float

    @property
    def proj(self) -> str:
        """The projection as a PROJ string."""
        centre = f"+lat_0={self.lat0_deg:.9f} +lon_0={self.lon0_deg:.9f}"
        return f"+proj=aeqd {centre} +ellps=WGS84 +units=m"

    def to_en(self, lat_deg: ArrayLike, lon_deg: ArrayLike) -> tuple[Any, Any]:
        """Geodetic -> (east, north) in this projection, m."""
        return _aeqd(self.proj, forward=True).transform(lon_deg, lat_deg)

    def from_en(self, e: ArrayLike, n: ArrayLike) -> tuple[Any, Any]:
        """(east, north) in this projection, m -> geodetic (lat_deg, lon_deg)."""
        lon, lat = _aeqd(self.proj, forward=False).transform(e, n)
        return lat, lon


@lru_cache(maxsize=64)
def _aeqd(crs: str, forward: bool) -> Transformer:
    if forward:
        return Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


@lru_cache(maxsize=1)
def _fwd() -> Transformer:
    # EPSG:4979 = WGS84 geographic 3-D; EPSG:4978 = WGS84 geocentric (ECEF).
    return Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)


@lru_cache(maxsize=1)
def _inv() -> Transformer:
    return Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)


def _as_frame(ref: RefLike) -> LocalFrame:
    if isinstance(ref, LocalFrame):
        return ref
    vals = tuple(float(v) for v in ref)
    if len(vals) == 2:
        return LocalFrame(vals[0], vals[1], 0.0)
    if len(vals) == 3:
        return LocalFrame(vals[0], vals[1], vals[2])
    raise ValueError(f"reference must be (lat, lon) or (lat, lon, alt), got {len(vals)} values")


@lru_cache(maxsize=256)
def _ref_ecef_and_rot(frame: LocalFrame) -> tuple[FloatArray, FloatArray]:
    x0, y0, z0 = _fwd().transform(frame.lon0_deg, frame.lat0_deg, frame.alt0_m)
    phi = np.radians(frame.lat0_deg)
    lam = np.radians(frame.lon0_deg)
    sp, cp, sl, cl = np.sin(phi), np.cos(phi), np.sin(lam), np.cos(lam)
    rot = np.array(
        [
            [-sl, cl, 0.0],
            [-sp * cl, -sp * sl, cp],
            [cp * cl, cp * sl, sp],
        ]
    )
    rot.setflags(write=False)
    r0 = np.array([x0, y0, z0], dtype=float)
    r0.setflags(write=False)
    return r0, rot


def _unwrap(*arrs: FloatArray, scalar: bool) -> tuple[Any, ...]:
    if scalar:
        return tuple(float(a) for a in arrs)
    return arrs


def geodetic_to_ecef(
    lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike = 0.0
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """WGS84 geodetic (degrees, metres) -> ECEF (X, Y, Z) in metres, broadcast over arrays."""
    lat, lon, alt = np.broadcast_arrays(
        np.asarray(lat_deg, float), np.asarray(lon_deg, float), np.asarray(alt_m, float)
    )
    x, y, z = _fwd().transform(lon, lat, alt)
    return np.asarray(x, float), np.asarray(y, float), np.asarray(z, float)


def ecef_to_geodetic(
    x: ArrayLike, y: ArrayLike, z: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """ECEF (X, Y, Z) in metres -> WGS84 (lat_deg, lon_deg, alt_m), broadcast over arrays."""
    xa, ya, za = np.broadcast_arrays(
        np.asarray(x, float), np.asarray(y, float), np.asarray(z, float)
    )
    lon, lat, alt = _inv().transform(xa, ya, za)
    return np.asarray(lat, float), np.asarray(lon, float), np.asarray(alt, float)


def to_enu(
    lat_deg: ArrayLike, lon_deg: ArrayLike, alt_m: ArrayLike, ref: RefLike
) -> tuple[Any, Any, Any]:
    """Convert WGS84 geodetic coordinates to local ENU metres about ``ref``.

    Parameters
    ----------
    lat_deg, lon_deg : array_like
        Geodetic latitude/longitude in degrees (any broadcastable shapes).
    alt_m : array_like
        Ellipsoidal height in metres.
    ref : LocalFrame or (lat, lon[, alt])
        Origin of the tangent frame.

    Returns
    -------
    e, n, u : float or numpy.ndarray
        East, north, up in metres; Python floats when every input is scalar,
        otherwise arrays of the broadcast shape.

    Notes
    -----
    ``(e, n, u)^T = R(φ0, λ0) (r − r0)`` with ``r`` the ECEF position (see module
    docstring).
    """
    scalar = all(np.ndim(v) == 0 for v in (lat_deg, lon_deg, alt_m))
    frame = _as_frame(ref)
    r0, rot = _ref_ecef_and_rot(frame)
    x, y, z = geodetic_to_ecef(lat_deg, lon_deg, alt_m)
    d = np.stack([x - r0[0], y - r0[1], z - r0[2]], axis=0)  # (3, ...)
    enu = np.tensordot(rot, d, axes=(1, 0))
    return _unwrap(enu[0], enu[1], enu[2], scalar=scalar)


def from_enu(e: ArrayLike, n: ArrayLike, u: ArrayLike, ref: RefLike) -> tuple[Any, Any, Any]:
    """Convert local ENU metres about ``ref`` back to WGS84 geodetic coordinates.

    Parameters
    ----------
    e, n, u : array_like
        East, north, up in metres (broadcastable).
    ref : LocalFrame or (lat, lon[, alt])
        Origin of the tangent frame.

    Returns
    -------
    lat_deg, lon_deg, alt_m : float or numpy.ndarray
        Geodetic coordinates; floats when every input is scalar.

    Notes
    -----
    ``r = r0 + R^T (e, n, u)^T`` followed by the exact ECEF -> geodetic inversion of PROJ.
    """
    scalar = all(np.ndim(v) == 0 for v in (e, n, u))
    frame = _as_frame(ref)
    r0, rot = _ref_ecef_and_rot(frame)
    ea, na, ua = np.broadcast_arrays(
        np.asarray(e, float), np.asarray(n, float), np.asarray(u, float)
    )
    enu = np.stack([ea, na, ua], axis=0)
    d = np.tensordot(rot.T, enu, axes=(1, 0))
    lat, lon, alt = ecef_to_geodetic(d[0] + r0[0], d[1] + r0[1], d[2] + r0[2])
    return _unwrap(lat, lon, alt, scalar=scalar)


def distance_m(a: ArrayLike, b: ArrayLike) -> Any:
    """Straight-line (chord, 3-D) distance in metres between two geodetic points.

    Parameters
    ----------
    a, b : array_like, shape (..., 2) or (..., 3)
        ``(lat_deg, lon_deg[, alt_m])``; missing altitude means 0 m. Leading
        dimensions broadcast.

    Returns
    -------
    float or numpy.ndarray
        ``|r_a − r_b|`` with r the ECEF positions. For two points on the ellipsoid
        separated by a geodesic of length s this is shorter than s by about
        ``s^3 / (24 R^2)`` (R ≈ 6371 km): 1 mm at 10 km, 1 m at 100 km.
    """
    aa = np.asarray(a, float)
    bb = np.asarray(b, float)
    if aa.shape[-1] not in (2, 3) or bb.shape[-1] not in (2, 3):
        raise ValueError("points must be (lat, lon) or (lat, lon, alt) along the last axis")
    alt_a = aa[..., 2] if aa.shape[-1] == 3 else 0.0
    alt_b = bb[..., 2] if bb.shape[-1] == 3 else 0.0
    xa, ya, za = geodetic_to_ecef(aa[..., 0], aa[..., 1], alt_a)
    xb, yb, zb = geodetic_to_ecef(bb[..., 0], bb[..., 1], alt_b)
    d = np.sqrt((xa - xb) ** 2 + (ya - yb) ** 2 + (za - zb) ** 2)
    return float(d) if d.ndim == 0 else d


def latlon_of_enu(
    frame: LocalFrame, e: ArrayLike, n: ArrayLike, iterations: int = 4
) -> tuple[FloatArray, FloatArray]:
    """(lat, lon) of the points at altitude 0 whose East, North in ``frame`` are ``e, n``.

    The inverse of ``frame.to_enu(lat, lon, 0)[:2]``: Up is solved by fixed-point iteration
    (``u ← u − alt``; the Up axis is within d/R rad of the normal, so each step gains ~4
    orders of magnitude at 100 km).
    """
    ee = np.asarray(e, dtype=np.float64)
    nn = np.asarray(n, dtype=np.float64)
    u = np.zeros(np.broadcast(ee, nn).shape)
    lat = lon = u
    for _ in range(iterations):
        lat, lon, alt = frame.from_enu(ee, nn, u)
        u = u - np.asarray(alt, dtype=np.float64)
    return np.asarray(lat, dtype=np.float64), np.asarray(lon, dtype=np.float64)
