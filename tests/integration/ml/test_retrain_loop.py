"""The loop, end to end (issue 13 item 5): stream → archive → train → promote → hot reload →
held-out replay, where the trained model beats the classical RSS estimator.

1. A small scenario the RSS estimator models badly runs through a live pipeline (the seven
   seed receivers, four static carriers on their own channels, log-distance n = 3 with 8 dB
   Gudmundson shadowing decorrelating over 2 km: every link carries its own fixed bias, which
   the estimator's single path-loss law cannot explain). The archiver writes every topic.
2. A model is trained from the archive over the first part of the run (``--source archive
   --from --to``), registered and promoted.
3. A second pipeline (its own app id and topic names, as a new pipeline version beside the
   live one) is already running; the promoted model is announced on its models topic and it
   hot-reloads it.
4. The held-out later part of the run is replayed from the archive into that pipeline's
   observations topic; its localize stage fixes each observation with the classical
   estimator (``rss-ml``) and the model (``onnx``). Both are scored against the archived
   truth (nearest truth of the channel to the window's middle) on the same observations;
   the model's median error must be the lower, measured here.

What the model learns is the site: the transmitters of the held-out period are the ones of
the training period (a fingerprint of their shadowing), which is what retraining from the
stream is for; it says nothing of transmitters elsewhere.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")
import torch

from heimdall.consumers.archive import ArchiveWriter
from heimdall.consumers.archive_store import ArchiveSettings, ArchiveStore, decoded_events
from heimdall.consumers.replay import replay
from heimdall.core import kafka
from heimdall.core.geodesy import LocalFrame
from heimdall.core.settings import HeimdallSettings, TopicNames
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.cli_train import Source, build_dataset, default_config, run_training
from heimdall.infra.model_announce import announce
from heimdall.infra.processes import Child, child_env
from heimdall.ml.registry import ModelRegistry
from heimdall.producers.sim.pathloss import LogDistanceSpec
from heimdall.producers.sim.scenario import PropagationSpec, Scenario, seed_network
from heimdall.producers.sim.shadowing import ShadowingSpec
from heimdall.producers.sim.stream import run_simulation
from heimdall.producers.sim.transmitters import TransmitterSpec
from heimdall.producers.sim.waveforms import CarrierSpec
from heimdall.schemas.models import Localization, Observation, Truth
from heimdall.schemas.serde import Serde

pytestmark = pytest.mark.integration

S = 1_000_000_000
SIM_S = 40.0  # signal seconds simulated
TRAIN_FRACTION = 0.7  # the first 70 % trains, the rest is held out
SITES = ((45.10, 7.60), (44.80, 8.40), (45.30, 8.70), (44.70, 7.70))


def scenario() -> Scenario:
    base = seed_network()
    txs = [
        TransmitterSpec(
            source_id=f"tx-{i}", lat_deg=lat, lon_deg=lon, alt_m=300.0,
            channel_freq_hz=145.500e6 + 25e3 * i, freq_offset_hz=100.0, tx_power_dbm=40.0,
            waveform=CarrierSpec(),
        )
        for i, (lat, lon) in enumerate(SITES)
    ]  # fmt: skip
    return base.model_copy(
        update={
            "name": "loop-shadowed",
            "transmitters": txs,
            "propagation": PropagationSpec(
                model=LogDistanceSpec(exponent=3.0, ref_distance_m=1_000.0),
                shadowing=ShadowingSpec(sigma_db=8.0, decorrelation_m=2_000.0),
            ),
        }
    )


def _wait_quiet(settings: HeimdallSettings, topic: str, quiet_s: float, limit_s: float) -> int:
    """Count ``topic``'s events from the first until none arrives for ``quiet_s`` (at most
    ``limit_s`` in all: a worker may take a while to join its group)."""
    c = kafka.consumer(settings, f"count-{topic}")
    c.subscribe([topic])
    n, t0 = 0, time.monotonic()
    last = float("inf")  # no event yet
    try:
        while time.monotonic() - t0 < limit_s and not time.monotonic() - last > quiet_s:
            got = [m for m in c.consume(500, timeout=1.0) if not m.error()]
            if got:
                n += len(got)
                last = time.monotonic()
    finally:
        c.close()
    return n


def _errors_m(locs: list[Localization], truths: list[Truth]) -> np.ndarray:
    """Distance of each fix to its channel's transmitting truth nearest the window middle."""
    by_ch: dict[str, list[Truth]] = {}
    for t in truths:
        if t.transmitting and t.channel_id is not None:
            by_ch.setdefault(t.channel_id, []).append(t)
    out = []
    for loc in locs:
        cands = by_ch[loc.channel_id]
        t = min(cands, key=lambda c: abs(c.t_ns - loc.t_ns))
        frame = LocalFrame(t.position.lat_deg, t.position.lon_deg, 0.0)
        e, n, _ = frame.to_enu(loc.position.lat_deg, loc.position.lon_deg, 0.0)
        out.append(float(np.hypot(e, n)))
    return np.array(out)


