"""What the adapter-into-Kafka tests share: stand-in servers on a thread, a topic reader."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from confluent_kafka import Message

from heimdall.core import kafka
from heimdall.core.settings import HeimdallSettings


class StandIn(Protocol):
    """A local protocol stand-in: started and closed on an asyncio loop."""

    async def start(self) -> Any: ...

    async def close(self) -> Any: ...


@contextmanager
def serving(*servers: StandIn, name: str) -> Iterator[None]:
    """Run ``servers`` on one event loop in a thread; stop the loop and join the thread after."""
    loop = asyncio.new_event_loop()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        for s in servers:
            loop.run_until_complete(s.start())
        started.set()
        loop.run_forever()
        for s in servers:
            loop.run_until_complete(s.close())
        loop.close()

    thread = threading.Thread(target=serve, name=name)
    thread.start()
    assert started.wait(10)
    try:
        yield
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def read(settings: HeimdallSettings, topics: list[str], timeout_s: float) -> list[Message]:
    """Every message of ``topics`` until 2 s of quiet after the first one (or ``timeout_s``)."""
    c = kafka.consumer(settings, f"reader-{topics[0]}")
    c.subscribe(topics)
    out: list[Message] = []
    deadline = time.monotonic() + timeout_s
    quiet = 0
    try:
        while time.monotonic() < deadline and quiet < 4:
            got = [m for m in c.consume(500, timeout=0.5) if not m.error()]
            out += got
            quiet = 0 if got or not out else quiet + 1
    finally:
        c.close()
    return out
