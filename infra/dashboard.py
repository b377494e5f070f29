"""``heimdall dashboard``: wires the dashboard's state, feed and server, and runs them.

The dashboard lives in ``consumers/dashboard``; what it needs from above its layer — the
error ellipse of ``ml`` and the monitor's ``topic_counts`` — is handed to it here.

``python -m heimdall.infra.dashboard --host H --port P`` is the light entry point that
``heimdall up`` starts (the whole CLI imports torch: ~640 MB resident instead of ~100 MB).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from heimdall.consumers.dashboard.config import DashboardSettings, check_binding
from heimdall.consumers.dashboard.feed import Feed
from heimdall.consumers.dashboard.history import StoreHistory
from heimdall.consumers.dashboard.server import DashboardServer, ServerThread
from heimdall.consumers.dashboard.state import DashboardState
from heimdall.core import kafka
from heimdall.core.errors import HeimdallError
from heimdall.core.settings import HeimdallSettings, load_settings
from heimdall.core.store import open_clickhouse
from heimdall.infra.monitor import topic_counts
from heimdall.ml.estimators.ellipse import error_ellipse
from heimdall.schemas.serde import Serde


@dataclass
class Dashboard:
    """A running dashboard: its state, its feed and its server thread."""

    state: DashboardState
    feed: Feed
    server: DashboardServer
    thread: ServerThread
    store: Any = None

    @property
    def url(self) -> str:
        return self.thread.url

    def stop(self) -> None:
        self.thread.stop()
        self.feed.stop()
        if self.store is not None:
            self.store.close()


def start_dashboard(
    settings: HeimdallSettings,
    host: str = "127.0.0.1",
    port: int = 0,
    dashboard: DashboardSettings | None = None,
    interval_s: float = 2.0,
) -> Dashboard:
    """Start the feed and the server (``port=0``: a free port); refuses an open host without a
    token (:class:`~heimdall.core.errors.ConfigError`)."""
    ds = dashboard or DashboardSettings()
    check_binding(host, ds.dashboard_token)
    kafka.bootstrap(settings)  # no broker configured: one clear error now, not a dead thread
    token = ds.dashboard_token.get_secret_value() if ds.dashboard_token else None
    state = DashboardState(error_ellipse)
    # a ClickHouse server (CLICKHOUSE_URL) gives the replay every stored period; the embedded
    # chDB belongs to `heimdall up`'s process, so there the rings are the history
    store = open_clickhouse(settings) if settings.clickhouse.url else None
    server = DashboardServer(
        state,
        token=token,
        tiles_url=ds.map_tiles_url,
        history_s=ds.dashboard_history_s,
        history=StoreHistory(store, error_ellipse) if store is not None else None,
    )
    try:
        thread = ServerThread(server, host, port).start()
    except BaseException:
        if store is not None:
            store.close()
        raise
    feed = Feed(
        settings,
        Serde.from_settings(settings),
        state,
        count_topics=topic_counts,
        history_s=ds.dashboard_history_s,
        interval_s=interval_s,
        on_change=server.notify,
    ).start()
    return Dashboard(state, feed, server, thread, store)


def run_dashboard(
    settings: HeimdallSettings, host: str, port: int, say: Callable[[str], None] = print
) -> None:
    """Serve until SIGINT or SIGTERM."""
    dash = start_dashboard(settings, host, port)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    say(f"dashboard: {dash.url}")
    try:
        stop.wait()
    finally:
        dash.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m heimdall.infra.dashboard [--host H] [--port P]``."""
    from heimdall.consumers.dashboard.config import DEFAULT_PORT

    parser = argparse.ArgumentParser(prog="heimdall dashboard", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    try:
        run_dashboard(load_settings(), args.host, args.port)
    except HeimdallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
