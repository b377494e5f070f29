"""The adapter runtime with a scripted in-memory adapter: backoff, buffer, stall, malformed
frames, connection errors, statuses, and the Kafka pump with a slow publisher."""

from __future__ import annotations

import asyncio
import errno
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from scipy import stats

from heimdall.core.settings import TopicNames
from heimdall.producers.adapters.base import (
    AdapterOptions,
    Backoff,
    ChunkBuffer,
    ReceiverAdapter,
    ReceiverInfo,
    describe_connect_error,
)
from heimdall.producers.adapters.pump import KafkaPump
from heimdall.producers.adapters.runtime import serve_adapters
from heimdall.schemas.models import (
    ClockSource,
    IqChunk,
    Position,
    ReceiverState,
    ReceiverStatus,
    SampleFormat,
)

POS = Position(lat_deg=45.0, lon_deg=7.0, alt_m=200.0)


def make_chunk(receiver_id: str = "rx", seq: int = 0, n: int = 16) -> IqChunk:
    return IqChunk(
        receiver_id=receiver_id,
        seq=seq,
        t_ns=1_760_000_000_000_000_000 + seq,
        clock=ClockSource.NTP,
        center_freq_hz=145.5e6,
        sample_rate_hz=12_000.0,
        sample_format=SampleFormat.CI16,
        iq=np.zeros(n, dtype=np.complex64),
        full_scale_dbm=-20.0,
        position=POS,
        source="fake",
    )


class ScriptedAdapter(ReceiverAdapter):
    """An adapter whose connections follow a script instead of a socket.

    Each session is a list of steps: ``b"OK..."`` a good frame (one chunk), any other bytes
    a malformed frame (reason = its first 3 bytes), a float a pause in s, ``"stall"`` no
    more data with the connection open. The string ``"refuse"`` as a whole session makes
    ``open()`` fail with ECONNREFUSED. After the last session the adapter idles.
    """

    kind = "fake"
    label = "fake server"
    refused_hint = "is the fake server up?"

    def __init__(self, sessions: list[Any], options: AdapterOptions | None = None) -> None:
        info = ReceiverInfo(receiver_id="rx-fake", kind="fake", position=POS, url="fake:1")
        super().__init__(info, options)
        self.sessions = list(sessions)
        self.script: list[Any] = []
        self.closed = 0
        self.resets = 0

    async def open(self) -> None:
        if not self.sessions:
            await asyncio.Event().wait()
        script = self.sessions.pop(0)
        if script == "refuse":
            raise ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
        self.script = list(script)

    async def stream(self) -> None:
        for step in self.script:
            if isinstance(step, float):
                await asyncio.sleep(step)
            elif step == "stall":
                await asyncio.Event().wait()
            else:
                self.data_received(len(step))
                if step.startswith(b"OK"):
                    self.emit(make_chunk(self.info.receiver_id, self.next_seq()))
                else:
                    self.malformed(f"bad type {step[:3]!r}")

    async def close(self) -> None:
        self.closed += 1

    def reset(self) -> None:
        self.resets += 1


def run_until(
    adapter: ReceiverAdapter, done: Callable[[], bool], timeout_s: float = 5.0
) -> list[tuple[float, ReceiverStatus]]:
    """Run the adapter until ``done()``; return (monotonic time, status) of each status.

    Statuses still go to a listener already attached (the pump).
    """
    seen: list[tuple[float, ReceiverStatus]] = []
    downstream = adapter.on_status

    def listen(s: ReceiverStatus) -> None:
        seen.append((time.monotonic(), s))
        if downstream is not None:
            downstream(s)

    adapter.on_status = listen

    async def main() -> bool:
        stop = asyncio.Event()
        task = asyncio.create_task(adapter.run(stop))
        deadline = time.monotonic() + timeout_s
        while not (reached := done()) and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        stop.set()
        await asyncio.wait_for(task, 5.0)
        return reached

    assert asyncio.run(main()), "condition not reached in time"
    return seen


FAST = AdapterOptions(backoff_base_s=0.01, backoff_cap_s=0.05, stall_timeout_s=5.0, seed=7)


# ----------------------------------------------------------------------- backoff