def test_retrain_from_the_archive_beats_the_classical_estimator(
    settings: HeimdallSettings, unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.set_num_threads(1)
    monkeypatch.chdir(tmp_path)  # the workers' Faust data directories go there
    live = settings.model_copy(update={"track": False, "tdoa": False, "model_name": "loop"})
    ensure_topics(kafka.admin(live), heimdall_topics(live))
    topics_b = TopicNames(**{k: f"r{unique}.{v}" for k, v in TopicNames().model_dump().items()})
    new = live.model_copy(
        update={"streams_app_id": f"{live.streams_app_id}-v2", "topics": topics_b}
    )
    ensure_topics(kafka.admin(new), heimdall_topics(new))

    # 1. the live pipeline and the archiver over a simulated run
    stop = threading.Event()
    writer = ArchiveWriter(live, ArchiveSettings(drain_s=5.0), group_id=f"arch-{unique}")
    arch = threading.Thread(target=writer.run, args=(stop,), name="archiver")
    arch.start()
    worker = Child("streams", ["worker"], child_env(live.to_env()), tmp_path / "live.log")
    worker.start()
    worker_b: Child | None = None
    try:
        before_ns = time.time_ns()
        run_simulation(live, scenario(), duration_s=SIM_S, realtime=False, seed=3)
        n_obs = _wait_quiet(live, live.topics.observations, quiet_s=10.0, limit_s=240.0)
        assert n_obs > 0, worker.tail()
        stop.set()
        arch.join(timeout=60)
        worker.stop()
        t0 = (before_ns // S) * S - S
        t_end = t0 + int((SIM_S + 5) * S)
        split = t0 + S + int(TRAIN_FRACTION * SIM_S * S)

        # 3. (first) the new pipeline runs before the model exists
        worker_b = Child("streams", ["worker"], child_env(new.to_env()), tmp_path / "new.log")
        worker_b.start()

        # 2. train from the archive over the training period, register, promote
        ds, _ = build_dataset(live, Source.archive, "", 0, 0, t0, split)
        cfg = dataclasses.replace(default_config(ds, epochs=150, members=1, seed=0), batch_size=32)
        report, _, _ = run_training(
            live, source=Source.archive, since_ns=t0, until_ns=split, name="loop",
            promote=True, config=cfg, rss_samples=200, progress=False,
        )  # fmt: skip
        record = ModelRegistry(live.object_store_url).active("loop")
        assert record is not None and record.version == report["registry"]["version"]
        announce(new, [record])  # the running new pipeline hot-reloads it

        # 4. the held-out period, replayed from the archive into the new pipeline
        locs = kafka.consumer(new, f"locs-{unique}")
        locs.subscribe([new.topics.localizations])
        serde = Serde()
        fixes: dict[str, dict[str, Localization]] = {}
        replayed = 0
        deadline = time.monotonic() + 240
        want = f"loop:{record.version}"
        complete: list[str] = []
        while time.monotonic() < deadline:
            res = replay(
                live, live.topics.observations, split, t_end,
                into=new.topics.observations, from_archive=True,
            )  # fmt: skip
            replayed = res.events
            assert replayed > 0
            quiet = time.monotonic()
            while time.monotonic() - quiet < 10 and time.monotonic() < deadline:
                for m in locs.consume(500, timeout=1.0):
                    if m.error():
                        continue
                    loc = serde.decode(m.value() or b"", expect=Localization)
                    if loc.method == "onnx" and loc.model_version != want:
                        continue
                    fixes.setdefault(loc.observation_id, {})[loc.method] = loc
                    quiet = time.monotonic()
            complete = [k for k, v in fixes.items() if {"rss-ml", "onnx"} <= v.keys()]
            if len(complete) >= replayed:
                break  # the model was live for every replayed observation
        locs.close()
        assert complete, worker_b.tail()

        store = ArchiveStore.from_settings(live)
        truths = [
            e for _, e in decoded_events(store, live.topics.truth, t0 - S, t_end, serde)
            if isinstance(e, Truth)
        ]  # fmt: skip
        held_out = {
            e.event_id for _, e in decoded_events(
                store, live.topics.observations, split, t_end + 60 * S, serde
            )
            if isinstance(e, Observation) and split <= e.window_start_ns < t_end
        }  # fmt: skip
        ids = sorted(set(complete) & held_out)
        rss_err = _errors_m([fixes[i]["rss-ml"] for i in ids], truths)
        model_err = _errors_m([fixes[i]["onnx"] for i in ids], truths)
        print(
            f"\nloop: {report['n_train']} training samples ({report['data']['archive']}), "
            f"{len(ids)} held-out observations of {replayed} replayed; median error "
            f"model {np.median(model_err):.0f} m, classical rss-ml {np.median(rss_err):.0f} m "
            f"(training test split: model {report['test']['median_m']:.0f} m, "
            f"rss {report['rss'].get('median_m', float('nan')):.0f} m)"
        )
        assert len(ids) >= 10
        assert np.median(model_err) < np.median(rss_err)
    finally:
        stop.set()
        if arch.is_alive():
            arch.join(timeout=60)
        worker.stop()
        if worker_b is not None:
            worker_b.stop()
