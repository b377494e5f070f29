"""Moving transmitters and on/off schedules.

Trajectory
----------
Waypoints p_0 .. p_{W-1} (WGS84) are converted to ECEF and joined by straight chords
travelled at a constant speed v; at the end the transmitter turns back (``loop=False``:
ping-pong) or jumps to p_0 (``loop=True``; close the polygon by repeating p_0). The route
is a pure function of time: the arc length s(t) = v (t mod T_route), with the route's
period T_route = 2 L / v (ping-pong) or L / v (loop), L the polyline length; t is
Unix time, so every process agrees on where the transmitter is. A chord between two
waypoints g apart sags below the ellipsoid by g^2 / (8 R) (2 m for g = 10 km).

Velocity is v times the unit vector of the current chord (ECEF); the Doppler shift at a
receiver follows from the range rate d' = (p_tx - p_rx) . v_tx / |p_tx - p_rx|::

    f_D = -f d' / c = v cos(theta) / lambda

(theta: angle between the velocity and the direction from the transmitter to the
receiver; approaching gives f_D > 0).

Schedule
--------
A periodic on/off key: on while (t - offset) mod period < on_s. Bursts (a repeater
answering, a digital burst every few seconds) and duty cycles are both this.
"""

from __future__ import annotations

from typing import Self

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .propagation import geodetic_to_ecef

__all__ = ["ScheduleSpec", "Trajectory", "TrajectorySpec", "Waypoint"]


class Waypoint(BaseModel):
    """A WGS84 point of a route (alt above the ellipsoid)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat_deg: float = Field(ge=-90.0, le=90.0)
    lon_deg: float = Field(ge=-180.0, le=180.0)
    alt_m: float = 0.0


class TrajectorySpec(BaseModel):
    """A route: waypoints travelled at ``speed_mps`` (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    waypoints: list[Waypoint] = Field(min_length=2)
    speed_mps: float = Field(gt=0.0, le=400.0)
    loop: bool = False


class ScheduleSpec(BaseModel):
    """Periodic on/off keying: on while (t - offset_s) mod period_s < on_s.

    The carrier is keyed with raised-cosine edges of ``rise_s`` inside the on time, so the
    keyed signal stays band-limited to ~1 / rise_s (a hard gate sampled at the receivers'
    delayed instants would put each receiver's edge on its own sample grid and bias its
    time of arrival by up to a sample). With p = (t - offset_s) mod period_s::

        g(p) = r(p / t_r) r((on_s - p) / t_r)  for 0 <= p <= on_s, else 0
        r(x) = (1 - cos(pi min(max(x, 0), 1))) / 2

    ``rise_s = 0`` keys a hard rectangle. :meth:`is_on` is the key state (the nominal
    on/off), :meth:`envelope` the amplitude g.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    period_s: float = Field(gt=0.0)
    on_s: float = Field(gt=0.0)
    offset_s: float = 0.0
    rise_s: float = Field(default=0.005, ge=0.0)

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.on_s > self.period_s:
            raise ValueError("on_s must not exceed period_s")
        if 2.0 * self.rise_s > self.on_s:
            raise ValueError("rise_s must be at most half of on_s")
        return self

    def _phase_s(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.float64]:
        period_ns = round(self.period_s * 1e9)
        base_s = ((int(t0_ns) - round(self.offset_s * 1e9)) % period_ns) * 1e-9
        return np.mod(base_s + np.asarray(offset_s, dtype=np.float64), self.period_s)

    def is_on(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.bool_]:
        """Key state at t = t0 + offset (Unix time), exact for |offset| << 1e6 s."""
        return np.asarray(self._phase_s(t0_ns, offset_s) < self.on_s)

    def envelope(self, t0_ns: int, offset_s: ArrayLike) -> NDArray[np.float64]:
        """Amplitude g at t = t0 + offset: 1 inside the on time, raised-cosine edges, 0 off."""
        p = self._phase_s(t0_ns, offset_s)
        if self.rise_s == 0.0:
            return (p < self.on_s).astype(np.float64)
        x_up = np.clip(p / self.rise_s, 0.0, 1.0)
        x_dn = np.clip((self.on_s - p) / self.rise_s, 0.0, 1.0)
        return 0.25 * (1.0 - np.cos(np.pi * x_up)) * (1.0 - np.cos(np.pi * x_dn))


class Trajectory:
    """Runtime route of a :class:`TrajectorySpec`."""

    def __init__(self, spec: TrajectorySpec) -> None:
        self.spec = spec
        w = spec.waypoints
        self.ecef_m = geodetic_to_ecef(
            [p.lat_deg for p in w], [p.lon_deg for p in w], [p.alt_m for p in w]
        ).reshape(len(w), 3)
        seg = np.diff(self.ecef_m, axis=0)
        self.seg_len_m = np.linalg.norm(seg, axis=1)
        if np.any(self.seg_len_m <= 0.0):
            raise ValueError("trajectory: consecutive waypoints must differ")
        self.unit = seg / self.seg_len_m[:, None]
        self.cum_m = np.concatenate([[0.0], np.cumsum(self.seg_len_m)])
        self.length_m = float(self.cum_m[-1])
        n_trip = 1 if spec.loop else 2
        self.period_ns = max(1, round(n_trip * self.length_m / spec.speed_mps * 1e9))

    def state(self, t_ns: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """ECEF position (m) and velocity (m/s) at Unix times t_ns (int ns), each (..., 3)."""
        t = np.asarray(t_ns, dtype=np.int64)
        s = (np.mod(t, self.period_ns).astype(np.float64) * 1e-9) * self.spec.speed_mps
        sign = np.ones_like(s)
        if not self.spec.loop:
            back = s > self.length_m
            s = np.where(back, 2.0 * self.length_m - s, s)
            sign = np.where(back, -1.0, 1.0)
        s = np.clip(s, 0.0, self.length_m)
        i = np.clip(np.searchsorted(self.cum_m, s, side="right") - 1, 0, self.seg_len_m.size - 1)
        pos = self.ecef_m[i] + (s - self.cum_m[i])[..., None] * self.unit[i]
        vel = (sign * self.spec.speed_mps)[..., None] * self.unit[i]
        return pos, vel
