r"""TDOA hyperbolas to draw behind a TDOA fix, as lat/lon polylines.

A time difference ``τ = t_a − t_b`` between receivers a and b puts the emitter on the branch
of the hyperbola with foci a and b where

.. math:: |p − a| − |p − b| = Δ = c τ.

In the plane of the ENU frame at the fix, with ``m = (a + b)/2``, ``f = |b − a|/2``,
``u = (b − a)/(2f)`` and ``w`` = u turned +90°, the branch is

.. math:: p(t) = m + \operatorname{sign}(Δ) A \cosh t \, u + B \sinh t \, w,
          \qquad A = |Δ|/2,\; B = \sqrt{f^2 − A^2}

(Δ > 0: nearer b; Δ = 0 is the perpendicular bisector). A pair with ``|Δ| ≥ 2f`` has no
hyperbola (noise or a bad pair) and is skipped. Points go back to lat/lon with
:func:`heimdall.core.geodesy.latlon_of_enu`; receivers' heights are ignored (a drawing, not
an estimate: at 100 m of height over 20 km the 2-D curve moves by well under a metre).

References
----------
- D. J. Torrieri, "Statistical theory of passive location systems", IEEE Trans. AES-20(2),
  1984, §III (hyperbolic lines of position).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from heimdall.core.geodesy import LocalFrame, latlon_of_enu
from heimdall.schemas.models import Observation

#: Speed of light in vacuum, m/s (exact by the SI definition of the metre).
C_M_S = 299_792_458.0
#: Points per hyperbola branch.
POINTS = 64


def hyperbola_enu(
    a_en: tuple[float, float], b_en: tuple[float, float], delta_m: float, reach_m: float
) -> np.ndarray | None:
    """The branch ``|p − a| − |p − b| = delta_m`` out to ``reach_m`` from the centre, (N, 2) ENU.

    Returns None when ``|delta_m| ≥ |b − a|`` (no such branch).
    """
    a, b = np.asarray(a_en, float), np.asarray(b_en, float)
    f = 0.5 * float(np.hypot(*(b - a)))
    half = 0.5 * abs(delta_m)
    if f <= 0.0 or half >= f:
        return None
    u = (b - a) / (2.0 * f)
    w = np.array([-u[1], u[0]])
    minor = math.sqrt(f * f - half * half)
    t_max = math.asinh(max(reach_m, f) / minor)
    t = np.linspace(-t_max, t_max, POINTS)
    x = math.copysign(1.0, delta_m) * half * np.cosh(t) if delta_m else np.zeros_like(t)
    y = minor * np.sinh(t)
    m = 0.5 * (a + b)
    return m[None, :] + x[:, None] * u[None, :] + y[:, None] * w[None, :]


def tdoa_hyperbolas(
    obs: Observation, lat_deg: float, lon_deg: float, reach_factor: float = 3.0
) -> list[list[list[float]]]:
    """Every TDOA pair's hyperbola of ``obs`` as ``[[lat, lon], …]``, in the frame at the fix.

    Each branch reaches ``reach_factor`` times the larger of the pair's half-baseline and the
    fix's distance from the pair's centre.
    """
    frame = LocalFrame(lat_deg, lon_deg, 0.0)
    where: Mapping[str, tuple[float, float]] = {
        m.receiver_id: (m.position.lat_deg, m.position.lon_deg) for m in obs.members
    }
    out: list[list[list[float]]] = []
    for pair in obs.tdoa_pairs:
        if pair.receiver_a not in where or pair.receiver_b not in where:
            continue
        if not math.isfinite(pair.tdoa_s):
            continue
        ea, na, _ = frame.to_enu(*where[pair.receiver_a], 0.0)
        eb, nb, _ = frame.to_enu(*where[pair.receiver_b], 0.0)
        centre = np.array([(ea + eb) / 2, (na + nb) / 2])
        reach = reach_factor * max(math.hypot(eb - ea, nb - na) / 2, float(np.hypot(*centre)))
        pts = hyperbola_enu((ea, na), (eb, nb), C_M_S * pair.tdoa_s, reach)
        if pts is None:
            continue
        lat, lon = latlon_of_enu(frame, pts[:, 0], pts[:, 1])
        out.append(
            [[round(float(y), 7), round(float(x), 7)] for y, x in zip(lat, lon, strict=True)]
        )
    return out
