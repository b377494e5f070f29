"""Replay recordings into the IQ topic, in real time × a speed factor or as fast as possible.

A recording becomes a :class:`ReplaySource`: a receiver id, a position and an iterator of
:class:`~heimdall.schemas.models.IqChunk`. :func:`replay` merges any number of sources by
event time (so several receivers' recordings of the same moment arrive together, as they
would live), paces them, and publishes them to ``rf.iq`` keyed by receiver id, with a
``ReceiverStatus`` ONLINE before and OFFLINE after on ``rf.receivers``.

KiwiSDR WAV chunks (:func:`kiwi_chunks`)
    ``blocks_per_chunk`` blocks of 512 samples (5: 2560 samples, 213 ms at 12001 Hz), never
    across a jump of the GPS stamps (lost packets), so each chunk is continuous.
    ``t_ns`` is the UTC time of the chunk's first sample from the recording's GPS time base
    (GPS week from the file-name date, GPS − UTC from the leap-second table: 18 s since
    2017); ``sample_rate_hz`` is the fitted true rate; ``clock`` is GPS when the recording
    has a GPS time base and the chunk's first block has ``last_gps_solution`` below the
    recording's ``max_solution_age_s`` (254 by default, upstream's "no recent solution"),
    FREE otherwise. Samples go as ci16 (the file's own resolution, so nothing is lost);
    ``full_scale_dbm`` is 0 unless given: a KiwiSDR's IQ is not calibrated in power.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from heimdall.core.errors import RecordingError
from heimdall.core.settings import HeimdallSettings
from heimdall.producers.adapters.pump import EventPublisher
from heimdall.producers.publisher import Publisher
from heimdall.producers.recordings.kiwi_wav import (
    KiwiRecording,
    TimeBaseMethod,
    find_gnss_pos,
    read_gnss_pos,
    read_kiwi_wav,
)
from heimdall.schemas.models import (
    ClockSource,
    IqChunk,
    Position,
    ReceiverState,
    ReceiverStatus,
    SampleFormat,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_BLOCKS_PER_CHUNK",
    "ReplaySource",
    "ReplayStats",
    "kiwi_chunks",
    "kiwi_position",
    "kiwi_receiver_id",
    "kiwi_source",
    "replay",
    "replay_kiwi_wav",
]

#: Blocks of 512 samples per published chunk (≈ 213 ms at 12001 Hz).
DEFAULT_BLOCKS_PER_CHUNK = 5

ProgressFn = Callable[[int, int], None]
"""Called with (samples published, samples in all sources) after each chunk."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplaySource:
    """One receiver's recording, ready to publish.

    ``chunks`` is consumed once; ``n_samples`` (for progress) is what it will yield.
    """

    receiver_id: str
    kind: str
    position: Position
    chunks: Iterable[IqChunk]
    n_samples: int
    url: str | None = None


@dataclass
class ReplayStats:
    """What :func:`replay` published."""

    chunks: dict[str, int] = field(default_factory=dict)
    samples: dict[str, int] = field(default_factory=dict)
    first_t_ns: int | None = None
    last_t_ns: int | None = None
    wall_s: float = 0.0
    stopped: bool = False
    undelivered: int = 0


# --------------------------------------------------------------------------- kiwi


def kiwi_receiver_id(station: str) -> str:
    """Receiver id of a KiwiSDR station: ``kiwi-`` + the station in lower case."""
    return f"kiwi-{station.lower()}"


