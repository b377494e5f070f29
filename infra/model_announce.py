"""Announcing models: the registry of the configured object store, and its active versions
published as :class:`~heimdall.schemas.models.ModelPointer` events on ``rf.models.v1``, which
every stream worker follows (:mod:`heimdall.streams.model_watch`).

Used by ``heimdall models promote``, ``heimdall train`` and ``heimdall up`` (which announces
the active versions once its broker is up).
"""

from __future__ import annotations

from heimdall.core.errors import HeimdallError
from heimdall.core.objectstore import storage_options
from heimdall.core.settings import HeimdallSettings
from heimdall.ml.registry import ModelRecord, ModelRegistry
from heimdall.producers.publisher import Publisher

__all__ = ["announce", "registry_of"]


def registry_of(settings: HeimdallSettings) -> ModelRegistry:
    """The model registry on the settings' object store."""
    return ModelRegistry(settings.object_store_url, storage_options(settings))


def announce(settings: HeimdallSettings, records: list[ModelRecord]) -> None:
    """Publish the pointers of ``records`` on the models topic (delivered, or an error)."""
    pub = Publisher(settings)
    for record in records:
        pub.publish(settings.topics.models, record.name, record.pointer())
    if pub.flush() != 0:
        raise HeimdallError(f"could not deliver the model pointers to {settings.topics.models}")
