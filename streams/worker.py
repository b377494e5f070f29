"""Run the stream processors as a Faust worker (``heimdall worker``, or
``python -m heimdall.streams.worker``, which ``heimdall up`` uses: it skips importing the whole
command line, which loads torch for training, and so starts about a second sooner)."""

from __future__ import annotations

import faust

from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.streams.app import create_app


def run_worker(settings: HeimdallSettings, loglevel: str = "warning") -> None:
    """Run until SIGTERM/SIGINT; Faust stops the agents and commits on the way out."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


if __name__ == "__main__":
    settings = load_settings()
    run_worker(settings, loglevel=settings.log_level.lower())
