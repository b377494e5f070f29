"""Run many adapters in one process: one asyncio loop, one Kafka producer, one pump thread.

:func:`run_adapters` is what ``heimdall receivers run`` and ``heimdall receiver rtltcp`` end
in: every adapter's :meth:`~heimdall.producers.adapters.base.ReceiverAdapter.run` is a task
on one loop, a periodic task sends every adapter's status each ``status_interval_s``, and a
:class:`~heimdall.producers.adapters.pump.KafkaPump` thread publishes the chunks and
statuses with a single :class:`~heimdall.producers.publisher.Publisher`. It stops on
``duration_s``, on a ``threading.Event`` or on SIGINT/SIGTERM (when run on the main thread),
publishes every adapter's final ``offline`` status, flushes, and leaves no thread behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from heimdall.core.settings import HeimdallSettings
from heimdall.producers.adapters.base import ReceiverAdapter
from heimdall.producers.adapters.pump import EventPublisher, KafkaPump, PumpStats
from heimdall.producers.publisher import Publisher
from heimdall.schemas.models import ReceiverState

__all__ = ["AdapterSummary", "RunSummary", "run_adapters", "serve_adapters"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterSummary:
    """What one adapter did during a run."""

    receiver_id: str
    kind: str
    state: ReceiverState
    chunks: int
    dropped: int
    errors: int
    sessions: int
    bytes_in: int
    message: str | None
    last_error: str | None


@dataclass
class RunSummary:
    """What a run did: per adapter, and what the pump published."""

    adapters: list[AdapterSummary] = field(default_factory=list)
    pump: PumpStats = field(default_factory=PumpStats)
    undelivered: int = 0
    wall_s: float = 0.0


def _summary(a: ReceiverAdapter) -> AdapterSummary:
    return AdapterSummary(
        receiver_id=a.info.receiver_id,
        kind=a.kind,
        state=a.state,
        chunks=a.stats.chunks,
        dropped=a.buffer.dropped,
        errors=a.errors,
        sessions=a.stats.sessions,
        bytes_in=a.stats.bytes_in,
        message=a.message,
        last_error=a.last_error,
    )


async def serve_adapters(
    adapters: Sequence[ReceiverAdapter],
    stop: asyncio.Event,
    *,
    status_interval_s: float | None = None,
) -> None:
    """Run ``adapters`` on the current loop until ``stop`` is set (no Kafka: see the pump).

    Besides every adapter's ``run()``, one task reports each adapter's status every
    ``status_interval_s`` (default: the smallest of the adapters' own intervals).
    """
    if not adapters:
        return
    interval = status_interval_s or min(a.options.status_interval_s for a in adapters)

    async def report() -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            if not stop.is_set():
                for a in adapters:
                    a.publish_status()

    tasks = [asyncio.create_task(a.run(stop), name=f"adapter-{a.info.receiver_id}")
             for a in adapters]  # fmt: skip
    tasks.append(asyncio.create_task(report(), name="adapter-status"))
    try:
        await asyncio.gather(*tasks)
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def run_adapters(
    settings: HeimdallSettings,
    adapters: Sequence[ReceiverAdapter],
    *,
    duration_s: float | None = None,
    stop: threading.Event | None = None,
    publisher: EventPublisher | None = None,
    status_interval_s: float | None = None,
) -> RunSummary:
    """Run ``adapters`` to Kafka until ``duration_s``, ``stop`` or SIGINT/SIGTERM.

    Parameters
    ----------
    settings : HeimdallSettings
        Broker and topic names (chunks to ``topics.iq``, statuses to ``topics.receivers``).
    adapters : sequence of ReceiverAdapter
        The adapters; each must have a distinct receiver id.
    duration_s : float, optional
        Stop after this long (wall clock).
    stop : threading.Event, optional
        Stop when set (checked every 0.1 s).
    publisher : EventPublisher, optional
        A publisher to use (tests); by default one is made from ``settings``.
    status_interval_s : float, optional
        Period of the status reports (default: the adapters' ``status_interval_s``).
    """
    ids = [a.info.receiver_id for a in adapters]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise ValueError(f"receiver ids must be unique; repeated: {', '.join(dupes)}")
    pub = publisher or Publisher(settings)
    pump = KafkaPump(pub, settings.topics)
    for a in adapters:
        pump.attach(a)
    summary = RunSummary()
    t0 = time.monotonic()
    pump.start()
    try:
        asyncio.run(_main(adapters, duration_s, stop, status_interval_s))
    finally:
        summary.undelivered = pump.stop()
    summary.wall_s = time.monotonic() - t0
    summary.adapters = [_summary(a) for a in adapters]
    summary.pump = pump.stats
    return summary


async def _main(
    adapters: Sequence[ReceiverAdapter],
    duration_s: float | None,
    stop: threading.Event | None,
    status_interval_s: float | None,
) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)

    async def watch() -> None:
        deadline = None if duration_s is None else loop.time() + duration_s
        while not done.is_set():
            if (stop is not None and stop.is_set()) or (
                deadline is not None and loop.time() >= deadline
            ):
                done.set()
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(done.wait(), 0.1)

    watcher = asyncio.create_task(watch(), name="adapter-stop-watch")
    try:
        await serve_adapters(adapters, done, status_interval_s=status_interval_s)
    finally:
        done.set()
        await watcher
        if on_main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
