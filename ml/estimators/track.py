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
disables it.

The covariances are exact under the model: they assume independent fix errors. Errors of a
fingerprint or learned estimator are correlated along a path (the same building shadows
consecutive fixes), so the stated covariance is then too small; evaluate coverage and
recalibrate on held-out tracks (:func:`heimdall.ml.evaluation.metrics.fit_covariance_calibration`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["TrackConfig", "track_positions", "track_segments"]

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


def track_segments(t_s: npt.ArrayLike, max_gap_s: float) -> npt.NDArray[np.int64]:
    """Track number of every fix: a new track starts where the time gap exceeds ``max_gap_s``.

    ``t_s`` must be non-decreasing.
    """
    t = np.asarray(t_s, dtype=float)
    if t.ndim != 1:
        raise ValueError(f"t_s must be 1-D, got shape {t.shape}")
    if t.size and np.any(np.diff(t) < 0):
        raise ValueError("t_s must be sorted (non-decreasing)")
    gaps = np.diff(t) > max_gap_s
    return np.concatenate([[0], np.cumsum(gaps)]).astype(np.int64) if t.size else t.astype(np.int64)


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
    t = np.asarray(t_s, dtype=float)
    z = np.asarray(mean_m, dtype=float).reshape(-1, 2)
    r = np.asarray(cov_m2, dtype=float).reshape(-1, 2, 2)
    if not (t.shape[0] == z.shape[0] == r.shape[0]):
        raise ValueError(f"lengths differ: t {t.shape[0]}, mean {z.shape[0]}, cov {r.shape[0]}")
    seg = track_segments(t, cfg.max_gap_s)
    n = t.shape[0]
    h = np.hstack([np.eye(2), np.zeros((2, 2))])
    x_f = np.zeros((n, 4))
    p_f = np.zeros((n, 4, 4))
    x_p = np.zeros((n, 4))
    p_p = np.zeros((n, 4, 4))
    f_k = np.zeros((n, 4, 4))
    for k in range(n):
        if k == 0 or seg[k] != seg[k - 1]:
            x = np.r_[z[k], 0.0, 0.0]
            p = np.zeros((4, 4))
            p[:2, :2] = r[k]
            p[2:, 2:] = cfg.v0_ms**2 * np.eye(2)
            x_p[k], p_p[k], f_k[k] = x, p, np.eye(4)
            x_f[k], p_f[k] = x, p
            continue
        f, q = _transition(t[k] - t[k - 1], cfg.accel_psd_m2_s3)
        x = f @ x_f[k - 1]
        p = f @ p_f[k - 1] @ f.T + q
        x_p[k], p_p[k], f_k[k] = x, p, f
        s = h @ p @ h.T + r[k]
        nu = z[k] - h @ x
        if float(nu @ np.linalg.solve(s, nu)) <= cfg.gate:
            gain = p @ h.T @ np.linalg.inv(s)
            x = x + gain @ nu
            ikh = np.eye(4) - gain @ h
            p = ikh @ p @ ikh.T + gain @ r[k] @ gain.T  # Joseph form: stays symmetric PSD
        x_f[k], p_f[k] = x, 0.5 * (p + p.T)
    if not cfg.smooth:
        return x_f[:, :2].copy(), p_f[:, :2, :2].copy()
    x_s, p_s = x_f.copy(), p_f.copy()
    for k in range(n - 2, -1, -1):
        if seg[k + 1] != seg[k]:
            continue
        c = p_f[k] @ f_k[k + 1].T @ np.linalg.inv(p_p[k + 1])
        x_s[k] = x_f[k] + c @ (x_s[k + 1] - x_p[k + 1])
        p = p_f[k] + c @ (p_s[k + 1] - p_p[k + 1]) @ c.T
        p_s[k] = 0.5 * (p + p.T)
    return x_s[:, :2].copy(), p_s[:, :2, :2].copy()
