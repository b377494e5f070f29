"""``heimdall models list|promote``: the registry on the object store and the active pointer."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from heimdall.core.settings import load_settings
from heimdall.infra.model_announce import announce, registry_of

app = typer.Typer(help="The model registry (object store) and the active model (rf.models.v1).")
console = Console()


@app.command("list")
def list_models(name: Annotated[str | None, typer.Argument(help="one model")] = None) -> None:
    """List registered models and their versions, newest last."""
    reg = registry_of(load_settings())
    table = Table("model", "version", "sha256", "metrics", title=f"models in {reg.root_url}")
    for n in [name] if name else reg.names():
        for r in reg.versions(n):
            metrics = ", ".join(f"{k}={v:.3g}" for k, v in sorted(r.metrics.items()))
            table.add_row(r.name, r.version, r.sha256[:12], metrics)
    console.print(table)


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
    reg = registry_of(settings)
    record = reg.get(name, version)
    reg.set_active(record)
    if settings.kafka.embedded:
        console.print(f"{record.name} {record.version} is active; `heimdall up` will announce it")
        return
    announce(settings, [record])
    console.print(f"promoted {record.name} {record.version} on {settings.topics.models}")