def kiwi_chunks(
    rec: KiwiRecording,
    *,
    position: Position,
    receiver_id: str | None = None,
    blocks_per_chunk: int = DEFAULT_BLOCKS_PER_CHUNK,
    center_freq_hz: float | None = None,
    full_scale_dbm: float = 0.0,
    method: TimeBaseMethod = "piecewise",
    first_seq: int = 0,
) -> Iterator[IqChunk]:
    """The recording as IQ chunks (see the module docstring for every field).

    Raises
    ------
    RecordingError
        The centre frequency or the GPS week is unknown (a file not named
        ``<YYYYmmddTHHMMSSZ>_<freq Hz>_<STATION>_iq.wav``) and not given.
    """
    if blocks_per_chunk < 1:
        raise ValueError("blocks_per_chunk must be at least 1")
    freq = center_freq_hz if center_freq_hz is not None else rec.center_freq_hz
    if freq is None:
        raise RecordingError(
            f"{rec.path}: centre frequency unknown: name the file "
            "<YYYYmmddTHHMMSSZ>_<freq Hz>_<STATION>_iq.wav or give it"
        )
    if rec.gps_week is None:
        raise RecordingError(
            f"{rec.path}: recording date unknown (GPS week): name the file "
            "<YYYYmmddTHHMMSSZ>_<freq Hz>_<STATION>_iq.wav"
        )
    rid = receiver_id or kiwi_receiver_id(rec.station)
    # chunk boundaries: every blocks_per_chunk blocks and at every segment change
    nb = rec.n_blocks
    seg_starts = np.concatenate([[0], np.flatnonzero(np.diff(rec.block_segment)) + 1, [nb]])
    first_blocks = np.concatenate(
        [np.arange(a, b, blocks_per_chunk) for a, b in itertools.pairwise(seg_starts)]
    ).astype(np.int64)
    starts = rec.block_starts[first_blocks]
    ends = np.append(starts[1:], rec.n_samples)
    t_ns = rec.utc_ns(rec.sample_times_s(method, index=starts))
    gps_ok = rec.has_gps_time_base
    for i, (k, a, e) in enumerate(zip(first_blocks, starts, ends, strict=True)):
        fresh = gps_ok and float(rec.last_gps_solution[k]) < rec.max_solution_age_s
        yield IqChunk(
            receiver_id=rid,
            seq=first_seq + i,
            t_ns=int(t_ns[i]),
            clock=ClockSource.GPS if fresh else ClockSource.FREE,
            center_freq_hz=float(freq),
            sample_rate_hz=rec.fitted_rate_hz,
            sample_format=SampleFormat.CI16,
            iq=rec.samples[a:e],
            full_scale_dbm=full_scale_dbm,
            position=position,
            gain_db=0.0,
            source="kiwi-wav",
        )


def kiwi_position(rec: KiwiRecording, position_file: str | Path | None = None) -> Position:
    """The station's position: from ``position_file``, else a gnss_pos file found beside it.

    Raises :class:`RecordingError` when there is none (a localizer cannot use a receiver
    without a position).
    """
    pf = Path(position_file) if position_file is not None else find_gnss_pos(rec.path, rec.station)
    if pf is None:
        raise RecordingError(
            f"{rec.path}: no position for station {rec.station}: no {rec.station}.gnss_pos.txt "
            "beside it; give one (--position-file)"
        )
    return read_gnss_pos(pf, rec.station).position


def kiwi_source(
    rec: KiwiRecording,
    *,
    position: Position,
    receiver_id: str | None = None,
    blocks_per_chunk: int = DEFAULT_BLOCKS_PER_CHUNK,
    full_scale_dbm: float = 0.0,
) -> ReplaySource:
    """A :class:`ReplaySource` of a KiwiSDR recording (chunks from :func:`kiwi_chunks`)."""
    rid = receiver_id or kiwi_receiver_id(rec.station)
    return ReplaySource(
        receiver_id=rid,
        kind="kiwi-wav",
        position=position,
        chunks=kiwi_chunks(
            rec,
            position=position,
            receiver_id=rid,
            blocks_per_chunk=blocks_per_chunk,
            full_scale_dbm=full_scale_dbm,
        ),
        n_samples=rec.n_samples,
        url=rec.path.resolve().as_uri(),
    )


# ------------------------------------------------------------------------- replay


def _statuses(sources: Sequence[ReplaySource], state: ReceiverState) -> list[ReceiverStatus]:
    now = time.time_ns()
    return [
        ReceiverStatus(
            receiver_id=s.receiver_id,
            kind=s.kind,
            position=s.position,
            state=state,
            updated_ns=now,
            url=s.url,
        )
        for s in sources
    ]


