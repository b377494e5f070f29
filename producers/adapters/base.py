"""The adapter runtime every network receiver shares: connect, stream, reconnect, report.

A receiver adapter (rtl_tcp, OpenWebRX, KiwiSDR, ...) subclasses :class:`ReceiverAdapter`
and writes only the protocol: :meth:`~ReceiverAdapter.open` (connect and handshake) and
:meth:`~ReceiverAdapter.stream` (read until the connection ends, calling
:meth:`~ReceiverAdapter.data_received` for every read, :meth:`~ReceiverAdapter.emit` for
every finished :class:`~heimdall.schemas.models.IqChunk` and
:meth:`~ReceiverAdapter.malformed` for every frame it has to skip). The base class runs the
life cycle on an asyncio loop::

    OFFLINE ─► CONNECTING ──open()──► ONLINE ──stream()──► (error, EOF, stall) ─┐
                  ▲                                                            │
                  └──────────── wait: full-jitter exponential backoff ◄────────┘

* **Reconnect** with full-jitter exponential backoff (:class:`Backoff`): the k-th wait in a
  row is uniform on ``[0, min(cap, base · 2^k)]``; it starts again from k = 0 once a
  session has delivered a chunk.
* **Bounded buffer** (:class:`ChunkBuffer`) between the socket (the event loop) and Kafka
  (the :class:`~heimdall.producers.adapters.pump.KafkaPump` thread). When it is full the
  **oldest** chunk is dropped and counted: for live localisation the newest samples are
  worth more than a complete history, the loss shows downstream as a gap in ``seq``, and the
  socket is never slowed down (a TCP receiver that stops reading makes the server drop
  data anyway, or disconnect us — rtl_tcp keeps at most 500 buffers).
* **Stall detector**: no bytes for ``stall_timeout_s`` after a successful ``open()`` →
  state ``stalled``, the connection is closed and a reconnect is scheduled.
* **Malformed frames** are counted, logged once per reason (not per frame) and skipped; the
  adapter keeps running. A protocol violation that makes the stream unusable is raised as
  :class:`ProtocolError` and ends the session (then a reconnect).
* **Connection errors** (refused, DNS, unreachable, timeout) become one line that says what
  to check (:func:`describe_connect_error`).
* **Status**: a :class:`~heimdall.schemas.models.ReceiverStatus` (state, last data, chunks/s,
  errors, dropped) on every state change and every ``status_interval_s``
  (:meth:`~ReceiverAdapter.status`; the runtime publishes it to the compacted receivers
  topic under the receiver id).

The adapter itself never touches Kafka: a blocking ``produce`` (a full librdkafka queue)
must not stall the loop that reads 50 sockets.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import errno
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar

from heimdall.core.errors import HeimdallError
from heimdall.schemas.models import Band, IqChunk, Position, ReceiverState, ReceiverStatus

__all__ = [
    "AdapterError",
    "AdapterOptions",
    "AdapterStats",
    "Backoff",
    "ChunkBuffer",
    "ConnectError",
    "ProtocolError",
    "ReceiverAdapter",
    "ReceiverInfo",
    "StreamClosedError",
    "describe_connect_error",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- errors


class AdapterError(HeimdallError):
    """A session of an adapter ended; the message is one line for the operator."""


class ConnectError(AdapterError):
    """The receiver could not be reached (refused, DNS, unreachable, timeout)."""


class ProtocolError(AdapterError):
    """The peer does not speak the expected protocol (wrong port, wrong kind of server)."""


class StreamClosedError(AdapterError):
    """The peer closed the connection."""


def describe_connect_error(label: str, address: str, exc: BaseException, hint: str) -> str:
    """One line for a failed connection: what happened and what to check.

    Parameters
    ----------
    label : str
        The kind of server, as the operator knows it (``"rtl_tcp"``, ``"KiwiSDR"``).
    address : str
        ``host:port`` or the URL that was tried.
    exc : BaseException
        What ``open()`` raised.
    hint : str
        What to check when the connection is refused (``"is rtl_tcp running and listening
        on that port?"``).

    Examples
    --------
    ``rtl_tcp at 127.0.0.1:1234 refused the connection: is rtl_tcp running and listening on
    that port?``
    """
    where = f"{label} at {address}"
    if isinstance(exc, ConnectionRefusedError):
        return f"{where} refused the connection: {hint}"
    if isinstance(exc, socket.gaierror):
        host = address.rsplit(":", 1)[0] if "://" not in address else address
        return (
            f"{where}: the host name in {host!r} does not resolve ({exc.strerror or exc}): "
            "check its spelling and this machine's DNS"
        )
    if isinstance(exc, TimeoutError):
        return (
            f"{where} did not answer in time: check the address and port, that the host is "
            "up, and any firewall in between"
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return f"{where} is unreachable ({exc.strerror}): check the address and the network route"
    if isinstance(exc, ConnectionResetError):
        return f"{where} reset the connection: {hint}"
    if isinstance(exc, OSError):
        return f"{where}: {exc.strerror or exc}"
    return f"{where}: {type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- parts


class Backoff:
    """Full-jitter exponential backoff (AWS Architecture Blog, M. Brooker, 2015).

    The k-th delay since the last :meth:`reset` (k = 0, 1, ...) is drawn uniformly from
    ``[0, min(cap_s, base_s · 2^k)]``: its mean is ``min(cap, base·2^k)/2``, so the expected
    total wait before the n-th retry grows like ``base · 2^n`` until the cap, while the
    randomness keeps many receivers that lost the same server from reconnecting in step.

    Parameters
    ----------
    base_s, cap_s : float
        First ceiling and largest ceiling of the delay, s.
    rng : random.Random, optional
        Source of randomness (give a seeded one for reproducible tests).
    """

    def __init__(self, base_s: float = 0.5, cap_s: float = 60.0, rng: random.Random | None = None):
        if base_s <= 0 or cap_s < base_s:
            raise ValueError(f"backoff needs 0 < base_s <= cap_s, got {base_s}, {cap_s}")
        self.base_s = base_s
        self.cap_s = cap_s
        self.rng = rng or random.Random()
        self.attempt = 0

    def ceiling(self, attempt: int) -> float:
        """``min(cap, base · 2^attempt)``, s."""
        return min(self.cap_s, self.base_s * 2.0 ** min(attempt, 64))

    def next_delay(self) -> float:
        """The next delay, s; advances the attempt count."""
        delay = self.rng.uniform(0.0, self.ceiling(self.attempt))
        self.attempt += 1
        return delay

    def reset(self) -> None:
        """Start again from the first (shortest) ceiling."""
        self.attempt = 0


class ChunkBuffer:
    """Bounded FIFO of chunks between the event loop and the Kafka pump thread.

    ``put`` never blocks: a full buffer drops its **oldest** chunk and counts it in
    :attr:`dropped`. ``put`` runs on the loop, ``get`` on the pump thread; a lock keeps the
    count exact (uncontended, ~0.1 µs).
    """

    def __init__(self, maxlen: int) -> None:
        if maxlen < 1:
            raise ValueError(f"buffer size must be ≥ 1, got {maxlen}")
        self.maxlen = maxlen
        self._items: deque[IqChunk] = deque()
        self._lock = threading.Lock()
        self.dropped = 0
        self.put_total = 0

    def put(self, item: IqChunk) -> bool:
        """Append ``item``; return True if the oldest chunk had to be dropped for it."""
        with self._lock:
            self.put_total += 1
            self._items.append(item)
            if len(self._items) > self.maxlen:
                self._items.popleft()
                self.dropped += 1
                return True
            return False

    def get(self) -> IqChunk | None:
        """Take the oldest chunk, or None when empty."""
        with self._lock:
            return self._items.popleft() if self._items else None

    def __len__(self) -> int:
        return len(self._items)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiverInfo:
    """What a receiver is, independent of its health: the static part of its status.

    Parameters
    ----------
    receiver_id : str
        Unique id (the Kafka key of its chunks and status).
    kind : str
        Adapter kind (``rtltcp``, ``openwebrx``, ``kiwisdr``, ...).
    position : Position
        Antenna position (WGS84).
    url : str, optional
        Where the adapter connects (``host:port`` or URL).
    antenna : str, optional
        Free text.
    calibration_offset_db : float
        Added to ``full_scale_dbm`` of every chunk, dB (measured power = reported + offset).
    bands : tuple of Band
        Frequency ranges the receiver covers.
    """

    receiver_id: str
    kind: str
    position: Position
    url: str | None = None
    antenna: str | None = None
    calibration_offset_db: float = 0.0
    bands: tuple[Band, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AdapterOptions:
    """Runtime knobs shared by every adapter (all times in s).

    Parameters
    ----------
    buffer_chunks : int
        Capacity of the socket → Kafka buffer, chunks (64 × 0.2 s = 12.8 s of signal).
    connect_timeout_s : float
        Longest wait for ``open()`` (TCP connect and handshake).
    stall_timeout_s : float
        No bytes for this long → ``stalled``, reconnect.
    backoff_base_s, backoff_cap_s : float
        Full-jitter backoff: first and largest delay ceiling.
    status_interval_s : float
        Period of the status reports (plus one on every state change).
    seed : int, optional
        Seed of the backoff's randomness (tests); None = from the OS.
    """

    buffer_chunks: int = 64
    connect_timeout_s: float = 10.0
    stall_timeout_s: float = 10.0
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    status_interval_s: float = 10.0
    seed: int | None = None


@dataclass
class AdapterStats:
    """Running counts of one adapter (since it was created)."""

    chunks: int = 0
    bytes_in: int = 0
    sessions: int = 0
    errors: int = 0
    malformed: int = 0
    stalls: int = 0
    malformed_reasons: dict[str, int] = field(default_factory=dict)


StatusListener = Callable[[ReceiverStatus], None]


# --------------------------------------------------------------------------- adapter


class ReceiverAdapter(abc.ABC):
    """Base of every network receiver adapter (see the module docstring).

    Subclasses set :attr:`kind` and :attr:`label`, may override :attr:`refused_hint`, and
    implement :meth:`open`, :meth:`stream` and :meth:`close` (and :meth:`reset` when they
    keep per-connection state such as filter histories). Inside :meth:`stream` they call
    :meth:`data_received` for every read (it feeds the stall detector),
    :meth:`next_seq` / :meth:`emit` for every chunk and :meth:`malformed` for every frame
    they skip. :meth:`run` drives everything until its ``stop`` event is set.

    Parameters
    ----------
    info : ReceiverInfo
        Id, kind, position, ... of the receiver.
    options : AdapterOptions, optional
        Buffer size, timeouts, backoff.
    """

    #: Adapter kind (``ReceiverStatus.kind``, ``IqChunk.source``).
    kind: ClassVar[str] = "unknown"
    #: Name of the server software in messages (``"rtl_tcp"``).
    label: ClassVar[str] = "receiver"
    #: What to check when the connection is refused.
    refused_hint: ClassVar[str] = "is the receiver running and listening on that port?"

    def __init__(self, info: ReceiverInfo, options: AdapterOptions | None = None) -> None:
        self.info = info
        self.options = options or AdapterOptions()
        opt = self.options
        self.buffer = ChunkBuffer(opt.buffer_chunks)
        self.backoff = Backoff(opt.backoff_base_s, opt.backoff_cap_s, random.Random(opt.seed))
        self.stats = AdapterStats()
        self.state = ReceiverState.OFFLINE
        self.message: str | None = None
        #: The line of the last session that failed (None while none has).
        self.last_error: str | None = None
        self.last_data_ns: int | None = None
        #: Called with every status (state changes and periodic reports); set by the runtime.
        self.on_status: StatusListener | None = None
        #: Called after every chunk put in the buffer (wakes the pump); set by the runtime.
        self.on_chunk: Callable[[], None] | None = None
        self._seq = 0
        self._last_data_mono: float | None = None
        self._session_chunks = 0
        self._stalled = False
        self._rate_mark: tuple[float, int] = (time.monotonic(), 0)
        self._rate = 0.0
        self._last_logged: str | None = None

    # ---------------------------------------------------------------- to implement

    @property
    def address(self) -> str:
        """Where the adapter connects, for messages (``host:port`` or URL)."""
        return self.info.url or "?"

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and handshake (runs under ``connect_timeout_s``).

        Raise :class:`ProtocolError` if the peer is not the expected server; ``OSError``
        and ``TimeoutError`` are turned into one-line messages by the base class.
        """

    @abc.abstractmethod
    async def stream(self) -> None:
        """Read and convert until the connection ends.

        Return (or raise :class:`StreamClosedError`) when the peer closes the connection;
        raise :class:`ProtocolError` when the stream cannot be continued. Call
        :meth:`data_received`, :meth:`emit` and :meth:`malformed` as data comes.
        """

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Close the connection; must be idempotent and must not raise."""

    def reset(self) -> None:  # noqa: B027 - optional hook
        """Forget per-connection state before each new connection (filters, partial frames)."""

    # ---------------------------------------------------------------- for subclasses

    def data_received(self, nbytes: int) -> None:
        """Note that ``nbytes`` arrived now (feeds the stall detector and ``last_data``)."""
        self.stats.bytes_in += nbytes
        self._last_data_mono = time.monotonic()
        self.last_data_ns = time.time_ns()

    def next_seq(self) -> int:
        """The sequence number of the next chunk (+1 per chunk, continuing across sessions)."""
        seq = self._seq
        self._seq += 1
        return seq

    def emit(self, chunk: IqChunk) -> None:
        """Hand a finished chunk to the buffer (never blocks; a full buffer drops the oldest)."""
        if self.buffer.put(chunk) and self.buffer.dropped == 1:
            log.warning(
                "%s: the buffer to Kafka is full (%d chunks): dropping the oldest chunks; "
                "the count is in the receiver status",
                self.info.receiver_id,
                self.buffer.maxlen,
            )
        self.stats.chunks += 1
        self._session_chunks += 1
        if self._session_chunks == 1:
            self.backoff.reset()
        if self.on_chunk is not None:
            self.on_chunk()

    def malformed(self, reason: str, detail: str = "") -> None:
        """Count a skipped frame; the first frame of each ``reason`` is logged (one line)."""
        self.stats.malformed += 1
        n = self.stats.malformed_reasons.get(reason, 0)
        self.stats.malformed_reasons[reason] = n + 1
        if n == 0:
            log.warning(
                "%s: skipping a malformed frame from %s %s: %s%s (further ones with this "
                "reason are counted, not logged)",
                self.info.receiver_id,
                self.label,
                self.address,
                reason,
                f" ({detail})" if detail else "",
            )

    def set_state(self, state: ReceiverState, message: str | None = None) -> None:
        """Change the state; a change (or a new message) sends a status at once."""
        changed = state != self.state or (message is not None and message != self.message)
        self.state = state
        if message is not None:
            self.message = message
        if changed:
            self.publish_status()

    # ---------------------------------------------------------------- status

    @property
    def errors(self) -> int:
        """Failed sessions plus malformed frames."""
        return self.stats.errors + self.stats.malformed

    def status(self) -> ReceiverStatus:
        """The current :class:`ReceiverStatus`; chunks/s over the last ≥ 1 s."""
        now = time.monotonic()
        t0, n0 = self._rate_mark
        if now - t0 >= 1.0:
            self._rate = (self.stats.chunks - n0) / (now - t0)
            self._rate_mark = (now, self.stats.chunks)
        i = self.info
        return ReceiverStatus(
            receiver_id=i.receiver_id,
            kind=i.kind,
            position=i.position,
            state=self.state,
            updated_ns=time.time_ns(),
            url=i.url,
            antenna=i.antenna,
            calibration_offset_db=i.calibration_offset_db,
            bands=i.bands,
            last_data_ns=self.last_data_ns,
            chunks_per_s=self._rate,
            errors=self.errors,
            dropped=self.buffer.dropped,
            message=self.message,
        )

    def publish_status(self) -> None:
        """Send the current status to the listener (the runtime's publisher), if any."""
        if self.on_status is not None:
            self.on_status(self.status())

    # ---------------------------------------------------------------- life cycle

    def describe_error(self, exc: BaseException) -> str:
        """One line for an exception that ended a session."""
        if isinstance(exc, AdapterError):
            return str(exc)
        if isinstance(exc, OSError | TimeoutError):
            return describe_connect_error(self.label, self.address, exc, self.refused_hint)
        return f"{self.label} at {self.address}: {type(exc).__name__}: {exc}"

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, stream and reconnect until ``stop`` is set; ends in state ``offline``."""
        try:
            while not stop.is_set():
                error = await self._one_session(stop)
                if stop.is_set():
                    break
                self.stats.errors += 1
                self.last_error = error
                if self._session_chunks:  # it worked in between: log the next failure again
                    self._last_logged = None
                delay = self.backoff.next_delay()
                level = logging.WARNING if error != self._last_logged else logging.DEBUG
                log.log(level, "%s: %s; reconnecting in %.1f s",
                        self.info.receiver_id, error, delay)  # fmt: skip
                self._last_logged = error
                state = ReceiverState.STALLED if self._stalled else ReceiverState.ERROR
                self.set_state(state, error)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
        finally:
            self.set_state(ReceiverState.OFFLINE, "stopped")

    async def _one_session(self, stop: asyncio.Event) -> str:
        """One connection from open to its end; returns why it ended (one line)."""
        loop = asyncio.get_running_loop()
        self.reset()
        self._stalled = False
        self._session_chunks = 0
        self._last_data_mono = None
        self.stats.sessions += 1
        self.set_state(ReceiverState.CONNECTING)
        session = loop.create_task(self._session(), name=f"{self.info.receiver_id}-session")
        stopper = loop.create_task(stop.wait(), name=f"{self.info.receiver_id}-stop")
        watchdog = loop.call_later(self.options.stall_timeout_s, self._check_stall, session)
        try:
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            watchdog.cancel()
            stopper.cancel()
            if not session.done():
                session.cancel()
            with contextlib.suppress(BaseException):
                await session
            with contextlib.suppress(BaseException):
                await self.close()
        if stop.is_set():
            return "stopped"
        if self._stalled:
            self.stats.stalls += 1
            return (
                f"no data from {self.label} at {self.address} for "
                f"{self.options.stall_timeout_s:g} s: stalled"
            )
        exc = session.exception() if not session.cancelled() else None
        if exc is None:
            return f"{self.label} at {self.address} closed the connection"
        return self.describe_error(exc)

    async def _session(self) -> None:
        async with asyncio.timeout(self.options.connect_timeout_s):
            await self.open()
        self._last_data_mono = time.monotonic()
        self.set_state(ReceiverState.ONLINE, f"connected to {self.label} at {self.address}")
        await self.stream()

    def _check_stall(self, session: asyncio.Task[None]) -> None:
        """Watchdog: cancel the session after ``stall_timeout_s`` without data."""
        if session.done():
            return
        loop = asyncio.get_running_loop()
        timeout = self.options.stall_timeout_s
        last = self._last_data_mono
        if last is None:  # still connecting: the connect timeout is in charge
            loop.call_later(timeout, self._check_stall, session)
            return
        idle = time.monotonic() - last
        if idle >= timeout:
            self._stalled = True
            self.set_state(ReceiverState.STALLED, f"no data for {idle:.1f} s")
            session.cancel()
        else:
            loop.call_later(timeout - idle, self._check_stall, session)