def test_backoff_full_jitter_is_uniform_under_a_doubling_capped_ceiling() -> None:
    base, cap, steps, runs = 0.5, 8.0, 8, 3000
    ceilings = [min(cap, base * 2**k) for k in range(steps)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0]
    b = Backoff(base, cap, random.Random(20240611))
    draws = np.empty((runs, steps))
    for r in range(runs):
        b.reset()
        for k in range(steps):
            draws[r, k] = b.next_delay()
    for k, ceil in enumerate(ceilings):
        d = draws[:, k]
        assert d.min() >= 0.0 and d.max() <= ceil
        # mean of U(0, c) is c/2 with standard error c/sqrt(12 n): allow 4 of them
        assert abs(d.mean() - ceil / 2) < 4 * ceil / np.sqrt(12 * runs)
        assert stats.kstest(d, "uniform", args=(0.0, ceil)).pvalue > 0.001
    # the same seed gives the same sequence; reset starts again from the first ceiling
    a1, a2 = Backoff(base, cap, random.Random(1)), Backoff(base, cap, random.Random(1))
    assert [a1.next_delay() for _ in range(5)] == [a2.next_delay() for _ in range(5)]
    a1.reset()
    assert a1.attempt == 0 and a1.ceiling(a1.attempt) == base


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="base_s"):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError, match="base_s"):
        Backoff(2.0, 1.0)


# ------------------------------------------------------------------------ buffer


def test_chunk_buffer_drops_the_oldest_and_counts() -> None:
    buf = ChunkBuffer(3)
    dropped = [buf.put(make_chunk(seq=i)) for i in range(5)]
    assert dropped == [False, False, False, True, True]
    assert buf.dropped == 2 and len(buf) == 3
    assert [c.seq for c in iter(buf.get, None)] == [2, 3, 4]
    assert buf.get() is None


# -------------------------------------------------------------- malformed frames


def test_malformed_frames_are_counted_logged_once_per_reason_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    script = [b"OK1", b"XX1", b"XX2", b"OK2", b"YYY", b"XX3", b"OK3"] + [b"XX4"] * 20 + [b"OK4"]
    a = ScriptedAdapter([script], FAST)
    with caplog.at_level(logging.WARNING, logger="heimdall.producers.adapters.base"):
        run_until(a, lambda: a.stats.chunks == 4)
    assert a.stats.malformed == 24
    assert a.stats.malformed_reasons == {"bad type b'XX1'": 1, "bad type b'XX2'": 1,
                                         "bad type b'YYY'": 1, "bad type b'XX3'": 1,
                                         "bad type b'XX4'": 20}  # fmt: skip
    logged = [r for r in caplog.records if "malformed frame" in r.getMessage()]
    assert len(logged) == 5  # one per reason, not 24
    assert [c.seq for c in iter(a.buffer.get, None)] == [0, 1, 2, 3]
    assert a.errors >= 24


# ------------------------------------------------------------- reconnect, errors


def test_reconnects_after_close_and_refusal_with_one_line_errors() -> None:
    a = ScriptedAdapter([[b"OK", b"OK"], "refuse", "refuse", [b"OK", "stall"]], FAST)
    seen = run_until(a, lambda: a.stats.chunks == 3)
    states = [s.state for _, s in seen]
    assert states[:3] == [ReceiverState.CONNECTING, ReceiverState.ONLINE, ReceiverState.ERROR]
    assert states.count(ReceiverState.ONLINE) == 2
    assert states[-1] is ReceiverState.OFFLINE
    msgs = [s.message for _, s in seen if s.state is ReceiverState.ERROR]
    assert msgs[0] == "fake server at fake:1 closed the connection"
    assert msgs[1] == "fake server at fake:1 refused the connection: is the fake server up?"
    assert all("\n" not in (m or "") for m in msgs)
    assert a.stats.errors == 3 and a.stats.sessions == 4
    assert a.resets == 4 and a.closed == 4  # reset before, close after every session
    assert [c.seq for c in iter(a.buffer.get, None)] == [0, 1, 2]  # seq continues


def test_connection_errors_say_what_to_check() -> None:
    hint = "is rtl_tcp running and listening on that port?"
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert describe_connect_error("rtl_tcp", "127.0.0.1:1234", refused, hint) == (
        "rtl_tcp at 127.0.0.1:1234 refused the connection: is rtl_tcp running and listening "
        "on that port?"
    )
    dns = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    msg = describe_connect_error("rtl_tcp", "no-such-host.invalid:1234", dns, hint)
    assert "does not resolve" in msg and "no-such-host.invalid" in msg and "check" in msg
    msg = describe_connect_error("KiwiSDR", "ws://kiwi:8073", TimeoutError(), hint)
    assert msg.startswith("KiwiSDR at ws://kiwi:8073 did not answer in time: check")
    unreach = OSError(errno.EHOSTUNREACH, "No route to host")
    assert "unreachable" in describe_connect_error("rtl_tcp", "10.9.9.9:1234", unreach, hint)
    for m in (msg,):
        assert "\n" not in m


# ------------------------------------------------------------------------- stall