def replay(
    settings: HeimdallSettings,
    sources: Sequence[ReplaySource],
    *,
    speed: float = 1.0,
    realtime: bool = True,
    publisher: EventPublisher | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
) -> ReplayStats:
    """Publish the sources' chunks to the IQ topic in event-time order.

    Parameters
    ----------
    settings
        Broker and topic names.
    sources
        The recordings; their chunks are merged by ``t_ns``.
    speed : float
        With ``realtime``, event time runs ``speed`` times faster than the wall clock: a
        chunk is published once its last sample would exist,
        ``wall_start + (t_ns + duration − first t_ns) / speed``.
    realtime : bool
        False: as fast as the broker takes them.
    publisher
        An existing publisher (tests, a network's shared one, a wrapper such as
        :class:`~heimdall.producers.known_sources.TruthPublisher`); one is made otherwise.
        It is flushed at the end.
    stop
        Set it to stop early; SIGTERM sets it too when called from the main thread.
    on_progress
        Called after each chunk with (samples published, samples in all sources).
    """
    if realtime and not speed > 0:
        raise ValueError("speed must be positive")
    pub: EventPublisher = publisher or Publisher(settings)
    stop = stop or threading.Event()
    stats = ReplayStats()
    total = sum(s.n_samples for s in sources)
    done = 0
    topics = settings.topics
    installed = threading.current_thread() is threading.main_thread()
    old_handler: Any = signal.signal(signal.SIGTERM, lambda *_: stop.set()) if installed else None
    wall0 = time.monotonic()
    t0: int | None = None
    try:
        for status in _statuses(sources, ReceiverState.ONLINE):
            pub.publish(topics.receivers, status.receiver_id, status)
        merged = heapq.merge(*(iter(s.chunks) for s in sources), key=lambda c: c.t_ns)
        for chunk in merged:
            if stop.is_set():
                stats.stopped = True
                break
            if t0 is None:
                t0 = chunk.t_ns
            if realtime:
                end_ns = chunk.t_ns + round(chunk.duration_s * 1e9)
                delay = wall0 + (end_ns - t0) / 1e9 / speed - time.monotonic()
                if delay > 0 and stop.wait(delay):
                    stats.stopped = True
                    break
            out = replace(chunk, published_ns=time.time_ns())
            pub.publish(topics.iq, out.receiver_id, out, out.t_ns)
            rid = out.receiver_id
            stats.chunks[rid] = stats.chunks.get(rid, 0) + 1
            stats.samples[rid] = stats.samples.get(rid, 0) + out.n_samples
            stats.first_t_ns = out.t_ns if stats.first_t_ns is None else stats.first_t_ns
            stats.last_t_ns = out.t_ns
            done += out.n_samples
            if on_progress is not None:
                on_progress(done, total)
    finally:
        for status in _statuses(sources, ReceiverState.OFFLINE):
            pub.publish(topics.receivers, status.receiver_id, status)
        stats.undelivered = pub.flush()
        if stats.undelivered:
            log.error("%d events were not delivered", stats.undelivered)
        if installed:
            signal.signal(
                signal.SIGTERM, old_handler if old_handler is not None else signal.SIG_DFL
            )
        stats.wall_s = time.monotonic() - wall0
    return stats


def replay_kiwi_wav(
    settings: HeimdallSettings,
    paths: Sequence[str | Path],
    *,
    position_files: Sequence[str | Path | None] | None = None,
    speed: float = 1.0,
    realtime: bool = True,
    blocks_per_chunk: int = DEFAULT_BLOCKS_PER_CHUNK,
    publisher: Publisher | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
) -> ReplayStats:
    """Read KiwiSDR WAV recordings and :func:`replay` them together.

    ``position_files`` gives each recording's gnss_pos file (None: look beside the WAV, see
    :func:`~heimdall.producers.recordings.kiwi_wav.find_gnss_pos`).
    """
    pfs: Sequence[str | Path | None] = (
        list(position_files) if position_files is not None else [None] * len(paths)
    )
    if len(pfs) != len(paths):
        raise ValueError(f"{len(paths)} recordings but {len(pfs)} position files")
    sources = []
    for path, pf in zip(paths, pfs, strict=True):
        rec = read_kiwi_wav(path)
        sources.append(
            kiwi_source(rec, position=kiwi_position(rec, pf), blocks_per_chunk=blocks_per_chunk)
        )
    ids = [s.receiver_id for s in sources]
    if len(set(ids)) != len(ids):
        raise RecordingError(f"two recordings of the same station: {sorted(ids)}")
    return replay(
        settings,
        sources,
        speed=speed,
        realtime=realtime,
        publisher=publisher,
        stop=stop,
        on_progress=on_progress,
    )
