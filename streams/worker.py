"""Run the stream processors as a Faust worker (``heimdall worker``, or
``python -m heimdall.streams.worker``, which ``heimdall up`` uses: it skips importing the whole
command line, which loads torch for training, and so starts about a second sooner)."""

from __future__ import annotations

import faust

from heimdall.core import metrics
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.core.topics import ensure_stage_topics
from heimdall.streams.app import create_app


def run_worker(settings: HeimdallSettings, loglevel: str = "warning") -> None:
    """Run until SIGTERM/SIGINT; Faust stops the agents and commits on the way out.

    With ``HEIMDALL_METRICS_PORT`` set, serves the metrics (:mod:`heimdall.core.metrics`)
    and samples the lag of the stream group on the topics the agents read.
    """
    if not settings.kafka.embedded:  # `heimdall up` created them before starting us
        ensure_stage_topics(settings)
    app = create_app(settings)
    lag = None
    if metrics.serve_from_settings(settings) is not None:
        t = settings.topics
        topics = [t.iq, t.features, t.observations] + ([t.snippets] if settings.tdoa else [])
        lag = metrics.LagSampler(settings, settings.streams_app_id, topics).start()
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    finally:
        if lag is not None:
            lag.stop()


if __name__ == "__main__":
    settings = load_settings()
    run_worker(settings, loglevel=settings.log_level.lower())
