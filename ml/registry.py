"""Model registry on the object store (fsspec: ``file://`` by default, ``s3://`` in clusters).

Layout under the registry root::

    <root>/<model name>/<version>/model.onnx
    <root>/<model name>/<version>/metadata.json

``metadata.json`` holds the ONNX file's SHA-256, the training data hash, metrics, the input
spec (what the model expects, so a stream can refuse a model it cannot feed) and the event
schema version. Versions sort in time order (``YYYYmmddTHHMMSSZ-<hash prefix>``). A version
is written once and never changed. Which version is *active* is announced on the compacted
``rf.models.v1`` topic (``heimdall models promote``) and also recorded here in
``<root>/<model name>/ACTIVE``, so that an embedded broker, which forgets everything when it
stops, can be told again at start-up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from heimdall.core.errors import HeimdallError
from heimdall.core.objectstore import filesystem
from heimdall.schemas.models import ModelPointer

MODEL_FILE = "model.onnx"
METADATA_FILE = "metadata.json"


class RegistryError(HeimdallError):
    """A model is missing, corrupt or does not match what it claims."""


@dataclass(frozen=True)
class ModelRecord:
    """One registered model version."""

    name: str
    version: str
    url: str
    sha256: str
    created_utc: str
    input_spec: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    training_data_hash: str = ""
    schema_version: str = "v1"
    extra: dict[str, Any] = field(default_factory=dict)

    def pointer(self, created_ns: int | None = None) -> ModelPointer:
        """The ``rf.models.v1`` event that makes this version the active one."""
        return ModelPointer(
            model_name=self.name,
            version=self.version,
            url=self.url,
            sha256=self.sha256,
            input_spec=json.dumps(self.input_spec, sort_keys=True),
            schema_version=self.schema_version,
            metrics={k: float(v) for k, v in self.metrics.items()},
            created_ns=time.time_ns() if created_ns is None else created_ns,
        )


class ModelRegistry:
    """Publish, list and load ONNX models under ``root_url``.

    Parameters
    ----------
    root_url
        ``file:///…`` or ``s3://bucket/prefix``; the registry lives in ``<root_url>/models``.
    storage_options
        fsspec options (S3 key, secret, endpoint).
    """

    def __init__(self, root_url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.root_url = root_url.rstrip("/") + "/models"
        self.storage_options = dict(storage_options or {})
        self.fs, self.root = filesystem(self.root_url, self.storage_options)

    def _url(self, *parts: str) -> str:
        return "/".join([self.root_url, *parts])

    def _path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def publish(
        self,
        name: str,
        onnx_bytes: bytes,
        input_spec: dict[str, Any],
        *,
        metrics: dict[str, float] | None = None,
        training_data_hash: str = "",
        schema_version: str = "v1",
        extra: dict[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> ModelRecord:
        """Store a new version of ``name``; return its record."""
        if not name or "/" in name:
            raise RegistryError(f"model name {name!r} must be non-empty and contain no '/'")
        sha = hashlib.sha256(onnx_bytes).hexdigest()
        when = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
        version = f"{when}-{sha[:8]}"
        record = ModelRecord(
            name=name,
            version=version,
            url=self._url(name, version, MODEL_FILE),
            sha256=sha,
            created_utc=when,
            input_spec=input_spec,
            metrics=dict(metrics or {}),
            training_data_hash=training_data_hash,
            schema_version=schema_version,
            extra=dict(extra or {}),
        )
        self.fs.makedirs(self._path(name, version), exist_ok=True)
        with self.fs.open(self._path(name, version, MODEL_FILE), "wb") as f:
            f.write(onnx_bytes)
        with self.fs.open(self._path(name, version, METADATA_FILE), "w") as f:
            json.dump(asdict(record), f, indent=2, sort_keys=True)
        return record

    def names(self) -> list[str]:
        if not self.fs.exists(self.root):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False))

    def versions(self, name: str) -> list[ModelRecord]:
        """Every version of ``name``, oldest first."""
        base = self._path(name)
        if not self.fs.exists(base):
            return []
        out = []
        for p in sorted(self.fs.ls(base, detail=False)):
            version = p.rstrip("/").rsplit("/", 1)[-1]
            if version != "ACTIVE":
                out.append(self.get(name, version))
        return out

    def get(self, name: str, version: str | None = None) -> ModelRecord:
        """The record of ``name`` at ``version`` (default: the newest)."""
        if version is None:
            versions = self.versions(name)
            if not versions:
                raise RegistryError(f"no model named {name!r} in {self.root_url}")
            return versions[-1]
        meta = self._path(name, version, METADATA_FILE)
        if not self.fs.exists(meta):
            raise RegistryError(f"no version {version!r} of model {name!r} in {self.root_url}")
        with self.fs.open(meta, "r") as f:
            return ModelRecord(**json.load(f))

    def set_active(self, record: ModelRecord) -> None:
        """Record ``record`` as the active version of its model."""
        with self.fs.open(self._path(record.name, "ACTIVE"), "w") as f:
            f.write(record.version)

    def active(self, name: str) -> ModelRecord | None:
        """The active version of ``name``, or ``None`` when none was promoted."""
        path = self._path(name, "ACTIVE")
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "r") as f:
            return self.get(name, f.read().strip())

    def active_records(self) -> list[ModelRecord]:
        """The active version of every model that has one."""
        return [r for r in (self.active(n) for n in self.names()) if r is not None]

    def load_bytes(self, record: ModelRecord) -> bytes:
        """The ONNX file of ``record``, checked against its SHA-256."""
        return load_model_bytes(record.url, record.sha256, self.storage_options)


def load_model_bytes(url: str, sha256: str, storage_options: dict[str, Any] | None = None) -> bytes:
    """Read an ONNX file from ``url`` and check its hash (a stream loads models this way)."""
    fs, path = filesystem(url, storage_options)
    try:
        with fs.open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise RegistryError(f"model file {url} does not exist") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise RegistryError(f"model file {url} has SHA-256 {digest[:12]}…, expected {sha256[:12]}…")
    return bytes(data)
