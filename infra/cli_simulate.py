"""``heimdall simulate``: publish a simulated scene to Kafka, or write it as SigMF.

Not registered here: ``infra/cli.py`` wires it with ``app.command()(simulate)``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from heimdall.core.errors import ConfigError

err_console = Console(stderr=True)

__all__ = ["simulate"]


def simulate(
    scenario: Annotated[
        str,
        typer.Argument(
            help="built-in scenario (seed-network, seed-network-rich, dense-urban, hf-tdoa) "
            "or a .yaml/.json scenario file"
        ),
    ] = "seed-network",
    duration: Annotated[
        float | None,
        typer.Option(help="simulated seconds (default: forever; required with --sigmf)"),
    ] = None,
    realtime: Annotated[bool, typer.Option("--realtime/--fast", help="pacing")] = True,
    seed: Annotated[int, typer.Option(help="random seed: same seed, same output")] = 1,
    sigmf: Annotated[
        Path | None,
        typer.Option(help="write one SigMF recording per receiver and channel into DIR instead"),
    ] = None,
    start_ns: Annotated[
        int | None,
        typer.Option(help="simulated start time, ns since the epoch (default: now)"),
    ] = None,
) -> None:
    """Publish a simulated receiver network's IQ and truth to Kafka, or record it as SigMF."""
    from heimdall.producers.sim.library import load_scenario

    sc = load_scenario(scenario)
    t0 = start_ns if start_ns is not None else (time.time_ns() // sc.chunk_ns) * sc.chunk_ns
    if sigmf is not None:
        from heimdall.producers.sim.recording import write_simulation_sigmf

        if duration is None:
            raise ConfigError("--sigmf needs --duration")
        paths = write_simulation_sigmf(
            sc, sigmf, duration_s=duration, seed=seed, start_t_ns=t0, overwrite=True
        )
        err_console.print(f"simulator: wrote {len(paths)} SigMF recordings to {sigmf}")
        return
    from heimdall.core.settings import load_settings
    from heimdall.producers.sim.stream import run_simulation

    stats = run_simulation(load_settings(), sc, duration_s=duration, realtime=realtime, seed=seed)
    err_console.print(f"simulator: published {stats}")
