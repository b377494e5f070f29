r"""SetNet: a permutation-invariant network from a variable set of receivers to a 2-D Gaussian.

Input
-----
A batch of B samples, each a set of up to R receivers padded to R, as three tensors:

* ``features`` — float32 (B, R, F) in the order :data:`FEATURES`: East and North of the
  receiver (m, divided by ``pos_scale_m``), RSS (``(dBm − rss_mean) / rss_std``), SNR
  (``(dB − snr_mean) / snr_std``) and its presence flag, a TDOA feature (``s / tdoa_scale``)
  and its presence flag. Absent optional features are 0 with flag 0.
* ``rx_id`` — int64 (B, R): receiver identity index; any value outside ``[0, n_ids)``
  (e.g. −1 for a receiver not seen in training) selects a shared learned "unknown"
  embedding, so sets from other deployments still run.
* ``mask`` — bool (B, R): True for a real receiver, False for padding.

Padded entries have no effect on the output (their features are replaced by 0 before use,
so even NaN padding is harmless, and attention/pooling weights on them are exactly 0).

Architecture (Set Transformer style, Lee et al. 2019)
-----------------------------------------------------
Per receiver :math:`z_j = \phi([f_j, \Delta_j, E(\mathrm{id}_j)])` with :math:`\Delta_j` the RSS
relative to the set's strongest reading (computed inside the network, so permutation
invariant), ``E`` the identity embedding and φ a 2-layer MLP; then L pre-norm
multi-head self-attention blocks over the set with masked softmax (equivariant); then
pooling by multi-head attention from one learned seed query, concatenated with the masked
mean (invariant); then an MLP ρ to five numbers
:math:`(\mu_e, \mu_n, a, c, b)`. The covariance is parametrised by its Cholesky factor

.. math:: L = \begin{pmatrix} \operatorname{softplus}(a) + \epsilon & 0 \\
                              c & \operatorname{softplus}(b) + \epsilon\end{pmatrix},\qquad
          \Sigma = s\,(L L^T)\,\text{pos\_scale}^2,

positive definite for any input (ε the floor, s a calibration factor stored in the model).

Training loss
-------------
The Gaussian negative log-likelihood of the truth y (constant dropped), in scaled units,

.. math:: \ell = \tfrac12 \lVert L^{-1}(y - \mu) \rVert^2 + \log L_{11} + \log L_{22},

(:func:`gaussian_nll`), optionally preceded by an MSE warm-up on μ.

Ensembles (:class:`SetNetEnsemble`) combine M members as the moment-matched mixture
:math:`\bar\mu = \frac1M\sum\mu_m`, :math:`\bar\Sigma = \frac1M\sum(\Sigma_m +
(\mu_m-\bar\mu)(\mu_m-\bar\mu)^T)` (Lakshminarayanan et al. 2017).

References
----------
- M. Zaheer et al., "Deep Sets", NeurIPS 2017.
- J. Lee et al., "Set Transformer: A Framework for Attention-based Permutation-Invariant
  Neural Networks", ICML 2019.
- B. Lakshminarayanan, A. Pritzel, C. Blundell, "Simple and Scalable Predictive Uncertainty
  Estimation using Deep Ensembles", NeurIPS 2017.
- D. A. Nix, A. S. Weigend, "Estimating the mean and variance of the target probability
  distribution", ICNN 1994 (Gaussian NLL training).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from heimdall.ml.models.spec import FEATURES, INPUT_NAMES, OUTPUT_NAMES, Normalisation

__all__ = [
    "FEATURES",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "Normalisation",
    "SetNet",
    "SetNetConfig",
    "SetNetEnsemble",
    "export_onnx",
    "gaussian_nll",
    "input_spec",
]

_NEG = -1.0e9


@dataclass(frozen=True)
class SetNetConfig:
    """Hyper-parameters of :class:`SetNet`."""

    n_ids: int = 40
    emb_dim: int = 16
    hidden: int = 64
    heads: int = 4
    layers: int = 2
    dropout: float = 0.0
    min_std: float = 0.002  # scaled units: 2 m at pos_scale 1 km
    norm: Normalisation = field(default_factory=Normalisation)


def _masked_softmax(scores: Tensor, key_mask: Tensor) -> Tensor:
    """Softmax over the last axis with masked keys given exactly zero weight."""
    s = torch.where(key_mask, scores, torch.full_like(scores, _NEG))
    w = torch.softmax(s, dim=-1)
    return torch.where(key_mask, w, torch.zeros_like(w))


class _MHA(nn.Module):
    """Multi-head attention with a key mask (explicit ops: exports cleanly to ONNX)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError("hidden must be divisible by heads")
        self.h = heads
        self.dk = dim // heads
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.o = nn.Linear(dim, dim)

    def forward(self, xq: Tensor, xkv: Tensor, key_mask: Tensor) -> Tensor:
        b, nq, d = xq.shape[0], xq.shape[1], xq.shape[2]
        nk = xkv.shape[1]
        q = self.q(xq).reshape(b, nq, self.h, self.dk).transpose(1, 2)
        kv = self.kv(xkv).reshape(b, nk, 2, self.h, self.dk).permute(2, 0, 3, 1, 4)
        k, v = kv[0], kv[1]
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dk)  # (b, h, nq, nk)
        w = _masked_softmax(scores, key_mask[:, None, None, :])
        out = (w @ v).transpose(1, 2).reshape(b, nq, d)
        return self.o(out)


