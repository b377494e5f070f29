r"""Grid posterior of the transmitter position from RSS: receivers as places, not names.

Model
-----
Each reading follows the log-distance law of :class:`~heimdall.ml.powder.baselines.RssLogDistance`
(exponent n and per-receiver offsets :math:`b_j` fitted on the training rows by least
squares, :math:`b_j = 0` for a receiver never seen in training):

.. math:: P_{ij} - b_j = P_{0,i} - 10\,n\,\log_{10} d_j(x) + w_{ij},\qquad
          w_{ij} \sim \mathcal N(0, T\sigma^2),

with :math:`P_{0,i}` the row's unknown transmitted power (profiled out in closed form:
its least-squares value for a position x is the mean of :math:`P_{ij} - b_j + 10 n
\log_{10} d_j(x)`), σ the training residual and T ≥ 1 a temperature: shadowing along one
row is correlated, so the readings carry less information than independent ones would.
On a grid of candidate positions :math:`x_g` (side :attr:`RssGridPosterior.cell_m`, over
the training transmitters' box plus a margin) the posterior is

.. math:: p(x_g \mid P_i) \propto \pi(x_g)\,
          \exp\!\Big(-\frac{1}{2T\sigma^2} \sum_j r_{ij}(x_g)^2\Big),

with the prior π the training transmitters' positions histogrammed on the grid, smoothed
by a Gaussian of :attr:`RssGridPosterior.prior_blur_m`, mixed with a uniform share
:attr:`RssGridPosterior.prior_uniform` (transmitters are where people walk and drive; a
test place 100 m from every training place keeps a fair prior). The estimate is the
posterior mean and the covariance the posterior's, plus the cell's own variance
:math:`h^2/12` per axis; both use only the receivers that read, wherever they are, so a
receiver never seen in training contributes its place and a missing one costs only its
information.

Residual fields (:attr:`RssGridPosterior.residual_blur_m` > 0): buildings make a receiver's
departure from the law depend on the place. For each fixed receiver seen in training the
training residuals :math:`r_{ij} = P_{ij} - (A - 10 n \log_{10} d_{ij} + b_j)` are averaged
over places with a Gaussian kernel K (Nadaraya–Watson), shrunk towards 0 where few rows are
near by a pseudo-count κ (:attr:`RssGridPosterior.residual_shrink`, in rows at the kernel's
peak),

.. math:: \delta_j(x) = \frac{\sum_i K(x - x_i)\, r_{ij}}{\sum_i K(x - x_i) + \kappa K(0)},

and the mean model becomes the law plus :math:`\delta_j(x)`: learned shadows where the
training rows went, the plain law elsewhere and for a receiver never seen.

Self-calibration (:attr:`RssGridPosterior.self_calibrate`): a receiver without a fitted
offset gets one from the rows being localised (no truth needed): each row is first
localised without it, and its offset is the median over those rows of its residual
:math:`P_{ij} - \hat P_{0,i} + 10 n \log_{10} d_j(\hat x_i)` (the same definition as the
training fit's offsets).

References
----------
- N. Patwari et al., "Locating the nodes", IEEE Signal Process. Mag. 22(4), 2005 (RSS
  localisation, log-normal shadowing).
- N. Patwari, S. K. Kasera, "Temporal link signature measurements…" / F. Mitchell et al.,
  IEEE SECON 2023 (the POWDER data).
- C. M. Bishop, *Pattern Recognition and Machine Learning*, 2006, §2.5.1 (histogram and
  kernel density priors).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.ndimage import gaussian_filter

from heimdall.ml.powder.baselines import RssLogDistance
from heimdall.ml.powder.data import PowderSamples

__all__ = ["RssGridPosterior", "network_margin_m"]

FloatArray = npt.NDArray[np.float64]


def network_margin_m(samples: PowderSamples) -> float:
    r"""Half the larger side of the box of the fixed receivers that read, m.

    A search region drawn around the *training transmitters* misses a transmitter that goes
    where none went before; the receivers hear further than that. A network of radius R
    (half its box's larger side) is taken to hear transmitters up to R outside the box of
    the training transmitters: this margin depends on the receivers' places only, known
    before any test row.
    """
    fixed = samples.mask & ~samples.is_mobile[None, :]
    if not fixed.any():
        raise ValueError("no fixed receiver reads in these samples: no network margin")
    rx = samples.rx_enu[fixed]
    return float(0.5 * np.max(rx.max(axis=0) - rx.min(axis=0)))


@dataclass
class RssGridPosterior:
    r"""RSS grid posterior with fitted offsets and a prior of places (module notes).

    Parameters
    ----------
    cell_m : float
        Grid cell side, m.
    margin_m : float
        Margin around the training transmitters' bounding box, m.
    temperature : float
        T: the shadowing variance is Tσ².
    prior_blur_m : float
        Standard deviation of the Gaussian smoothing the training positions' histogram, m.
    prior_uniform : float
        Share of the uniform prior in the mixture, in [0, 1].
    include_mobile : bool
        Use the shuttles (positions per row, one offset per shuttle name).
    self_calibrate : bool
        Estimate the offsets of receivers unseen in training from the rows localised.
    residual_blur_m : float
        > 0: each fixed receiver seen in training also gets a residual field
        :math:`\delta_j(x)` (module notes), smoothed by a Gaussian of this standard
        deviation, m; 0: none.
    residual_shrink : float
        κ of the residual fields, in training rows: where fewer rows are near, the field
        shrinks towards 0.
    """

    cell_m: float = 25.0
    margin_m: float = 300.0
    temperature: float = 4.0
    prior_blur_m: float = 100.0
    prior_uniform: float = 0.1
    include_mobile: bool = True
    self_calibrate: bool = True
    residual_blur_m: float = 0.0
    residual_shrink: float = 1.0
    rss: RssLogDistance = field(default_factory=RssLogDistance, init=False)
    grid: FloatArray = field(default_factory=lambda: np.zeros((0, 2)), init=False)
    log_prior: FloatArray = field(default_factory=lambda: np.zeros(0), init=False)
    offsets_db: dict[str, float] = field(default_factory=dict, init=False)
    fields_db: dict[str, FloatArray] = field(default_factory=dict, init=False)

    def fit(self, samples: PowderSamples) -> RssGridPosterior:
        """Fit the law and offsets on labelled rows, and the grid and prior of places."""
        if samples.tx_enu is None:
            raise ValueError("the RSS grid posterior needs labelled training samples")
        self.rss = RssLogDistance(include_mobile=self.include_mobile).fit(samples)
        self.offsets_db = dict(self.rss.offsets_db)
        lo = samples.tx_enu.min(axis=0) - self.margin_m
        hi = samples.tx_enu.max(axis=0) + self.margin_m
        ex = np.arange(lo[0], hi[0] + self.cell_m, self.cell_m)
        ny = np.arange(lo[1], hi[1] + self.cell_m, self.cell_m)
        hist, _, _ = np.histogram2d(
            samples.tx_enu[:, 0], samples.tx_enu[:, 1],
            bins=[np.r_[ex - self.cell_m / 2, ex[-1] + self.cell_m / 2],
                  np.r_[ny - self.cell_m / 2, ny[-1] + self.cell_m / 2]],
        )  # fmt: skip
        dens = gaussian_filter(hist, self.prior_blur_m / self.cell_m, mode="constant")
        dens = dens / dens.sum()
        prior = (1.0 - self.prior_uniform) * dens + self.prior_uniform / dens.size
        gx, gy = np.meshgrid(ex, ny, indexing="ij")
        self.grid = np.c_[gx.ravel(), gy.ravel()]
        self.log_prior = np.log(prior.ravel())
        self.fields_db = {}
        if self.residual_blur_m > 0.0:
            edges = [np.r_[ex - self.cell_m / 2, ex[-1] + self.cell_m / 2],
                     np.r_[ny - self.cell_m / 2, ny[-1] + self.cell_m / 2]]  # fmt: skip
            self.fields_db = self._residual_fields(samples, edges)
        return self

    def _residual_fields(
        self, samples: PowderSamples, edges: list[FloatArray]
    ) -> dict[str, FloatArray]:
        """Kernel-smoothed training residuals of each fixed receiver on the grid (dB)."""
        assert samples.tx_enu is not None
        s = self.residual_blur_m / self.cell_m
        kappa = self.residual_shrink / (2.0 * np.pi * s * s)  # κ rows at the kernel's peak
        out: dict[str, FloatArray] = {}
        for j, name in enumerate(samples.rx_names):
            if samples.is_mobile[j] or name not in self.offsets_db:
                continue
            rows = np.flatnonzero(samples.mask[:, j])
            tx = samples.tx_enu[rows]
            d = np.linalg.norm(samples.rx_enu[rows, j] - tx, axis=1)
            law = self.rss.intercept_db - 10.0 * self.rss.exponent * np.log10(np.maximum(d, 1.0))
            res = samples.rss_dbm[rows, j] - law - self.offsets_db[name]
            num, _, _ = np.histogram2d(tx[:, 0], tx[:, 1], bins=edges, weights=res)
            den, _, _ = np.histogram2d(tx[:, 0], tx[:, 1], bins=edges)
            num = gaussian_filter(num, s, mode="constant")
            den = gaussian_filter(den, s, mode="constant")
            out[name] = (num / (den + kappa)).ravel()
        return out

    def _use(self, samples: PowderSamples) -> npt.NDArray[np.bool_]:
        keep = samples.mask.copy()
        if not self.include_mobile:
            keep &= ~samples.is_mobile[None, :]
        return keep

    def _cost(self, rx: FloatArray, y: FloatArray, delta: FloatArray | None) -> FloatArray:
        """Sum of squared residuals at every grid point, P0 profiled out (dB²); ``delta``
        (g, m): the receivers' residual fields, or None."""
        d = np.linalg.norm(self.grid[:, None, :] - rx[None, :, :], axis=2)
        lg = -10.0 * self.rss.exponent * np.log10(np.maximum(d, 1.0))  # (g, m)
        if delta is not None:
            lg = lg + delta
        p0 = (y[None, :] - lg).mean(axis=1)
        return np.asarray(((y[None, :] - lg - p0[:, None]) ** 2).sum(axis=1), dtype=float)

    def _moments(self, logp: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Mean and covariance (+ the cell's variance) of a log-density on the grid."""
        w = np.exp(logp - logp.max())
        w /= w.sum()
        mu = w @ self.grid
        dev = self.grid - mu
        return mu, (w[:, None] * dev).T @ dev + (self.cell_m**2 / 12.0) * np.eye(2)

    def predict(self, samples: PowderSamples) -> tuple[FloatArray, FloatArray]:
        """Posterior means (n, 2) and covariances (n, 2, 2), m / m²."""
        if self.grid.shape[0] == 0:
            raise RuntimeError("fit() first")
        return self.predict_temperatures(samples, (self.temperature,))[self.temperature]

    def _predict_with(
        self,
        samples: PowderSamples,
        keep: npt.NDArray[np.bool_],
        b: FloatArray,
        temperatures: tuple[float, ...] | None = None,
    ) -> dict[float, tuple[FloatArray, FloatArray]]:
        """Posterior moments per temperature (default: this model's) of every row."""
        temps = temperatures or (self.temperature,)
        n = len(samples)
        out = {t: (np.zeros((n, 2)), np.zeros((n, 2, 2))) for t in temps}
        var = self.rss.sigma_db**2
        fields = None
        if self.fields_db:
            zero = np.zeros(self.grid.shape[0])
            fields = np.stack([self.fields_db.get(nm, zero) for nm in samples.rx_names])
        for i in range(n):
            j = np.flatnonzero(keep[i])
            delta = None if fields is None else fields[j].T
            y = samples.rss_dbm[i, j] - b[j]
            cost = self._cost(samples.rx_enu[i, j], y, delta) if j.size else 0.0
            for t in temps:
                out[t][0][i], out[t][1][i] = self._moments(self.log_prior - cost / (2.0 * t * var))
        return out

    def predict_temperatures(
        self, samples: PowderSamples, temperatures: tuple[float, ...]
    ) -> dict[float, tuple[FloatArray, FloatArray]]:
        """:meth:`predict` for several temperatures at once (the grid costs are shared)."""
        keep = self._use(samples)
        offsets = dict(self.offsets_db)
        if self.self_calibrate:
            offsets.update(self._self_calibration(samples, keep))
        b = np.array([offsets.get(nm, 0.0) for nm in samples.rx_names])
        return self._predict_with(samples, keep, b, temperatures)

    def _self_calibration(
        self, samples: PowderSamples, keep: npt.NDArray[np.bool_]
    ) -> dict[str, float]:
        """Offsets of the receivers without a fitted one, from the rows themselves."""
        unknown = [
            j for j, nm in enumerate(samples.rx_names)
            if nm not in self.offsets_db and keep[:, j].any()
        ]  # fmt: skip
        if not unknown:
            return {}
        known = keep.copy()
        known[:, unknown] = False
        b = np.array([self.offsets_db.get(nm, 0.0) for nm in samples.rx_names])
        rows = np.flatnonzero(keep[:, unknown].any(axis=1) & (known.sum(axis=1) >= 3))
        out: dict[str, float] = {}
        if rows.size == 0:
            return out
        sub = samples.subset(rows)
        mu, _ = self._predict_with(sub, known[rows], b)[self.temperature]
        n = self.rss.exponent
        for j in unknown:
            res = []
            for k, i in enumerate(rows):
                if not keep[i, j]:
                    continue
                jj = np.flatnonzero(known[i])
                y = samples.rss_dbm[i, jj] - b[jj]
                d = np.linalg.norm(samples.rx_enu[i, jj] - mu[k], axis=1)
                p0 = np.mean(y + 10.0 * n * np.log10(np.maximum(d, 1.0)))
                dj = float(np.linalg.norm(samples.rx_enu[i, j] - mu[k]))
                res.append(samples.rss_dbm[i, j] - p0 + 10.0 * n * np.log10(max(dj, 1.0)))
            if res:
                out[samples.rx_names[j]] = float(np.median(res))
        return out
