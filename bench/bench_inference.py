"""ONNX inference of the set model as the localize agent runs it (``ml/inference.py``).

Issue targets: p99 ≤ 1 ms for one observation, ≥ 20 000 observations/s batched, one core.
The model is an untrained SetNet of the default size (same graph, same cost as a trained one)
exported to ONNX; each observation has the seed network's 7 receivers.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.common import Context, table
from heimdall.ml.inference import OnnxLocalizer
from heimdall.ml.models.setnet import SetNet, SetNetConfig, export_onnx, input_spec
from heimdall.schemas.models import ClockSource, Observation, ObservationMember, Position

SEED_SITES = [
    (45.02, 7.29), (45.234, 7.857), (45.044, 7.672), (45.03, 7.27),
    (44.561, 8.956), (44.395, 8.956), (45.478, 9.123),
]  # fmt: skip


def observations(n: int, seed: int = 1) -> list[Observation]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
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
            for i, (lat, lon) in enumerate(SEED_SITES)
        )
        out.append(Observation(channel_id="c", channel_freq_hz=145.5e6, window_start_ns=0,
                               window_end_ns=10**9, members=members))  # fmt: skip
    return out


def run(ctx: Context) -> None:
    torch.manual_seed(0)
    model = SetNet(SetNetConfig()).eval()
    spec = input_spec(model, frame={"lat0_deg": 45.0, "lon0_deg": 8.0, "alt0_m": 0.0})
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(export_onnx(model, Path(tmp) / "m.onnx", spec=spec)).read_bytes()
    loc = OnnxLocalizer(data, spec, "bench")
    n_single = 300 if ctx.quick else 2000
    obs = observations(max(n_single, 4096))
    for o in obs[:50]:  # warm-up
        loc.predict([o])
    lat_ms = []
    for o in obs[:n_single]:
        t0 = time.perf_counter()
        loc.predict([o])
        lat_ms.append((time.perf_counter() - t0) * 1e3)
    inputs = loc.inputs([obs[0]])
    session_ms = []
    for _ in range(n_single):
        t0 = time.perf_counter()
        loc.session.run(None, inputs)
        session_ms.append((time.perf_counter() - t0) * 1e3)
    t = table(
        "inference — OnnxLocalizer (ml/inference.py), SetNet default size, 7 receivers",
        ["case", "observations per call", "p50 ms", "p99 ms", "observations/s"],
        f"{n_single} single calls after 50 warm-up; batches timed over ≥ 0.5 s; onnxruntime CPU, "
        "intra-op threads 1 (one core); 'predict' includes building the inputs from Observation "
        "events and converting the result to WGS84, 'session' is the ONNX run alone",
    )
    for name, ms in (("predict, one observation", lat_ms), ("session.run only", session_ms)):
        t.add_row(name, "1", f"{np.percentile(ms, 50):.3f}", f"{np.percentile(ms, 99):.3f}",
                  f"{1e3 / np.median(ms):,.0f}")  # fmt: skip
    for batch in (64, 512, 4096):
        chunk = obs[:batch]
        calls, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < (0.2 if ctx.quick else 0.5):
            loc.predict(chunk)
            calls += 1
        dt = time.perf_counter() - t0
        t.add_row(f"predict, batch of {batch}", str(batch), f"{dt / calls * 1e3:.2f}", "–",
                  f"{calls * batch / dt:,.0f}")  # fmt: skip
    ctx.show(t)
