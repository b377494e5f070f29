"""SetNet: permutation and padding invariance, unknown receivers, NLL, ONNX parity."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")
import torch

from heimdall.ml.models.setnet import (
    FEATURES,
    SetNet,
    SetNetConfig,
    SetNetEnsemble,
    export_onnx,
    gaussian_nll,
    input_spec,
)


def _batch(b: int, r: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, r, len(FEATURES), generator=g)
    ids = torch.randint(-1, 45, (b, r), generator=g)
    mask = torch.rand(b, r, generator=g) > 0.25
    mask[:, 0] = True
    return x, ids, mask


@pytest.fixture(scope="module")
def net() -> SetNet:
    torch.manual_seed(0)
    with torch.no_grad():
        m = SetNet(SetNetConfig(hidden=32, heads=4, layers=2)).eval()
        # non-trivial weights everywhere (fresh LayerNorms etc. would hide bugs less)
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m


def test_permutation_and_padding_invariance(net: SetNet) -> None:
    x, ids, mask = _batch(4, 9, seed=1)
    with torch.no_grad():
        mu, cov = net(x, ids, mask)
        perm = torch.randperm(9, generator=torch.Generator().manual_seed(3))
        mu_p, cov_p = net(x[:, perm], ids[:, perm], mask[:, perm])
        # 5 padded receivers with garbage (even NaN) features and random ids
        pad_x = torch.full((4, 5, len(FEATURES)), float("nan"))
        pad_x[:, :2] = 1e3
        xx = torch.cat([x[:, perm], pad_x], 1)
        ii = torch.cat([ids[:, perm], torch.randint(0, 40, (4, 5))], 1)
        mm = torch.cat([mask[:, perm], torch.zeros(4, 5, dtype=torch.bool)], 1)
        mu_pp, cov_pp = net(xx, ii, mm)
        # changing a masked-out receiver's content changes nothing either
        x2 = x.clone()
        x2[~mask] = 123.0
        mu_m, _ = net(x2, ids, mask)
    for a, b in ((mu, mu_p), (mu, mu_pp), (mu, mu_m)):
        torch.testing.assert_close(a, b, atol=1e-5 * 1000.0, rtol=1e-5)
    torch.testing.assert_close(cov, cov_p, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(cov, cov_pp, atol=1e-5, rtol=1e-5)
    # in the network's own (scaled) units the tolerance 1e-5 holds absolutely
    r1 = net.raw(x, ids, mask)
    r2 = net.raw(xx, ii, mm)
    torch.testing.assert_close(r1[0], r2[0], atol=1e-5, rtol=0.0)
    torch.testing.assert_close(r1[1], r2[1], atol=1e-5, rtol=0.0)


def test_unknown_ids_share_one_embedding(net: SetNet) -> None:
    x, ids, mask = _batch(2, 6, seed=4)
    a = ids.clone()
    a[:, 1] = -1
    b = ids.clone()
    b[:, 1] = 999
    with torch.no_grad():
        torch.testing.assert_close(net(x, a, mask)[0], net(x, b, mask)[0])


def test_covariance_positive_definite_and_nll(net: SetNet) -> None:
    x, ids, mask = _batch(16, 7, seed=5)
    with torch.no_grad():
        _, cov = net(x, ids, mask)
    assert torch.all(torch.linalg.eigvalsh(cov) > 0)
    # NLL of a standard normal at its mean: log 1 + log 1 = 0; at (1, 0): 0.5
    mu = torch.zeros(2, 2)
    chol = torch.eye(2).expand(2, 2, 2)
    assert float(gaussian_nll(mu, chol, torch.tensor([[0.0, 0.0], [1.0, 0.0]]))) == 0.25
    # general case against torch.distributions (which adds log 2π)
    lchol = torch.tensor([[[2.0, 0.0], [0.5, 0.7]]])
    y = torch.tensor([[1.0, -1.0]])
    ref = -torch.distributions.MultivariateNormal(torch.zeros(1, 2), scale_tril=lchol).log_prob(
        y
    ) - np.log(2 * np.pi)
    torch.testing.assert_close(gaussian_nll(torch.zeros(1, 2), lchol, y), ref.mean())


def test_onnx_parity_dynamic_axes(net: SetNet, tmp_path: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    ens = SetNetEnsemble([net, net]).eval()
    ens.cov_scale.fill_(1.7)
    ens.cov_floor_m2.fill_(25.0)
    spec = input_spec(ens, frame={"lat0_deg": 40.766, "lon0_deg": -111.842, "alt0_m": 0.0})
    path = export_onnx(ens, tmp_path / "m.onnx", spec=spec)
    saved = json.loads(path.with_suffix(".spec.json").read_text())
    assert saved["inputs"][0]["shape"] == ["batch", "receivers", len(FEATURES)]
    assert saved["inputs"][0]["feature_order"] == list(FEATURES)
    assert saved["cov_scale"] == pytest.approx(1.7)
    assert saved["cov_floor_m2"] == pytest.approx(25.0) and saved["opset"] >= 17
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b, r, seed in ((1, 3, 10), (5, 12, 11), (33, 25, 12)):
        x, ids, mask = _batch(b, r, seed)
        with torch.no_grad():
            mu, cov = ens(x, ids, mask)
        o_mu, o_cov = sess.run(
            None, {"features": x.numpy(), "rx_id": ids.numpy(), "mask": mask.numpy()}
        )
        # stated tolerance: 1e-3 m on the mean (float32 at km scale) and 1e-4 relative
        # on the covariance (m²)
        np.testing.assert_allclose(o_mu, mu.numpy(), atol=1e-3, rtol=1e-5)
        np.testing.assert_allclose(
            o_cov, cov.numpy(), atol=1e-4 * float(cov.abs().max()), rtol=1e-4
        )
