"""Run the stream processors as a Faust worker (``heimdall worker``)."""

from __future__ import annotations

import faust

from heimdall.core.settings import HeimdallSettings
from heimdall.streams.app import create_app


def run_worker(settings: HeimdallSettings, loglevel: str = "warning") -> None:
    """Run until SIGTERM/SIGINT; Faust stops the agents and commits on the way out."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
