r"""Baselines on POWDER: k-NN RSS fingerprinting and log-distance RSS maximum likelihood.

k-NN fingerprint
----------------
Each training sample is a fingerprint :math:`f \in \mathbb R^F`, the RSS of the F fixed
receivers with *no reading* written as −101 dBm (the README's reference protocol — here a
deliberate *feature* choice: which receivers heard the transmission carries information on
where it is). A query :math:`f` takes the k training samples nearest in Euclidean distance
(ties broken by index) and predicts the mean of their positions

.. math:: \hat x = \frac1k \sum_{j \in N_k(f)} x_j,\qquad
          \hat\Sigma = s \Big(\frac1k \sum_{j \in N_k(f)} (x_j - \hat x)(x_j - \hat x)^T
          + \sigma_0^2 I\Big),

(optionally with inverse-squared-distance weights, and with the shuttles' RSS columns as
extra fingerprint dimensions), the covariance being the neighbours' spread plus a floor
:math:`\sigma_0` (the spread of k nearly coincident neighbours is not a credible
uncertainty), then recalibrated as :math:`s(\hat\Sigma + f^2 I)` with s and f fitted on a
held-out part of the training rows so that the 1σ/2σ ellipses cover 39 %/86 % there
(:func:`heimdall.ml.evaluation.metrics.fit_covariance_calibration`); the final model is then
refitted on all training rows.

Log-distance RSS ML
-------------------
On the training rows (truth known) the offsets of each receiver are fitted jointly with a
common log-distance law by linear least squares,

.. math:: P_{ij} = A - 10\,n\,\log_{10} d_{ij} + b_j + w_{ij},

(``d_ij`` the transmitter–receiver distance with a 1 m floor, ``b_j`` per receiver name,
:math:`\sum_j b_j = 0` by the minimum-norm solution). A test sample is then localised by
:func:`heimdall.ml.estimators.rss.estimate_rss` with ``calibration_db = −b_j`` (unknown
:math:`P_0` and exponent per sample, grid + multi-start ML over the receivers that have a
reading), ``sigma_db`` the training residual standard deviation. Receivers unseen in
training get offset 0. If the estimator fails (fewer than four readings, degenerate
geometry) the estimate falls back to the strongest receiver's position with a 1 km
standard deviation.

References
----------
- P. Bahl, V. N. Padmanabhan, "RADAR: an in-building RF-based user location and tracking
  system", IEEE INFOCOM 2000 (k-NN in signal space).
- N. Patwari et al., "Relative location estimation in wireless sensor networks", IEEE Trans.
  Signal Process. 51(8), 2003 (log-distance model).
- F. Mitchell et al., IEEE SECON 2023 (the data set and its evaluation protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from heimdall.core.errors import EstimationError
from heimdall.ml.estimators.rss import Loss, estimate_rss
from heimdall.ml.evaluation.metrics import fit_covariance_calibration
from heimdall.ml.powder.data import MISSING_RSS_DBM, PowderSamples

__all__ = [
    "KnnFingerprint",
    "RssLogDistance",
    "random_holdout",
    "rss_holdout_calibration",
    "spatial_holdout",
]

FloatArray = npt.NDArray[np.float64]


def random_holdout(n: int, fraction: float, seed: int) -> tuple[npt.NDArray[np.int64], ...]:
    """Random (fit, held-out) index split of ``range(n)`` with ``fraction`` held out."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    m = max(1, round(fraction * n))
    return np.sort(perm[m:]).astype(np.int64), np.sort(perm[:m]).astype(np.int64)


def _knn_query(
    train: FloatArray, query: FloatArray, k: int, block: int = 512
) -> npt.NDArray[np.int64]:
    """Indices (m, k) of the k nearest training rows (Euclidean), stable order of ties."""
    out = np.empty((query.shape[0], k), dtype=np.int64)
    tn = (train**2).sum(axis=1)
    for s in range(0, query.shape[0], block):
        q = query[s : s + block]
        d2 = (q**2).sum(axis=1)[:, None] + tn[None, :] - 2.0 * q @ train.T
        d2 = np.maximum(d2, 0.0)
        idx = np.argsort(d2, axis=1, kind="stable")[:, :k]
        out[s : s + block] = idx
    return out


