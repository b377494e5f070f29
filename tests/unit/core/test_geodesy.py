"""WGS84 <-> ENU conversions (heimdall.core.geodesy).

Theory checked:
- ``from_enu(to_enu(p)) == p`` exactly up to floating point (PROJ's ECEF inversion is
  iterative to sub-mm), so the round trip error over a 200 km square must be < 1 mm.
- Moving north along a meridian by a geodesic distance s (measured on the ellipsoid)
  and staying at the origin's height h gives ``n ≈ s (1 + h/M)``, ``e ≈ 0`` and
  ``u ≈ −s²/(2 (M + h))`` (M the meridional radius of curvature, ~6.37e6 m at 45°; the
  factor ``1 + h/M`` is the arc-length scaling from the ellipsoid up to height h):
  for s = 1 km and h = 300 m, ``n ≈ 1000.047 m`` and ``u ≈ −0.079 m``. Eastwards the
  same holds with the prime-vertical radius N instead of M.
- The chord distance between surface points is shorter than the geodesic by
  ``s³ / (24 R²)`` to leading order.
"""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from heimdall.core.geodesy import LocalFrame, distance_m, from_enu, geodetic_to_ecef, to_enu

GEOD = Geod(ellps="WGS84")
REF = LocalFrame(45.0, 7.0, 300.0)


def _radii(lat_deg: float) -> tuple[float, float]:
    """Meridional (M) and prime-vertical (N) radii of curvature of WGS84."""
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    w2 = 1 - e2 * np.sin(np.radians(lat_deg)) ** 2
    return a * (1 - e2) / w2**1.5, a / np.sqrt(w2)


def _meter_errors(
    lat1: np.ndarray,
    lon1: np.ndarray,
    alt1: np.ndarray,
    lat2: np.ndarray,
    lon2: np.ndarray,
    alt2: np.ndarray,
) -> np.ndarray:
    e1, n1, u1 = to_enu(lat1, lon1, alt1, REF)
    e2, n2, u2 = to_enu(lat2, lon2, alt2, REF)
    return np.sqrt((e1 - e2) ** 2 + (n1 - n2) ** 2 + (u1 - u2) ** 2)


def test_round_trip_below_1mm_over_200km() -> None:
    """geodetic -> ENU -> geodetic and ENU -> geodetic -> ENU both within 1 mm."""
    rng = np.random.default_rng(1)
    m = 2000
    e = rng.uniform(-100e3, 100e3, m)
    n = rng.uniform(-100e3, 100e3, m)
    u = rng.uniform(-500.0, 3000.0, m)
    lat, lon, alt = from_enu(e, n, u, REF)
    e2, n2, u2 = to_enu(lat, lon, alt, REF)
    err = np.sqrt((e - e2) ** 2 + (n - n2) ** 2 + (u - u2) ** 2)
    assert err.max() < 1e-3

    # and the other way, measured in metres through ECEF (via to_enu)
    lat0 = rng.uniform(44.1, 45.9, m)
    lon0 = rng.uniform(5.7, 8.3, m)
    alt0 = rng.uniform(0.0, 2000.0, m)
    ee, nn, uu = to_enu(lat0, lon0, alt0, REF)
    lat1, lon1, alt1 = from_enu(ee, nn, uu, REF)
    assert _meter_errors(lat0, lon0, alt0, lat1, lon1, alt1).max() < 1e-3


def test_origin_maps_to_zero_and_frame_methods_agree() -> None:
    e, n, u = REF.to_enu(REF.lat0_deg, REF.lon0_deg, REF.alt0_m)
    assert isinstance(e, float)
    assert abs(e) < 1e-6 and abs(n) < 1e-6 and abs(u) < 1e-6
    assert to_enu(45.1, 7.1, 10.0, (45.0, 7.0, 300.0)) == REF.to_enu(45.1, 7.1, 10.0)
    lat, lon, alt = REF.from_enu(0.0, 0.0, 0.0)
    assert lat == pytest.approx(45.0, abs=1e-12)
    assert lon == pytest.approx(7.0, abs=1e-12)
    assert alt == pytest.approx(300.0, abs=1e-6)