def test_a_stall_is_detected_within_the_timeout_then_reconnects() -> None:
    opts = AdapterOptions(backoff_base_s=0.01, backoff_cap_s=0.02, stall_timeout_s=0.3, seed=1)
    a = ScriptedAdapter([[b"OK", "stall"], [b"OK", "stall"]], opts)
    seen = run_until(a, lambda: a.stats.chunks == 2 and a.state is ReceiverState.ONLINE)
    stalled = [(t, s) for t, s in seen if s.state is ReceiverState.STALLED]
    assert stalled, [s.state for _, s in seen]
    t_stall, status = stalled[0]
    assert status.last_data_ns is not None
    # last data of session 1 was at "online"; the stall is declared no sooner than 0.3 s
    # later (how much later depends on the machine's load: the watchdog's schedule is
    # checked on a fake clock below)
    t_online = next(t for t, s in seen if s.state is ReceiverState.ONLINE)
    assert t_stall - t_online >= 0.3
    assert status.updated_ns - status.last_data_ns >= 0.3e9
    assert a.stats.stalls == 1 and a.stats.sessions == 2


class FakeClock:
    """``time`` for the adapter base (``monotonic`` set by hand) and a loop that records
    ``call_later`` instead of running it."""

    def __init__(self) -> None:
        self.now_s = 100.0
        self.later: list[tuple[float, Callable[..., None]]] = []

    def monotonic(self) -> float:
        return self.now_s

    def time_ns(self) -> int:
        return time.time_ns()

    def call_later(self, delay: float, fn: Callable[..., None], *args: Any) -> None:
        self.later.append((delay, fn))


class FakeSession:
    cancelled = False

    def done(self) -> bool:
        return False

    def cancel(self) -> None:
        self.cancelled = True


def test_the_stall_watchdog_fires_exactly_at_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The watchdog re-arms for the rest of the timeout while data is recent, and declares
    the stall when ``stall_timeout_s`` has passed without data (a fake clock: no window)."""
    from heimdall.producers.adapters import base as base_module

    clock = FakeClock()
    monkeypatch.setattr(base_module, "time", clock)
    monkeypatch.setattr(base_module.asyncio, "get_running_loop", lambda: clock)
    a = ScriptedAdapter([], AdapterOptions(stall_timeout_s=0.5))
    session = FakeSession()
    eps = 2.0**-20  # times are binary fractions here: the comparisons are exact
    a._check_stall(session)  # type: ignore[arg-type]  # still connecting: check again later
    assert clock.later[-1][0] == 0.5 and a.state is not ReceiverState.STALLED
    a.data_received(10)  # data at t = 100.0
    clock.now_s += 0.25
    a._check_stall(session)  # type: ignore[arg-type]
    assert clock.later[-1][0] == 0.25 and not session.cancelled
    clock.now_s += 0.25 - eps
    a._check_stall(session)  # type: ignore[arg-type]
    assert not session.cancelled and clock.later[-1][0] == eps
    clock.now_s += eps
    a._check_stall(session)  # type: ignore[arg-type]
    assert session.cancelled and a.state is ReceiverState.STALLED
    assert a.message == "no data for 0.5 s"


# ---------------------------------------------------------------------- statuses


def test_periodic_status_reports_rates_and_counts() -> None:
    opts = AdapterOptions(status_interval_s=0.1, buffer_chunks=4, seed=3)
    a = ScriptedAdapter([[*([b"OK", 0.01] * 150), "stall"]], opts)
    seen: list[ReceiverStatus] = []
    a.on_status = seen.append

    def online() -> list[ReceiverStatus]:
        return [s for s in seen if s.state is ReceiverState.ONLINE]

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve_adapters([a], stop))
        # counts, not a wall-clock window: until 8 periodic reports and a rate were seen
        # (a loaded machine takes longer; the guard only ends a broken run)
        guard = time.monotonic() + 60.0
        while not (len(online()) >= 8 and any(s.chunks_per_s > 0 for s in online())):
            assert time.monotonic() < guard, [s.state for s in seen]
            await asyncio.sleep(0.02)
        stop.set()
        await task

    asyncio.run(main())
    rates = [s.chunks_per_s for s in online() if s.chunks_per_s > 0]
    # a rate is the chunks of a window of at least 1 s: never more than the 150 there are
    assert rates and max(rates) <= 150.0
    assert [s.dropped for s in online()] == sorted(s.dropped for s in online())
    last = seen[-1]
    assert last.state is ReceiverState.OFFLINE
    assert last.dropped == a.buffer.dropped > 0  # nobody drains: the buffer of 4 drops
    assert last.receiver_id == "rx-fake" and last.kind == "fake" and last.position == POS


def test_the_rate_is_chunks_over_a_window_of_at_least_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from heimdall.producers.adapters import base as base_module

    clock = FakeClock()
    monkeypatch.setattr(base_module, "time", clock)
    a = ScriptedAdapter([], AdapterOptions(buffer_chunks=200))
    for _ in range(50):
        a.emit(make_chunk(a.info.receiver_id, a.next_seq()))
    clock.now_s += 0.5
    assert a.status().chunks_per_s == 0.0  # the window is not a second long yet
    clock.now_s += 0.75
    assert a.status().chunks_per_s == pytest.approx(50 / 1.25)
    for _ in range(30):
        a.emit(make_chunk(a.info.receiver_id, a.next_seq()))
    clock.now_s += 0.9
    assert a.status().chunks_per_s == pytest.approx(50 / 1.25)  # kept until the next window
    clock.now_s += 0.1
    assert a.status().chunks_per_s == pytest.approx(30 / 1.0)


# -------------------------------------------------------------------------- pump


class SlowPublisher:
    """A publisher that blocks until released (a broker that cannot keep up)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.polled = threading.Event()
        self.published: list[tuple[str, str, Any]] = []
        self.producer = self

    def poll(self, timeout: float = 0.0) -> int:
        self.polled.set()
        return 0

    def publish(self, topic: str, key: str, event: Any, t_ns: int | None = None) -> None:
        self.gate.wait(10.0)
        self.published.append((topic, key, event))

    def flush(self, timeout_s: float = 30.0) -> int:
        return 0