def spatial_holdout(
    tx_enu: FloatArray, fraction: float, seed: int, cell_m: float = 200.0
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(fit, held-out) indices holding out whole square cells of transmitter positions.

    Cells of side ``cell_m`` are shuffled and taken whole until at least ``fraction`` of the
    rows are held out — a validation of spatial generalisation like ``grid_test``.
    """
    cells = np.floor(np.asarray(tx_enu, float) / cell_m).astype(np.int64)
    keys, inv = np.unique(cells, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    rng = np.random.default_rng(seed)
    order = rng.permutation(keys.shape[0])
    counts = np.bincount(inv, minlength=keys.shape[0])
    want = fraction * tx_enu.shape[0]
    held: list[int] = []
    total = 0
    for c in order:
        if total >= want:
            break
        held.append(int(c))
        total += int(counts[c])
    is_held = np.isin(inv, held)
    return np.flatnonzero(~is_held).astype(np.int64), np.flatnonzero(is_held).astype(np.int64)


@dataclass
class KnnFingerprint:
    """k-NN RSS fingerprinting with a calibrated neighbour-spread covariance (module notes).

    Parameters
    ----------
    k : int
        Neighbours (README reference: 5).
    missing_dbm : float
        Value written for "no reading" in the fingerprint (−101 as in the data set).
    floor_m : float
        σ₀ added to the neighbour spread, m.
    holdout_fraction : float
        Part of the training rows used to fit the covariance scale (0 disables: s = 1).
    seed : int
        Seed of the hold-out draw.
    holdout : {"random", "spatial"}
        Random rows, or whole cells of transmitter positions (for spatial generalisation,
        like ``grid_test``).
    cell_m : float
        Cell side of the spatial hold-out, m.
    include_mobile : bool
        Also use the shuttle receivers' RSS columns as fingerprint dimensions (their
        positions are not used). Off in the README's reference.
    weighting : {"uniform", "inverse_distance2"}
        Neighbour weights ``w_j`` in the mean and spread: equal (reference), or
        ``1 / (δ_j² + 10⁻⁶)`` with ``δ_j`` the fingerprint distance in dB.
    """

    k: int = 5
    missing_dbm: float = MISSING_RSS_DBM
    floor_m: float = 10.0
    holdout_fraction: float = 0.2
    seed: int = 0
    holdout: Literal["random", "spatial"] = "random"
    cell_m: float = 200.0
    include_mobile: bool = False
    weighting: Literal["uniform", "inverse_distance2"] = "uniform"
    names: tuple[str, ...] = field(default=(), init=False)
    cov_scale: float = field(default=1.0, init=False)
    cov_floor_m2: float = field(default=0.0, init=False)
    _x: FloatArray = field(default_factory=lambda: np.zeros((0, 0)), init=False, repr=False)
    _y: FloatArray = field(default_factory=lambda: np.zeros((0, 2)), init=False, repr=False)

    def fit(self, samples: PowderSamples, names: Sequence[str] | None = None) -> KnnFingerprint:
        """Store the fingerprints of ``samples`` (fixed receivers, or ``names``) and fit s."""
        if samples.tx_enu is None:
            raise ValueError("k-NN needs labelled training samples")
        if names is not None:
            self.names = tuple(names)
        else:
            self.names = samples.rx_names if self.include_mobile else samples.fixed_names
        x = samples.fixed_rss_matrix(self.names, self.missing_dbm)
        y = np.asarray(samples.tx_enu, dtype=float)
        self.cov_scale, self.cov_floor_m2 = 1.0, 0.0
        if self.holdout_fraction > 0.0 and len(samples) > 5 * self.k:
            if self.holdout == "spatial":
                fit_i, ho_i = spatial_holdout(y, self.holdout_fraction, self.seed, self.cell_m)
            else:
                fit_i, ho_i = random_holdout(len(samples), self.holdout_fraction, self.seed)
            self._x, self._y = x[fit_i], y[fit_i]
            mu, cov = self._predict_matrix(x[ho_i])
            self.cov_scale, self.cov_floor_m2 = fit_covariance_calibration(mu - y[ho_i], cov)
        self._x, self._y = x, y
        return self

    def _predict_matrix(self, xq: FloatArray) -> tuple[FloatArray, FloatArray]:
        k = min(self.k, self._x.shape[0])
        idx = _knn_query(self._x, xq, k)
        nb = self._y[idx]  # (m, k, 2)
        if self.weighting == "uniform":
            w = np.full(idx.shape, 1.0 / k)
        else:
            d2 = ((self._x[idx] - xq[:, None, :]) ** 2).sum(axis=2)
            w = 1.0 / (d2 + 1e-6)
            w /= w.sum(axis=1, keepdims=True)
        mu = (w[..., None] * nb).sum(axis=1)
        d = nb - mu[:, None, :]
        cov = np.einsum("mk,mki,mkj->mij", w, d, d)
        cov += (self.floor_m**2) * np.eye(2)[None]
        return mu, self.cov_scale * (cov + self.cov_floor_m2 * np.eye(2)[None])

    def predict(self, samples: PowderSamples) -> tuple[FloatArray, FloatArray]:
        """Positions (n, 2) and covariances (n, 2, 2) in the samples' ENU frame, m / m²."""
        if self._x.shape[0] == 0:
            raise RuntimeError("fit() first")
        return self._predict_matrix(samples.fixed_rss_matrix(self.names, self.missing_dbm))