def test_one_km_north() -> None:
    """n ≈ s(1 + h/M), e ≈ 0, u ≈ −s²/(2(M + h)) for s = 1 km north at the origin's height."""
    s = 1000.0
    h = REF.alt0_m
    lon2, lat2, _ = GEOD.fwd(REF.lon0_deg, REF.lat0_deg, 0.0, s)
    e, n, u = to_enu(lat2, lon2, h, REF)
    assert abs(e) < 1e-6
    m_rad = _radii(REF.lat0_deg)[0]
    assert n == pytest.approx(s * (1 + h / m_rad), abs=1e-3)
    assert n == pytest.approx(1000.0, abs=0.05)
    assert u == pytest.approx(-(s**2) / (2 * (m_rad + h)), rel=1e-3)
    # at zero height the scaling vanishes: n = 1000 m to < 1 mm
    _e0, n0, _ = to_enu(lat2, lon2, 0.0, (REF.lat0_deg, REF.lon0_deg, 0.0))
    assert n0 == pytest.approx(s, abs=1e-3)


def test_east_and_up_axes() -> None:
    lon2, lat2, _ = GEOD.fwd(REF.lon0_deg, REF.lat0_deg, 90.0, 500.0)
    e, n, _u = to_enu(lat2, lon2, REF.alt0_m, REF)
    n_rad = _radii(REF.lat0_deg)[1]
    assert e == pytest.approx(500.0 * (1 + REF.alt0_m / n_rad), abs=1e-3)
    assert abs(n) < 0.05  # a geodesic starting east bends slightly (~s² tan φ / 2R)
    _, _, u = to_enu(REF.lat0_deg, REF.lon0_deg, REF.alt0_m + 123.0, REF)
    assert u == pytest.approx(123.0, abs=1e-6)


def test_vectorised_shapes() -> None:
    lat = np.full((3, 4), 45.01)
    lon = np.linspace(6.9, 7.1, 4)
    e, n, u = to_enu(lat, lon, 0.0, REF)
    assert e.shape == n.shape == u.shape == (3, 4)


def test_distance_vs_geod() -> None:
    """chord = geodesic − s³/(24 R²) + O(s⁵); checked to 1 mm + 5 % of the correction."""
    rng = np.random.default_rng(7)
    m = 200
    lat1 = rng.uniform(40, 50, m)
    lon1 = rng.uniform(0, 10, m)
    az = rng.uniform(0, 360, m)
    s = rng.uniform(100.0, 200e3, m)
    lon2, lat2, _ = GEOD.fwd(lon1, lat1, az, s)
    d = distance_m(np.c_[lat1, lon1], np.c_[lat2, lon2])
    corr = s**3 / (24 * 6371e3**2)
    assert np.all(np.abs(d - (s - corr)) < 1e-3 + 0.05 * corr)
    # short baselines: chord == geodesic to 1 mm
    short = s < 10e3
    assert np.all(np.abs(d[short] - s[short]) < 1e-3)


def test_distance_3d_includes_height() -> None:
    d = distance_m((45.0, 7.0, 0.0), (45.0, 7.0, 250.0))
    assert d == pytest.approx(250.0, abs=1e-6)
    lon2, lat2, _ = GEOD.fwd(7.0, 45.0, 30.0, 3000.0)
    d = distance_m((45.0, 7.0, 0.0), (lat2, lon2, 400.0))
    assert d == pytest.approx(np.hypot(3000.0, 400.0), abs=1.0)  # 1 m: curvature/tilt of up


def test_ecef_matches_the_closed_form() -> None:
    """WGS84 geodetic -> ECEF (NIMA TR8350.2 §4.1): with N = a / sqrt(1 - e² sin²φ),
    X = (N+h) cosφ cosλ, Y = (N+h) cosφ sinλ, Z = (N(1 - e²) + h) sinφ, to 1 mm."""
    a, f = 6_378_137.0, 1.0 / 298.257223563
    e2 = f * (2.0 - f)
    lat = np.array([45.02, 45.234, 44.395, -33.9, 89.9])
    lon = np.array([7.29, 7.857, 8.956, 151.2, -179.0])
    alt = np.array([600.0, 300.0, 100.0, 10.0, 2000.0])
    phi, lam = np.radians(lat), np.radians(lon)
    n = a / np.sqrt(1.0 - e2 * np.sin(phi) ** 2)
    expected = np.stack(
        [
            (n + alt) * np.cos(phi) * np.cos(lam),
            (n + alt) * np.cos(phi) * np.sin(lam),
            (n * (1.0 - e2) + alt) * np.sin(phi),
        ],
        axis=-1,
    )
    np.testing.assert_allclose(
        np.stack(geodetic_to_ecef(lat, lon, alt), axis=-1), expected, atol=1e-3, rtol=0
    )
