"""``heimdall models list|promote``: the registry on the object store and the active pointer."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from heimdall.core.errors import HeimdallError
from heimdall.core.objectstore import storage_options
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.ml.registry import ModelRecord, ModelRegistry
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import ModelPointer

app = typer.Typer(help="The model registry (object store) and the active model (rf.models.v1).")
console = Console()


def registry() -> ModelRegistry:
    settings = load_settings()
    return ModelRegistry(settings.object_store_url, storage_options(settings))


@app.command("list")
def list_models(name: Annotated[str | None, typer.Argument(help="one model")] = None) -> None:
    """List registered models and their versions, newest last."""
    reg = registry()
    table = Table("model", "version", "sha256", "metrics", title=f"models in {reg.root_url}")
    for n in [name] if name else reg.names():
        for r in reg.versions(n):
            metrics = ", ".join(f"{k}={v:.3g}" for k, v in sorted(r.metrics.items()))
            table.add_row(r.name, r.version, r.sha256[:12], metrics)
    console.print(table)


def pointer_for(record: ModelRecord) -> ModelPointer:
    return ModelPointer(
        model_name=record.name,
        version=record.version,
        url=record.url,
        sha256=record.sha256,
        input_spec=json.dumps(record.input_spec, sort_keys=True),
        schema_version=record.schema_version,
        metrics={k: float(v) for k, v in record.metrics.items()},
        created_ns=time.time_ns(),
    )


@app.command()
def promote(
    name: Annotated[str, typer.Argument(help="model name")],
    version: Annotated[str | None, typer.Argument(help="version (default: the newest)")] = None,
) -> None:
    """Make a version the active one: announce it on rf.models.v1; streams hot-reload it.

    Without KAFKA_BOOTSTRAP_SERVERS (embedded mode) the choice is recorded in the registry and
    announced by the next `heimdall up`.
    """
    settings = load_settings()
    reg = registry()
    record = reg.get(name, version)
    reg.set_active(record)
    if settings.kafka.embedded:
        console.print(f"{record.name} {record.version} is active; `heimdall up` will announce it")
        return
    announce(settings, [record])
    console.print(f"promoted {record.name} {record.version} on {settings.topics.models}")


def announce(settings: HeimdallSettings, records: list[ModelRecord]) -> None:
    """Publish the pointers of ``records`` on the models topic."""
    pub = Publisher(settings)
    for record in records:
        pub.publish(settings.topics.models, record.name, pointer_for(record))
    if pub.flush() != 0:
        raise HeimdallError(f"could not deliver the model pointers to {settings.topics.models}")


def active_records(settings: HeimdallSettings) -> list[ModelRecord]:
    """The active version of every model in the registry."""
    reg = ModelRegistry(settings.object_store_url, storage_options(settings))
    return [r for r in (reg.active(n) for n in reg.names()) if r is not None]