class _Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.att = _MHA(dim, heads)
        self.n2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        h = self.n1(x)
        x = x + self.att(h, h, mask)
        return x + self.ff(self.n2(x))


class SetNet(nn.Module):
    """Set-to-Gaussian localiser (module notes). ``forward`` returns (mean m, cov m²)."""

    cov_scale: Tensor
    pos_scale: Tensor

    def __init__(self, config: SetNetConfig | None = None) -> None:
        super().__init__()
        cfg = config or SetNetConfig()
        self.config = cfg
        d = cfg.hidden
        self.emb = nn.Embedding(cfg.n_ids + 1, cfg.emb_dim)  # last row: "unknown"
        self.phi = nn.Sequential(
            nn.Linear(len(FEATURES) + 1 + cfg.emb_dim, d), nn.GELU(), nn.Linear(d, d)
        )
        self.blocks = nn.ModuleList(_Block(d, cfg.heads, cfg.dropout) for _ in range(cfg.layers))
        self.pool_norm = nn.LayerNorm(d)
        self.seed = nn.Parameter(torch.randn(1, 1, d) * 0.1)
        self.pool = _MHA(d, cfg.heads)
        self.rho = nn.Sequential(
            nn.Linear(2 * d, d), nn.GELU(), nn.Dropout(cfg.dropout), nn.Linear(d, 5)
        )
        self.register_buffer("cov_scale", torch.tensor(1.0))
        self.register_buffer("pos_scale", torch.tensor(float(cfg.norm.pos_scale_m)))

    def _ids(self, rx_id: Tensor) -> Tensor:
        n = self.config.n_ids
        unknown = (rx_id < 0) | (rx_id >= n)
        return torch.where(unknown, torch.full_like(rx_id, n), rx_id)

    def raw(self, features: Tensor, rx_id: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and Cholesky factor in scaled units, without calibration: (B, 2), (B, 2, 2)."""
        m = mask.to(torch.bool)
        x = torch.where(m[..., None], features, torch.zeros_like(features))
        rss = x[..., 2]
        top = torch.where(m, rss, torch.full_like(rss, _NEG)).amax(dim=1, keepdim=True)
        rel = torch.where(m, rss - top, torch.zeros_like(rss))
        e = self.emb(self._ids(torch.where(m, rx_id, torch.zeros_like(rx_id))))
        h = self.phi(torch.cat([x, rel[..., None], e], dim=-1))
        for blk in self.blocks:
            h = blk(h, m)
        h = self.pool_norm(h)
        pooled = self.pool(self.seed.expand(h.shape[0], 1, h.shape[2]), h, m)[:, 0]
        mf = m.to(h.dtype)[..., None]
        mean = (h * mf).sum(dim=1) / mf.sum(dim=1).clamp_min(1.0)
        out = self.rho(torch.cat([pooled, mean], dim=-1))
        mu = out[:, :2]
        eps = self.config.min_std
        l11 = F.softplus(out[:, 2]) + eps
        l22 = F.softplus(out[:, 4]) + eps
        l21 = out[:, 3]
        zero = torch.zeros_like(l11)
        chol = torch.stack([torch.stack([l11, zero], -1), torch.stack([l21, l22], -1)], -2)
        return mu, chol

    def forward(self, features: Tensor, rx_id: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Mean (B, 2) in m and calibrated covariance (B, 2, 2) in m², frame of the inputs."""
        mu, chol = self.raw(features, rx_id, mask)
        s = self.pos_scale
        cov = chol @ chol.transpose(-1, -2) * (s * s * self.cov_scale)
        return mu * s, cov


class SetNetEnsemble(nn.Module):
    """Moment-matched mixture of several :class:`SetNet` (module notes).

    The output covariance is ``cov_scale · (Σ̄ + cov_floor_m2 · I)`` — the calibration fitted
    after training (both buffers, so they travel with the weights and into ONNX).
    """

    cov_scale: Tensor
    cov_floor_m2: Tensor
    _eye: Tensor

    def __init__(self, members: list[SetNet]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        self.register_buffer("cov_scale", torch.tensor(1.0))
        self.register_buffer("cov_floor_m2", torch.tensor(0.0))
        self.register_buffer("_eye", torch.eye(2), persistent=False)

    def forward(self, features: Tensor, rx_id: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Mixture mean (B, 2), m, and calibrated covariance (B, 2, 2), m²."""
        outs = [mod(features, rx_id, mask) for mod in self.members]
        mus = torch.stack([o[0] for o in outs], 0)
        covs = torch.stack([o[1] for o in outs], 0)
        mu = mus.mean(0)
        d = mus - mu[None]
        cov = covs.mean(0) + (d[..., :, None] * d[..., None, :]).mean(0)
        return mu, (cov + self.cov_floor_m2 * self._eye) * self.cov_scale


def gaussian_nll(mu: Tensor, chol: Tensor, y: Tensor) -> Tensor:
    r"""Mean 2-D Gaussian NLL ``½‖L⁻¹(y − μ)‖² + log L₁₁ + log L₂₂`` (constant log 2π dropped)."""
    r = y - mu
    l11, l21, l22 = chol[:, 0, 0], chol[:, 1, 0], chol[:, 1, 1]
    z1 = r[:, 0] / l11
    z2 = (r[:, 1] - l21 * z1) / l22
    return (0.5 * (z1 * z1 + z2 * z2) + torch.log(l11) + torch.log(l22)).mean()


def input_spec(
    model: nn.Module,
    *,
    frame: dict[str, float],
    rx_names: dict[str, int] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """JSON-able description of the model's inputs and outputs for the model registry.

    Parameters
    ----------
    model : SetNet or SetNetEnsemble
    frame : dict
        The local ENU frame origin: ``{"lat0_deg", "lon0_deg", "alt0_m"}``.
    rx_names : dict, optional
        Receiver name → identity index used in training.
    extra : dict, optional
        Anything else to record (training data, metrics, calibration).
    """
    cfg: SetNetConfig = model.config  # type: ignore[assignment]
    spec: dict[str, Any] = {
        "format": "onnx",
        "model": type(model).__name__,
        "inputs": [
            {
                "name": "features",
                "dtype": "float32",
                "shape": ["batch", "receivers", len(FEATURES)],
                "feature_order": list(FEATURES),
            },
            {
                "name": "rx_id",
                "dtype": "int64",
                "shape": ["batch", "receivers"],
                "unknown": f"any value outside [0, {cfg.n_ids}) (use -1)",
            },
            {
                "name": "mask",
                "dtype": "bool",
                "shape": ["batch", "receivers"],
                "meaning": "True = real receiver, False = padding",
            },
        ],
        "outputs": [
            {
                "name": "mean_enu_m",
                "dtype": "float32",
                "shape": ["batch", 2],
                "meaning": "East, North in metres in the frame",
            },
            {
                "name": "cov_enu_m2",
                "dtype": "float32",
                "shape": ["batch", 2, 2],
                "meaning": "covariance of (East, North), m², calibrated",
            },
        ],
        "normalisation": asdict(cfg.norm),
        "feature_formulas": {
            "east": "east_m / pos_scale_m",
            "north": "north_m / pos_scale_m",
            "rss": "(rss_dbm - rss_mean_dbm) / rss_std_db",
            "snr": "(snr_db - snr_mean_db) / snr_std_db, 0 if absent",
            "has_snr": "1 if SNR present else 0",
            "tdoa": "tdoa_s / tdoa_scale_s, 0 if absent",
            "has_tdoa": "1 if TDOA present else 0",
        },
        "frame": dict(frame),
        "n_ids": cfg.n_ids,
        "config": {k: v for k, v in asdict(cfg).items() if k != "norm"},
        "cov_scale": float(model.cov_scale),  # type: ignore[arg-type]
        "cov_floor_m2": float(getattr(model, "cov_floor_m2", 0.0)),
    }
    if rx_names is not None:
        spec["rx_ids"] = dict(rx_names)
    if extra:
        spec.update(extra)
    return spec


def export_onnx(
    model: nn.Module,
    path: str | Path,
    *,
    spec: dict[str, Any] | None = None,
    opset: int = 17,
    example_receivers: int = 8,
) -> Path:
    """Export to ONNX with dynamic ``batch`` and ``receivers`` axes; write ``<path>.json`` spec.

    Parameters
    ----------
    model : SetNet or SetNetEnsemble
        Put in eval mode for the export.
    path : str or Path
        Output ``.onnx`` file.
    spec : dict, optional
        The input spec (:func:`input_spec`), written next to the model as
        ``<stem>.spec.json``.
    opset : int
        ONNX opset (≥ 17).
    example_receivers : int
        Receivers in the tracing example (any size works afterwards).

    Returns
    -------
    Path
        The ONNX file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    b, r = 2, example_receivers
    feats = torch.zeros(b, r, len(FEATURES))
    ids = torch.zeros(b, r, dtype=torch.int64)
    mask = torch.ones(b, r, dtype=torch.bool)
    dyn = {
        "features": {0: "batch", 1: "receivers"},
        "rx_id": {0: "batch", 1: "receivers"},
        "mask": {0: "batch", 1: "receivers"},
        "mean_enu_m": {0: "batch"},
        "cov_enu_m2": {0: "batch"},
    }
    with torch.no_grad():
        torch.onnx.export(
            model,
            (feats, ids, mask),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dyn,
            opset_version=opset,
            dynamo=False,
        )
    if spec is not None:
        spec = {**spec, "opset": opset, "file": path.name}
        path.with_suffix(".spec.json").write_text(json.dumps(spec, indent=2, sort_keys=True))
    return path
