"""Receiver clocks: what a receiver believes the time is, and when it really samples.

Two oscillators matter, and they are modelled separately:

- the **sample clock**, off by eps = ``sample_clock_ppm`` * 1e-6: the receiver's k-th
  sample after a reference instant t_ref is taken at the true time
  t_ref + k / (fs (1 + eps)). A chunk that the receiver's sample counter places at the
  nominal time t (its k-th chunk, t = t_ref + k N / fs) therefore really starts at::

      T(t) = t_ref + (t - t_ref) / (1 + eps)

- the **timestamp** it reports for a chunk, t_report (its belief of T), by clock kind:

  ===========  ===================================================================
  ``ideal``    t_report = T
  ``gps``      t_report = T + j, j ~ N(0, jitter_ns^2) i.i.d. per chunk (a GPS-
               disciplined 1PPS: tens of ns [1]_)
  ``ntp``      t_report = T + o(T), o(t) = o0 + sum_i a_i sin(2 pi t / P_i + phi_i):
               a fixed offset o0 ~ N(0, offset_ms^2) plus a slow wander of RMS
               ``wander_ms`` (4 sinusoids, periods log-uniform in
               [P / 3, 3 P], P = ``wander_period_s``) — ms-level and slowly
               varying, as NTP over the internet [2]_
  ``free``     t_report = t + o0: the free-running receiver counts samples from a
               time set (with error o0) at t_ref, so its belief drifts from the
               truth as t - T = (t - t_ref) eps / (1 + eps) ~ eps (t - t_ref)
  ===========  ===================================================================

Everything is a pure function of (seed, receiver, t): the jitter is drawn by a
counter-based generator keyed on the receiver with the chunk's nominal time as counter.

References
----------
.. [1] D. W. Allan, N. Ashby, C. C. Hodge, "The science of timekeeping", HP Application
   Note 1289, 1997.
.. [2] D. L. Mills, *Computer Network Time Synchronization*, 2nd ed., CRC Press, 2011.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ClockSpec", "ReceiverClock"]

_U64 = 1 << 64


class ClockSpec(BaseModel):
    """A receiver's time source (see the module docstring).

    Attributes
    ----------
    kind : {"ideal", "gps", "ntp", "free"}
    jitter_ns : float
        GPS timestamp jitter (std), ns.
    offset_ms : float
        NTP: std of the fixed offset o0, ms. Free: std of the initial setting error, ms.
    wander_ms : float
        NTP: RMS of the slow wander, ms.
    wander_period_s : float
        NTP: typical period of the wander, s.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["ideal", "gps", "ntp", "free"] = "ideal"
    jitter_ns: float = Field(default=30.0, ge=0.0)
    offset_ms: float = Field(default=2.0, ge=0.0)
    wander_ms: float = Field(default=1.0, ge=0.0)
    wander_period_s: float = Field(default=300.0, gt=0.0)

    @property
    def source(self) -> str:
        """The ``ClockSource`` value reported on the wire (``ideal`` reports as gps)."""
        return "gps" if self.kind == "ideal" else self.kind


class ReceiverClock:
    """Runtime clock of one receiver.

    Parameters
    ----------
    spec : ClockSpec
    sample_clock_ppm : float
        Sample-clock error, ppm (eps = ppm * 1e-6).
    seed : numpy.random.SeedSequence
        Draws the offsets, wander and the jitter key.
    t_ref_ns : int
        Reference instant t_ref (when the receiver's counter and clock were set).
    """

    def __init__(
        self,
        spec: ClockSpec,
        sample_clock_ppm: float,
        seed: np.random.SeedSequence,
        t_ref_ns: int,
    ) -> None:
        self.spec = spec
        self.eps = float(sample_clock_ppm) * 1e-6
        self.t_ref_ns = int(t_ref_ns)
        rng = np.random.default_rng(seed)
        self._key = rng.integers(0, 2**63, size=2, dtype=np.uint64)
        self.offset0_s = float(rng.normal(0.0, spec.offset_ms * 1e-3))
        periods = spec.wander_period_s * np.exp(rng.uniform(np.log(1 / 3), np.log(3.0), 4))
        self._wander_freq_hz = 1.0 / periods
        self._wander_phase = rng.uniform(0.0, 2.0 * np.pi, 4)
        # 4 sinusoids of amplitude a: RMS = a sqrt(4 / 2) = a sqrt 2
        self._wander_amp_s = spec.wander_ms * 1e-3 / math.sqrt(2.0)

    def true_start_ns(self, t_nominal_ns: int) -> int:
        """T(t) = t_ref + (t - t_ref) / (1 + eps): when the chunk really starts, ns."""
        t = int(t_nominal_ns)
        if self.eps == 0.0:
            return t
        return t - round((t - self.t_ref_ns) * self.eps / (1.0 + self.eps))

    def ntp_offset_s(self, t_ns: int) -> float:
        """o(t) of an NTP clock, s."""
        t_s = (int(t_ns) - self.t_ref_ns) * 1e-9
        wander = np.sin(2.0 * np.pi * self._wander_freq_hz * t_s + self._wander_phase)
        return self.offset0_s + self._wander_amp_s * float(wander.sum())

    def reported_ns(self, t_nominal_ns: int) -> int:
        """The timestamp the receiver writes on the chunk of nominal time t, ns."""
        kind = self.spec.kind
        true_ns = self.true_start_ns(t_nominal_ns)
        if kind == "ideal":
            return true_ns
        if kind == "gps":
            counter = np.array([0, int(t_nominal_ns) % _U64, 0, 0], dtype=np.uint64)
            rng = np.random.Generator(np.random.Philox(key=self._key, counter=counter))
            return true_ns + round(float(rng.normal(0.0, self.spec.jitter_ns)))
        if kind == "ntp":
            return true_ns + round(self.ntp_offset_s(true_ns) * 1e9)
        return int(t_nominal_ns) + round(self.offset0_s * 1e9)  # free
