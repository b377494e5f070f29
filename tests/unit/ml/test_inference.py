"""Inline inference: the ONNX localizer equals the torch model on the same observations, and a
model whose input spec the stream cannot satisfy is refused with the reason."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")
import torch

from heimdall.core.geodesy import LocalFrame
from heimdall.ml.inference import ModelSpecError, OnnxLocalizer, check_spec
from heimdall.ml.models.setnet import SetNet, SetNetConfig, export_onnx, input_spec
from heimdall.schemas.models import ClockSource, Observation, ObservationMember, Position

FRAME = {"lat0_deg": 45.0, "lon0_deg": 8.0, "alt0_m": 0.0}
SITES = [(45.02, 7.29), (45.234, 7.857), (45.044, 7.672), (45.03, 7.27), (44.561, 8.956)]


def observation(n: int, seed: int) -> Observation:
    rng = np.random.default_rng(seed)
    members = tuple(
        ObservationMember(
            receiver_id=f"rx-{i}",
            position=Position(lat_deg=lat, lon_deg=lon, alt_m=0.0),
            clock=ClockSource.GPS,
            t_ns=0,
            power_dbm=float(rng.uniform(-110, -60)),
            power_std_db=0.1,
            snr_db=float(rng.uniform(5, 40)),
            noise_floor_dbm_hz=-168.0,
            freq_offset_hz=0.0,
            n_measurements=5,
            measurement_ids=(),
        )
        for i, (lat, lon) in enumerate(SITES[:n])
    )
    return Observation(
        channel_id="c",
        channel_freq_hz=145.5e6,
        window_start_ns=0,
        window_end_ns=10**9,
        members=members,
    )


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[SetNet, bytes, dict[str, Any]]:
    torch.manual_seed(3)
    model = SetNet(SetNetConfig(n_ids=4, hidden=16, heads=2, layers=1)).eval()
    spec = input_spec(model, frame=FRAME, rx_names={"rx-0": 0, "rx-2": 2})
    path = export_onnx(model, tmp_path_factory.mktemp("m") / "m.onnx", spec=spec)
    return model, Path(path).read_bytes(), spec


def test_onnx_localizer_equals_torch(exported: tuple[SetNet, bytes, dict[str, Any]]) -> None:
    """Same padded inputs through torch and onnxruntime: means within 1e-3 m relative to the
    1 km position scale (float32), covariances within 1e-4 relative."""
    model, data, spec = exported
    loc = OnnxLocalizer(data, spec, "setnet:test")
    batch = [observation(5, 1), observation(4, 2), observation(5, 3)]  # ragged: padding
    inputs = loc.inputs(batch)
    assert inputs["mask"].sum(axis=1).tolist() == [5, 4, 5]
    assert inputs["rx_id"][0].tolist() == [0, -1, 2, -1, -1]  # unknown receivers → -1
    with torch.no_grad():
        mean_t, cov_t = model(*(torch.from_numpy(inputs[k]) for k in ("features", "rx_id", "mask")))
    preds = loc.predict(batch)
    frame = LocalFrame(**FRAME)
    for i, p in enumerate(preds):
        e, n, _ = frame.to_enu(p.lat_deg, p.lon_deg, 0.0)
        np.testing.assert_allclose([e, n], mean_t[i].numpy(), atol=1e-3 * 1000, rtol=1e-4)
        np.testing.assert_allclose(p.cov_m2, cov_t[i].numpy(), rtol=1e-4, atol=1e-6)
    # the batch does not change a sample's answer
    alone = loc.predict([batch[1]])[0]
    assert alone.lat_deg == pytest.approx(preds[1].lat_deg, abs=1e-9)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: s.update(format="tflite"), "format"),
        (lambda s: s["inputs"].reverse(), "model inputs"),
        (lambda s: s["inputs"][0].update(dtype="float64"), "dtype"),
        (lambda s: s["inputs"][0].update(feature_order=["east", "north", "rss"]), "feature order"),
        (lambda s: s["normalisation"].pop("rss_std_db"), "normalisation"),
        (lambda s: s.pop("frame"), "frame"),
    ],
)
def test_mismatched_spec_is_refused(
    exported: tuple[SetNet, bytes, dict[str, Any]], mutate: Any, message: str
) -> None:
    _, data, spec = exported
    bad = copy.deepcopy(spec)
    mutate(bad)
    with pytest.raises(ModelSpecError, match=message):
        OnnxLocalizer(data, bad, "setnet:bad")
    check_spec(spec)  # the original is fine


def test_file_that_is_not_onnx_is_refused(exported: tuple[SetNet, bytes, dict[str, Any]]) -> None:
    _, _, spec = exported
    with pytest.raises(ModelSpecError, match="onnxruntime cannot load"):
        OnnxLocalizer(b"not a model", spec, "setnet:junk")
