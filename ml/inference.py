"""Inline inference: an ONNX set model applied to observations, as the ``localize`` agent runs it.

A model comes with its *input spec* (``heimdall.ml.models.setnet.input_spec``): input names,
dtypes, feature order, normalisation constants and the ENU frame it was trained in. Before a
model is used, :func:`check_spec` compares that spec with what this code can feed it, and
the ONNX session's declared inputs with the spec; a mismatch is a :class:`ModelSpecError`
with one line saying what differs, and the caller keeps its previous model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import onnxruntime as ort

from heimdall.core.errors import HeimdallError
from heimdall.core.geodesy import LocalFrame, latlon_of_enu
from heimdall.ml.models.featurize import featurize
from heimdall.ml.models.spec import FEATURES, INPUT_NAMES, OUTPUT_NAMES, Normalisation
from heimdall.schemas.models import Observation

_DTYPES = {"features": "float32", "rx_id": "int64", "mask": "bool"}
_ORT_TYPES = {"float32": "tensor(float)", "int64": "tensor(int64)", "bool": "tensor(bool)"}


class ModelSpecError(HeimdallError):
    """A model's input spec does not match what the stream can give it."""


def check_spec(spec: dict[str, Any]) -> None:
    """Raise :class:`ModelSpecError` naming the first thing this stream cannot satisfy."""
    if spec.get("format") != "onnx":
        raise ModelSpecError(f"input spec format is {spec.get('format')!r}, expected 'onnx'")
    inputs = spec.get("inputs")
    if not isinstance(inputs, list):
        raise ModelSpecError("input spec has no list of inputs")
    names = [i.get("name") for i in inputs]
    if names != list(INPUT_NAMES):
        raise ModelSpecError(f"model inputs are {names}, this stream feeds {list(INPUT_NAMES)}")
    for i in inputs:
        if i.get("dtype") != _DTYPES[i["name"]]:
            raise ModelSpecError(
                f"input {i['name']!r} has dtype {i.get('dtype')!r}, "
                f"this stream feeds {_DTYPES[i['name']]!r}"
            )
    order = inputs[0].get("feature_order")
    if order != list(FEATURES):
        raise ModelSpecError(f"model feature order {order} differs from {list(FEATURES)}")
    norm = spec.get("normalisation")
    wanted = {f.name for f in fields(Normalisation)}
    if not isinstance(norm, dict) or set(norm) != wanted:
        raise ModelSpecError(f"normalisation must have exactly {sorted(wanted)}")
    frame = spec.get("frame")
    if not isinstance(frame, dict) or not {"lat0_deg", "lon0_deg"} <= set(frame):
        raise ModelSpecError("input spec has no frame origin (lat0_deg, lon0_deg)")
    outs = [o.get("name") for o in spec.get("outputs", [])]
    if outs != list(OUTPUT_NAMES):
        raise ModelSpecError(f"model outputs are {outs}, this stream reads {list(OUTPUT_NAMES)}")


@dataclass(frozen=True)
class Prediction:
    """One estimate: WGS84 position and the East/North covariance in m²."""

    lat_deg: float
    lon_deg: float
    cov_m2: np.ndarray


class OnnxLocalizer:
    """An ONNX set model ready to localize observations.

    Parameters
    ----------
    onnx_bytes
        The model file's content.
    spec
        Its input spec; checked with :func:`check_spec` and against the session's inputs.
    version
        A label for the localizations it produces (``name:version``).
    """

    def __init__(self, onnx_bytes: bytes, spec: dict[str, Any], version: str) -> None:
        check_spec(spec)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one core per worker; the stream is the parallelism
        opts.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(
                onnx_bytes, sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelSpecError(f"onnxruntime cannot load the model: {exc}") from None
        declared = {i.name: i.type for i in self.session.get_inputs()}
        for name, dtype in _DTYPES.items():
            if declared.get(name) != _ORT_TYPES[dtype]:
                raise ModelSpecError(
                    f"the ONNX file's input {name!r} is {declared.get(name)}, "
                    f"its spec says {_ORT_TYPES[dtype]}"
                )
        self.version = version
        self.spec = spec
        self.norm = Normalisation(**spec["normalisation"])
        f = spec["frame"]
        self.frame = LocalFrame(f["lat0_deg"], f["lon0_deg"], f.get("alt0_m", 0.0))
        self.rx_ids: dict[str, int] = dict(spec.get("rx_ids", {}))

    def inputs(self, observations: Sequence[Observation]) -> dict[str, np.ndarray]:
        """The padded input tensors for a batch of observations."""
        b = len(observations)
        r = max((len(o.members) for o in observations), default=0)
        lat = np.zeros((b, r))
        lon = np.zeros((b, r))
        rss = np.full((b, r), np.nan)
        snr = np.full((b, r), np.nan)
        ids = np.full((b, r), -1, dtype=np.int64)
        mask = np.zeros((b, r), dtype=bool)
        for i, obs in enumerate(observations):
            for j, m in enumerate(obs.members):
                lat[i, j], lon[i, j] = m.position.lat_deg, m.position.lon_deg
                rss[i, j], snr[i, j] = m.power_dbm, m.snr_db
                ids[i, j] = self.rx_ids.get(m.receiver_id, -1)
                mask[i, j] = True
        e, n, _ = self.frame.to_enu(lat, lon, np.zeros_like(lat))
        enu = np.stack([e, n], axis=-1)
        return {
            "features": featurize(enu, rss, mask, self.norm, snr_db=snr),
            "rx_id": ids,
            "mask": mask,
        }

    def predict(self, observations: Sequence[Observation]) -> list[Prediction]:
        """Position and covariance for each observation (one batched ONNX run)."""
        if not observations:
            return []
        mean, cov = self.session.run(list(OUTPUT_NAMES), self.inputs(observations))
        lat, lon = latlon_of_enu(self.frame, mean[:, 0], mean[:, 1])  # on the ground, as trained
        lat, lon = np.atleast_1d(lat), np.atleast_1d(lon)
        return [
            Prediction(float(lat[i]), float(lon[i]), np.asarray(cov[i], dtype=np.float64))
            for i in range(len(observations))
        ]
