"""Hot reload in a running worker: a model announced on rf.models.v1 is used for the next
observations without a restart; a model it cannot use is refused to the dead-letter topic
and the previous one stays active."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs torch, of the train extra (pip install -e '.[train]')")
import torch

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings
from heimdall.core.topics import ensure_topics, heimdall_topics
from heimdall.infra.broker import free_port
from heimdall.infra.processes import Child, child_env
from heimdall.ml.models.setnet import SetNet, SetNetConfig, export_onnx, input_spec
from heimdall.ml.registry import ModelRegistry
from heimdall.producers.publisher import Publisher
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.models import Localization
from heimdall.schemas.serde import Serde
from tests.integration.streams.test_worker_metrics import scrape
from tests.unit.ml.test_inference import FRAME, observation

pytestmark = pytest.mark.integration


def tiny_model(tmp_path: Path, seed: int) -> tuple[bytes, dict]:
    torch.manual_seed(seed)
    model = SetNet(SetNetConfig(n_ids=4, hidden=16, heads=2, layers=1)).eval()
    spec = input_spec(model, frame=FRAME)
    return Path(export_onnx(model, tmp_path / f"m{seed}.onnx", spec=spec)).read_bytes(), spec


def onnx_versions(settings: HeimdallSettings, pub: Publisher, consumer, timeout_s: float) -> str:
    """Publish observations until an ONNX localization arrives; return its model version."""
    deadline = time.monotonic() + timeout_s
    serde = Serde()
    while time.monotonic() < deadline:
        pub.publish(settings.topics.observations, "c", observation(5, 7))
        pub.flush()
        for msg in consumer.consume(100, timeout=1.0):
            if msg.error():
                continue
            loc = serde.decode(msg.value(), expect=Localization)
            if loc.method == "onnx":
                return str(loc.model_version)
    raise AssertionError("no ONNX localization arrived")


def test_models_hot_reload_and_refusal(settings: HeimdallSettings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"model_name": "setnet"})
    ensure_topics(kafka.admin(settings), heimdall_topics(settings))
    registry = ModelRegistry(settings.object_store_url)
    v1 = registry.publish("setnet", *tiny_model(tmp_path, 1))
    v2 = registry.publish("setnet", *tiny_model(tmp_path, 2))
    pub = Publisher(settings)
    t = settings.topics
    pub.publish(t.models, "setnet", v1.pointer())
    pub.flush()
    port = free_port()  # the active model is also a metric
    env = child_env({**settings.to_env(), "HEIMDALL_METRICS_PORT": str(port)})
    worker = Child("streams", ["worker"], env, tmp_path / "w.log")
    worker.start()
    locs = kafka.consumer(settings, "locs")
    locs.subscribe([t.localizations])
    try:
        assert onnx_versions(settings, pub, locs, 60) == f"setnet:{v1.version}", worker.tail()
        # a pointer whose file does not match its hash: refused, v1 stays active
        pub.publish(t.models, "setnet", dataclasses.replace(v2.pointer(), sha256="0" * 64))
        pub.flush()
        dead = kafka.consumer(settings, "dlq")
        dead.subscribe([t.dlq])
        letters = []
        deadline = time.monotonic() + 30
        while not letters and time.monotonic() < deadline:
            letters = [m for m in dead.consume(10, timeout=1.0) if not m.error()]
        dead.close()
        d = DeadLetter.from_message(letters[0].key(), letters[0].value(), letters[0].headers())
        assert d.stage == "model-watcher" and "SHA-256" in d.reason
        assert onnx_versions(settings, pub, locs, 30) == f"setnet:{v1.version}"
        # a good new version is picked up without restarting the worker
        pub.publish(t.models, "setnet", v2.pointer())
        pub.flush()
        deadline = time.monotonic() + 30
        version = ""
        while version != f"setnet:{v2.version}" and time.monotonic() < deadline:
            version = onnx_versions(settings, pub, locs, 30)
        assert version == f"setnet:{v2.version}"
        assert worker.running
        samples = scrape(port)
        active = {dict(k[1])["version"]: v for k, v in samples.items()
                  if k[0] == "heimdall_active_model_info"}  # fmt: skip
        assert active == {v2.version: 1.0}
    finally:
        locs.close()
        worker.stop()
