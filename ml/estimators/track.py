r"""Tracking one transmitter through a time series of position fixes (Kalman filter, RTS smoother).

A handheld transmitter carried around (POWDER) or a vehicle is heard again and again; each
observation gives a fix ``z_k`` with covariance ``R_k`` (from an estimator or the learned
model). Fusing consecutive fixes with a motion model removes much of the per-fix noise — the
classical remedy when single fixes are noisy and the target moves slowly against the rate
of fixes.

Model (nearly constant velocity, continuous white-noise acceleration; Bar-Shalom, Li,
Kirubarajan, *Estimation with Applications to Tracking and Navigation*, 2001, §6.2.2)
-------------------------------------------------------------------------------------
State ``x = (e, n, v_e, v_n)`` in metres and m/s. Between fixes ``Δt`` apart

.. math::
    x_k = F x_{k-1} + w_k,\quad
    F = \begin{pmatrix} I & Δt\,I \\ 0 & I\end{pmatrix},\quad
    Q = q \begin{pmatrix} Δt^3/3\,I & Δt^2/2\,I \\ Δt^2/2\,I & Δt\,I \end{pmatrix},

with ``q`` the acceleration power spectral density in m²/s³, and ``z_k = H x_k + v_k``,
``H = (I\ 0)``, ``v_k ~ N(0, R_k)``. The filter is the Kalman filter (causal: the estimate at
``t_k`` uses fixes up to ``t_k``); the smoother is Rauch–Tung–Striebel (uses the whole track,
for offline evaluation or a fixed-lag consumer). A gap longer than ``max_gap_s`` starts a new
track: the state is re-initialised from the fix, with velocity variance ``v0_ms²``.

Innovation gating: a fix whose squared Mahalanobis innovation ``νᵀS⁻¹ν`` exceeds ``gate`` is
not fused (the prediction stands), so one wild fix does not drag the track; ``gate = inf``
disables it. After ``max_gated`` (3) rejected fixes in a row the track restarts at the newest
fix, so a track that has lost its transmitter recovers.

:class:`KalmanTracker` is the filter as a streaming object (state kept between fixes,
``reset()``, ``to_dict``/``from_dict`` for a changelogged table); :func:`track_positions`
runs it over an array of fixes and adds the smoother.

The covariances are exact under the model: they assume independent fix errors. Errors of a
fingerprint or learned estimator are correlated along a path (the same building shadows
consecutive fixes), so the stated covariance is then too small; evaluate coverage and
recalibrate on held-out tracks (:func:`heimdall.ml.evaluation.metrics.fit_covariance_calibration`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["KalmanTracker", "TrackConfig", "track_positions"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrackConfig:
    """Motion model and track management.

    Attributes
    ----------
    accel_psd_m2_s3 : float
        ``q``: power spectral density of the white acceleration, m²/s³. A walker changing
        speed and heading by ~1 m/s over ~10 s has q ≈ 0.1; a car ~1–10.
    max_gap_s : float
        A longer gap between fixes starts a new track.
    v0_ms : float
        Standard deviation of the unknown initial velocity, m/s.
    gate : float
        Innovation gate on ``νᵀS⁻¹ν`` (χ²₂; 13.8 is the 99.9 % point); ``inf`` disables.
    smooth : bool
        Rauch–Tung–Striebel smoothing over each track (False: causal filter only).
    """

    accel_psd_m2_s3: float = 0.1
    max_gap_s: float = 60.0
    v0_ms: float = 5.0
    gate: float = float("inf")
    smooth: bool = True

    def __post_init__(self) -> None:
        if not self.accel_psd_m2_s3 > 0:
            raise ValueError(f"accel_psd_m2_s3 must be > 0, got {self.accel_psd_m2_s3}")
        if not self.max_gap_s > 0:
            raise ValueError(f"max_gap_s must be > 0, got {self.max_gap_s}")
        if not self.v0_ms > 0:
            raise ValueError(f"v0_ms must be > 0, got {self.v0_ms}")
        if not self.gate > 0:
            raise ValueError(f"gate must be > 0, got {self.gate}")


def _transition(dt: float, q: float) -> tuple[FloatArray, FloatArray]:
    """``F`` and ``Q`` of the nearly-constant-velocity model for a step ``dt`` (module notes)."""
    eye = np.eye(2)
    f = np.block([[eye, dt * eye], [np.zeros((2, 2)), eye]])
    qm = q * np.block([[dt**3 / 3.0 * eye, dt**2 / 2.0 * eye], [dt**2 / 2.0 * eye, dt * eye]])
    return f, qm


def _sorted_times(t_s: npt.ArrayLike) -> FloatArray:
    """``t_s`` as a 1-D float array; ValueError unless it is non-decreasing."""
    t = np.asarray(t_s, dtype=float)
    if t.ndim != 1:
        raise ValueError(f"t_s must be 1-D, got shape {t.shape}")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("t_s must be sorted (non-decreasing)")
    return t


class KalmanTracker:
    """The causal filter of the module notes, one fix at a time (a streaming object).

    Keeps the state between calls; :meth:`to_dict` / :meth:`from_dict` carry it through a
    changelogged table, and :meth:`reset` forgets it. Fixes must come in time order: an
    older fix than the last one raises ``ValueError`` (a stream skips it).

    After ``max_gated`` consecutive fixes rejected by the gate the track restarts at the
    newest fix: the transmitter has jumped (or the track was wrong), and a filter that only
    ever rejects would never recover.
    """

    def __init__(self, config: TrackConfig | None = None, max_gated: int = 3) -> None:
        self.config = config or TrackConfig()
        self.max_gated = max_gated
        self.reset()

    def reset(self) -> None:
        """Forget the track; the next fix starts a new one."""
        self.t_s: float | None = None
        self.x = np.zeros(4)
        self.p = np.zeros((4, 4))
        self.n_fixes = 0
        self.n_gated = 0
        #: ``(x, P, F)`` predicted for the last fix before it was fused; None when that fix
        #: started the track (what the RTS smoother of :func:`track_positions` needs).
        self.prediction: tuple[FloatArray, FloatArray, FloatArray] | None = None

    def _start(self, t_s: float, z: FloatArray, r: FloatArray) -> None:
        self.t_s = t_s
        self.x = np.r_[z, 0.0, 0.0]
        self.p = np.zeros((4, 4))
        self.p[:2, :2] = r
        self.p[2:, 2:] = self.config.v0_ms**2 * np.eye(2)
        self.n_fixes, self.n_gated = 1, 0
        self.prediction = None

    def predict(self, t_s: float) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Predicted state and covariance at ``t_s`` (≥ the last fix), and the transition F."""
        if self.t_s is None:
            raise ValueError("no track yet")
        f, q = _transition(t_s - self.t_s, self.config.accel_psd_m2_s3)
        return f @ self.x, f @ self.p @ f.T + q, f

    def update(
        self, t_s: float, mean_m: npt.ArrayLike, cov_m2: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray, bool]:
        """Fuse one fix; returns the filtered position (2,), covariance (2, 2), and whether
        the fix was fused (False: gated out, the prediction stands)."""
        z = np.asarray(mean_m, dtype=float).reshape(2)
        r = np.asarray(cov_m2, dtype=float).reshape(2, 2)
        if self.t_s is not None and t_s < self.t_s:
            raise ValueError(f"fix at {t_s} s is older than the track's last fix at {self.t_s} s")
        if self.t_s is None or t_s - self.t_s > self.config.max_gap_s:
            self._start(t_s, z, r)
            return self.x[:2].copy(), self.p[:2, :2].copy(), True
        x, p, _ = self.prediction = self.predict(t_s)
        h = np.hstack([np.eye(2), np.zeros((2, 2))])
        s = h @ p @ h.T + r
        nu = z - h @ x
        fused = float(nu @ np.linalg.solve(s, nu)) <= self.config.gate
        if fused:
            gain = p @ h.T @ np.linalg.inv(s)
            x = x + gain @ nu
            ikh = np.eye(4) - gain @ h
            p = ikh @ p @ ikh.T + gain @ r @ gain.T  # Joseph form: stays symmetric PSD
            self.n_gated = 0
            self.n_fixes += 1
        else:
            self.n_gated += 1
            if self.n_gated >= self.max_gated:
                self._start(t_s, z, r)
                return self.x[:2].copy(), self.p[:2, :2].copy(), True
        self.t_s, self.x, self.p = t_s, x, 0.5 * (p + p.T)
        return self.x[:2].copy(), self.p[:2, :2].copy(), fused

    def to_dict(self) -> dict[str, object]:
        """The state as plain JSON-able values."""
        return {
            "t_s": self.t_s,
            "x": self.x.tolist(),
            "p": self.p.tolist(),
            "n_fixes": self.n_fixes,
            "n_gated": self.n_gated,
        }

    @classmethod
    def from_dict(
        cls, state: Mapping[str, Any], config: TrackConfig | None = None, max_gated: int = 3
    ) -> KalmanTracker:
        """A tracker continuing from :meth:`to_dict`'s state."""
        trk = cls(config, max_gated)
        t = state.get("t_s")
        trk.t_s = None if t is None else float(t)
        trk.x = np.asarray(state["x"], dtype=float).reshape(4)
        trk.p = np.asarray(state["p"], dtype=float).reshape(4, 4)
        trk.n_fixes = int(state["n_fixes"])
        trk.n_gated = int(state["n_gated"])
        return trk


