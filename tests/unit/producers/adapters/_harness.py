"""What the adapter tests share: fast reconnect options, a receiver, run-until, a free port."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable

from heimdall.producers.adapters.base import AdapterOptions, ReceiverAdapter, ReceiverInfo
from heimdall.schemas.models import Position, ReceiverState, ReceiverStatus

#: Reconnect quickly so that tests of outages take tenths of a second.
FAST = AdapterOptions(backoff_base_s=0.02, backoff_cap_s=0.05, stall_timeout_s=5.0, seed=1)
#: As FAST, with a stall declared after 0.5 s without data.
STALL_FAST = AdapterOptions(stall_timeout_s=0.5, backoff_base_s=0.02, backoff_cap_s=0.05)


def receiver_info(receiver_id: str, kind: str) -> ReceiverInfo:
    """A receiver in Turin at 240 m with a −1.5 dB calibration offset."""
    return ReceiverInfo(
        receiver_id=receiver_id,
        kind=kind,
        position=Position(lat_deg=45.07, lon_deg=7.68, alt_m=240.0),
        calibration_offset_db=-1.5,
    )


async def run_until(
    adapter: ReceiverAdapter, done: Callable[[], bool], timeout_s: float = 10.0
) -> list[ReceiverStatus]:
    """Run ``adapter`` until ``done()`` (asserted); return every status it sent."""
    seen: list[ReceiverStatus] = []
    adapter.on_status = seen.append
    stop = asyncio.Event()
    task = asyncio.create_task(adapter.run(stop))
    deadline = time.monotonic() + timeout_s
    reached = False
    while time.monotonic() < deadline:
        if reached := done():
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5.0)
    assert reached, f"not reached in {timeout_s} s; statuses: {[s.message for s in seen]}"
    return seen


def free_port() -> int:
    """A loopback TCP port nobody listens on (just now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def assert_stall_reported(
    seen: list[ReceiverStatus], adapter: ReceiverAdapter, timeout_s: float = 0.5
) -> None:
    """A STALLED status came ``timeout_s`` (+ < 0.3 s of scheduling) after the last data."""
    stalled = [s for s in seen if s.state is ReceiverState.STALLED]
    assert stalled and adapter.stats.stalls >= 1
    s = stalled[0]
    assert s.last_data_ns is not None
    assert timeout_s <= (s.updated_ns - s.last_data_ns) / 1e9 < timeout_s + 0.3
