"""``heimdall topics ensure``: create Heimdall's topics with their configs, or check them.

On a cluster this is the one-shot job that runs before the stages (``infra/deploy``); the
stages themselves also create what is missing at start (:func:`ensure_stage_topics`), so
the job's value is the ``--check``: a one-line error per topic that differs from its spec.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from heimdall.core import kafka
from heimdall.core.errors import ConfigError
from heimdall.core.settings import load_settings
from heimdall.core.topics import ensure_topics, heimdall_topics, topic_mismatches

app = typer.Typer(help="Create or check the topics Heimdall uses.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


@app.command("ensure")
def topics_ensure(
    check: Annotated[
        bool, typer.Option("--check", help="only validate: create nothing, report mismatches")
    ] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the broker")] = 15.0,
) -> None:
    """Create every missing topic (partitions, retention, cleanup policy, compression) and
    validate the existing ones against the same specs; exit 2 on any mismatch."""
    settings = load_settings()
    if settings.kafka.embedded:
        raise ConfigError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: `heimdall topics ensure` is for a running "
            "broker (the embedded one creates its topics itself)"
        )
    admin = kafka.admin(settings)
    specs = heimdall_topics(settings)
    created = [] if check else ensure_topics(admin, specs, timeout, validate=False)
    for name in created:
        console.print(f"created {name}")
    mismatches = topic_mismatches(admin, specs, timeout)
    if mismatches:
        for line in mismatches:
            err_console.print(f"[red]mismatch:[/red] {line}", highlight=False)
        raise ConfigError(
            f"{len(mismatches)} topic setting(s) differ from Heimdall's specs "
            f"(HEIMDALL_PARTITIONS={settings.partitions}); fix them or recreate the topics"
        )
    console.print(f"{len(specs)} topics ok ({len(created)} created)")