def track_positions(
    t_s: npt.ArrayLike,
    mean_m: npt.ArrayLike,
    cov_m2: npt.ArrayLike,
    config: TrackConfig | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Filtered (or smoothed) positions and covariances of a time-ordered series of fixes.

    Parameters
    ----------
    t_s : array_like, shape (N,)
        Fix times in seconds, non-decreasing.
    mean_m : array_like, shape (N, 2)
        Fixes (East, North) in metres.
    cov_m2 : array_like, shape (N, 2, 2)
        Their covariances in m².
    config : TrackConfig, optional

    Returns
    -------
    (mean, cov) : ndarray (N, 2), ndarray (N, 2, 2)
        The tracked position at every fix time.
    """
    cfg = config or TrackConfig()
    t = _sorted_times(t_s)
    z = np.asarray(mean_m, dtype=float).reshape(-1, 2)
    r = np.asarray(cov_m2, dtype=float).reshape(-1, 2, 2)
    if not (t.shape[0] == z.shape[0] == r.shape[0]):
        raise ValueError(f"lengths differ: t {t.shape[0]}, mean {z.shape[0]}, cov {r.shape[0]}")
    n = t.shape[0]
    x_f = np.zeros((n, 4))
    p_f = np.zeros((n, 4, 4))
    x_p = np.zeros((n, 4))
    p_p = np.zeros((n, 4, 4))
    f_k = np.zeros((n, 4, 4))
    start = np.zeros(n, dtype=bool)
    trk = KalmanTracker(cfg)
    for k in range(n):
        trk.update(float(t[k]), z[k], r[k])
        if trk.prediction is None:
            start[k] = True
        else:
            x_p[k], p_p[k], f_k[k] = trk.prediction
        x_f[k], p_f[k] = trk.x, trk.p
    if not cfg.smooth:
        return x_f[:, :2].copy(), p_f[:, :2, :2].copy()
    x_s, p_s = x_f.copy(), p_f.copy()
    for k in range(n - 2, -1, -1):
        if start[k + 1]:
            continue
        c = p_f[k] @ f_k[k + 1].T @ np.linalg.inv(p_p[k + 1])
        x_s[k] = x_f[k] + c @ (x_s[k + 1] - x_p[k + 1])
        p = p_f[k] + c @ (p_s[k + 1] - p_p[k + 1]) @ c.T
        p_s[k] = 0.5 * (p + p.T)
    return x_s[:, :2].copy(), p_s[:, :2, :2].copy()