def test_pump_under_a_slow_broker_drops_oldest_chunks_and_reports_the_count() -> None:
    opts = AdapterOptions(buffer_chunks=5, seed=2)
    a = ScriptedAdapter([[*([b"OK"] * 40), "stall"]], opts)
    pub = SlowPublisher()
    topics = TopicNames()
    pump = KafkaPump(pub, topics)
    pump.attach(a)
    pump.start()
    try:
        run_until(a, lambda: a.stats.chunks == 40)
    finally:
        pub.gate.set()
        assert pump.stop() == 0
    assert a.buffer.dropped >= 40 - 5 - 2  # at most the buffer and one in flight survive
    chunks = [e for t, _, e in pub.published if t == topics.iq]
    statuses = [e for t, _, e in pub.published if t == topics.receivers]
    assert len(chunks) + a.buffer.dropped == 40
    assert [c.seq for c in chunks] == sorted(c.seq for c in chunks)
    assert chunks[-1].seq == 39  # the newest survive
    assert statuses[-1].state is ReceiverState.OFFLINE
    assert statuses[-1].dropped == a.buffer.dropped
    assert pump.stats.chunks == len(chunks)


def test_pump_routes_each_event_type_to_its_topic() -> None:
    from heimdall.schemas.models import AudioChunk, Measurement, WaterfallRow
    from tests.unit.schemas.examples import audio_chunk, examples, iq_chunk, waterfall_row

    measurement = next(e for e in examples() if isinstance(e, Measurement))
    pub = SlowPublisher()
    pub.gate.set()
    topics = TopicNames(waterfall="wf", audio="au")
    a = ScriptedAdapter([[]])
    pump = KafkaPump(pub, topics)
    pump.attach(a)
    sent: list[Any] = [iq_chunk(), measurement, waterfall_row(), audio_chunk(), "not an event"]
    for event in sent:
        a.buffer.put(event)
    pump.start()
    assert pump.stop() == 0
    assert [(t, type(e)) for t, _, e in pub.published] == [
        (topics.iq, IqChunk),
        (topics.features, Measurement),
        ("wf", WaterfallRow),
        ("au", AudioChunk),
    ]
    assert pump.stats.chunks == 4 and pump.stats.failed == 1
    assert list(pump.stats.failure_reasons) == ["no topic for events of type str"]


def test_pump_lingers_after_a_wake_up_to_publish_chunks_together_but_not_on_stop() -> None:
    """Woken from idle, the pump lingers to gather more chunks; stop() cuts the linger short.

    The idle wait and the linger are an hour: only a wake-up ends the first and only stop()
    the second (were stop() not to cut it, the test would hang until pytest's timeout), so
    nothing here depends on how fast the machine is.
    """
    from tests.unit.schemas.examples import iq_chunk

    pub = SlowPublisher()
    pub.gate.set()
    a, b = ScriptedAdapter([[]]), ScriptedAdapter([[]])
    pump = KafkaPump(pub, TopicNames(), idle_s=3600.0, linger_s=3600.0)
    pump.attach(a)
    pump.attach(b)
    pump.start()
    try:
        assert pub.polled.wait(30.0)  # it drained the empty buffers: now it sleeps until woken
        a.buffer.put(iq_chunk())
        a.on_chunk()  # type: ignore[misc]  # wakes it: it lingers to gather more
        b.buffer.put(iq_chunk())
        b.on_chunk()  # type: ignore[misc]
        a.buffer.put(iq_chunk())
        a.on_chunk()  # type: ignore[misc]
        assert pub.published == []  # still gathering
    finally:
        assert pump.stop() == 0  # cuts the linger short and publishes everything
    assert len(pub.published) == 3 and pump.stats.chunks == 3