@dataclass
class RssLogDistance:
    """Log-distance model with per-receiver offsets + per-sample RSS ML (module notes).

    Parameters
    ----------
    include_mobile : bool
        Use the shuttle receivers too (one offset per shuttle name).
    loss : {"linear", "soft_l1", "huber"}
        Loss of :func:`estimate_rss`.
    fallback_sigma_m : float
        Standard deviation of the fallback estimate when the estimator fails, m.
    """

    include_mobile: bool = False
    loss: Loss = "linear"
    fallback_sigma_m: float = 1000.0
    offsets_db: dict[str, float] = field(default_factory=dict, init=False)
    exponent: float = field(default=float("nan"), init=False)
    intercept_db: float = field(default=float("nan"), init=False)
    sigma_db: float = field(default=float("nan"), init=False)
    n_failed: int = field(default=0, init=False)

    def _use(self, samples: PowderSamples) -> npt.NDArray[np.bool_]:
        keep = samples.mask.copy()
        if not self.include_mobile:
            keep &= ~samples.is_mobile[None, :]
        return keep

    def fit(self, samples: PowderSamples) -> RssLogDistance:
        """Least-squares fit of (A, n, b_j) on labelled samples."""
        if samples.tx_enu is None:
            raise ValueError("fitting offsets needs labelled samples")
        keep = self._use(samples)
        ii, jj = np.nonzero(keep)
        d = np.linalg.norm(samples.rx_enu[ii, jj] - samples.tx_enu[ii], axis=1)
        lg = -10.0 * np.log10(np.maximum(d, 1.0))
        p = samples.rss_dbm[ii, jj]
        cols = np.unique(jj)
        pos = {int(c): q for q, c in enumerate(cols)}
        a = np.zeros((ii.size, 2 + cols.size))
        a[:, 0] = 1.0
        a[:, 1] = lg
        a[np.arange(ii.size), 2 + np.array([pos[int(j)] for j in jj])] = 1.0
        # remove the constant/offsets degeneracy explicitly: offsets sum to zero
        z = np.zeros((1, a.shape[1]))
        z[0, 2:] = 1.0
        sol, *_ = np.linalg.lstsq(np.vstack([a, 1e3 * z]), np.r_[p, 0.0], rcond=None)
        res = p - a @ sol
        self.intercept_db = float(sol[0])
        self.exponent = float(sol[1])
        self.sigma_db = float(np.sqrt(np.mean(res**2)))
        self.offsets_db = {samples.rx_names[int(c)]: float(sol[2 + q]) for q, c in enumerate(cols)}
        return self

    def predict(self, samples: PowderSamples) -> tuple[FloatArray, FloatArray]:
        """Positions (n, 2) and covariances (n, 2, 2), m / m²."""
        if not self.offsets_db:
            raise RuntimeError("fit() first")
        keep = self._use(samples)
        n = len(samples)
        mu = np.zeros((n, 2))
        cov = np.zeros((n, 2, 2))
        cal_col = np.array([-self.offsets_db.get(nm, 0.0) for nm in samples.rx_names])
        self.n_failed = 0
        for i in range(n):
            j = np.flatnonzero(keep[i])
            rx = samples.rx_enu[i, j]
            p = samples.rss_dbm[i, j]
            try:
                est = estimate_rss(
                    rx, p, sigma_db=self.sigma_db, calibration_db=cal_col[j], loss=self.loss
                )
                mu[i] = (est.east_m, est.north_m)
                cov[i] = est.cov_en
            except EstimationError:
                self.n_failed += 1
                if j.size:
                    mu[i] = rx[int(np.argmax(p + cal_col[j]))]
                cov[i] = self.fallback_sigma_m**2 * np.eye(2)
        return mu, cov


def rss_holdout_calibration(
    samples: PowderSamples,
    holdout: Literal["random", "spatial"] = "random",
    *,
    fraction: float = 0.2,
    seed: int = 0,
    cell_m: float = 200.0,
) -> tuple[float, float]:
    r"""``(s, f²)`` of :math:`s(\Sigma + f^2 I)` for the RSS estimator's Gauss–Newton
    covariance, fitted on a hold-out of ``samples`` (the k-NN's kind of hold-out) predicted
    by the estimator fitted on the rest
    (:func:`~heimdall.ml.evaluation.metrics.fit_covariance_calibration`). The Jacobian
    covariance knows only the shadowing's σ, not the law's misfit nor the estimator's
    threshold regime, so it is too small on real data (issue 14).
    """
    if samples.tx_enu is None:
        raise ValueError("the RSS calibration needs labelled samples")
    y = np.asarray(samples.tx_enu, dtype=float)
    if holdout == "spatial":
        fit_i, ho_i = spatial_holdout(y, fraction, seed, cell_m)
    else:
        fit_i, ho_i = random_holdout(len(samples), fraction, seed)
    mu, cov = RssLogDistance().fit(samples.subset(fit_i)).predict(samples.subset(ho_i))
    ok = np.all(np.isfinite(mu), axis=1) & np.all(np.isfinite(cov), axis=(1, 2))
    return fit_covariance_calibration(mu[ok] - y[ho_i][ok], cov[ok])
