"""The model registry on the local file system and on S3 (a local moto S3 server)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from heimdall.ml.registry import ModelRegistry, RegistryError, load_model_bytes
from tests.moto_s3 import moto_s3

pytestmark = pytest.mark.integration

SPEC = {"inputs": {"x": ["batch", "receivers", 6]}, "features": ["e", "n", "rss"]}


@pytest.fixture(scope="module")
def s3() -> Iterator[dict[str, Any]]:
    with moto_s3("heimdall-test") as opts:
        yield opts


def roundtrip(registry: ModelRegistry) -> None:
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    a = registry.publish("rssnet", b"onnx-v1", SPEC, metrics={"median_m": 30.0}, now=t0)
    b = registry.publish("rssnet", b"onnx-v2", SPEC, now=t0 + dt.timedelta(hours=1))
    assert registry.names() == ["rssnet"]
    assert [r.version for r in registry.versions("rssnet")] == [a.version, b.version]
    assert registry.get("rssnet") == b
    assert registry.get("rssnet", a.version).metrics == {"median_m": 30.0}
    assert registry.load_bytes(a) == b"onnx-v1"
    assert registry.get("rssnet", a.version).input_spec == SPEC
    with pytest.raises(RegistryError, match="no version"):
        registry.get("rssnet", "nope")
    with pytest.raises(RegistryError, match="SHA-256"):
        load_model_bytes(a.url, b.sha256, registry.storage_options)


def test_registry_on_the_local_file_system(tmp_path: Path) -> None:
    roundtrip(ModelRegistry(tmp_path.as_uri()))


def test_registry_on_s3(s3: dict[str, Any]) -> None:
    roundtrip(ModelRegistry("s3://heimdall-test/prefix", s3))


def test_active_version_is_recorded(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path.as_uri())
    assert registry.active("rssnet") is None
    a = registry.publish("rssnet", b"onnx-v1", SPEC)
    registry.publish("rssnet", b"onnx-v2", SPEC, now=dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    registry.set_active(a)
    assert registry.active("rssnet") == a
    assert len(registry.versions("rssnet")) == 2  # the ACTIVE marker is not a version
    registry.publish("other", b"onnx-o", SPEC)  # never promoted: not active
    assert registry.active_records() == [a]


def test_pointer_announces_the_record(tmp_path: Path) -> None:
    a = ModelRegistry(tmp_path.as_uri()).publish("rssnet", b"x", SPEC, metrics={"median_m": 3})
    p = a.pointer(created_ns=5)
    assert (p.model_name, p.version, p.url, p.sha256) == (a.name, a.version, a.url, a.sha256)
    assert json.loads(p.input_spec) == SPEC and p.metrics == {"median_m": 3.0}
    assert p.created_ns == 5 and p.schema_version == a.schema_version
