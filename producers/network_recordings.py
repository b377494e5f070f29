"""Recordings as receivers of a network file: the ``kiwi-wav`` and ``sigmf`` kinds.

A recording receiver is a file replayed into the IQ topic under the receiver's id, with the
recording's own event times (a KiwiSDR WAV: its GPS time base, ``clock=gps`` per chunk as
:func:`~heimdall.producers.recordings.replay.kiwi_chunks` decides; SigMF: its captures'
``core:datetime`` and ``heimdall:clock``, else clock ``free``). Every recording of a network
is replayed together by :func:`~heimdall.producers.recordings.replay.replay`, merged by
event time, so what several receivers recorded of one moment arrives together. The chunks
themselves are made by the replay module's own functions (:func:`kiwi_source`,
:func:`sigmf_source`); this module only reads the network file's options, checks the
recording, and loops it when asked. In the network file::

    replay:                 # optional, for all recordings of the network
      pace: 1.0             # event time runs pace × real time; "fast": as fast as possible
      loop: false           # true: start again at the end, times shifted by whole seconds
    receivers:
      - id: kiwi-df0kl
        kind: kiwi-wav
        position: {lat: 53.665337, lon: 7.282766}   # optional: else <STATION>.gnss_pos.txt
        options:
          path: data/20171127T104156Z_77500_DF0KL_iq.wav   # relative to the network file
          position_file: DF0KL.gnss_pos.txt               # optional (found beside the WAV)
          blocks_per_chunk: 5                             # 512-sample blocks per chunk
          max_rate_offset_ppm: 1000                       # a fitted rate further off: refused
      - id: usrp-1
        kind: sigmf
        options:
          path: rec/usrp-1.sigmf-meta
          chunk_samples: 2400                             # default ≈ 0.2 s
          clock: ntp                                      # default: the recording's, else free

The receiver's ``position`` overrides the recording's (gnss_pos file, ``core:geolocation``);
``calibration_offset_db`` is added to every chunk's ``full_scale_dbm``.

A file that does not exist is a ConfigError when the network file is loaded; a recording
that cannot be used (unreadable, no position, an implausible sample rate, no samples) is
left out with one line saying why, and the other receivers run.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from heimdall.core.errors import HeimdallError, RecordingError
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings
from heimdall.producers.adapters.pump import EventPublisher
from heimdall.producers.recordings.kiwi_wav import read_kiwi_wav
from heimdall.producers.recordings.replay import (
    DEFAULT_BLOCKS_PER_CHUNK,
    ProgressFn,
    ReplaySource,
    ReplayStats,
    kiwi_position,
    kiwi_source,
    replay,
)
from heimdall.schemas.models import ClockSource, IqChunk, Position

__all__ = [
    "RECORDING_KINDS",
    "KiwiWavOptions",
    "RecordingReceiver",
    "ReplaySpec",
    "SigmfOptions",
    "open_recording",
    "replay_recordings",
]

log = logging.getLogger(__name__)

_NS = 1_000_000_000

#: The network-file kinds that are recordings.
RECORDING_KINDS = ("kiwi-wav", "sigmf")


class _Options(BaseModel):
    """Base of a recording kind's ``options``: ``path`` relative to the network file's folder.

    Validate with ``context={"base_dir": folder}`` to resolve a relative ``path`` (and
    ``position_file``); without it they are resolved against the working directory.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path

    @field_validator("path", mode="after")
    @classmethod
    def _existing_file(cls, v: Path, info: ValidationInfo) -> Path:
        p = _resolve(v, info)
        if not p.exists():
            raise ValueError(f"no such file: {p}")
        return p


def _resolve(p: Path, info: ValidationInfo) -> Path:
    base = (info.context or {}).get("base_dir")
    p = p.expanduser()
    full = Path(base) / p if base is not None and not p.is_absolute() else p
    return Path(os.path.normpath(full.absolute()))


class KiwiWavOptions(_Options):
    """``options`` of a ``kiwi-wav`` receiver (a ``kiwirecorder.py --kiwi-wav`` IQ file)."""

    position_file: Path | None = None
    blocks_per_chunk: int = Field(DEFAULT_BLOCKS_PER_CHUNK, ge=1)
    max_rate_offset_ppm: float = Field(1000.0, gt=0)

    @field_validator("position_file", mode="after")
    @classmethod
    def _existing_position_file(cls, v: Path | None, info: ValidationInfo) -> Path | None:
        if v is None:
            return None
        p = _resolve(v, info)
        if not p.is_file():
            raise ValueError(f"no such file: {p}")
        return p


class SigmfOptions(_Options):
    """``options`` of a ``sigmf`` receiver (``.sigmf-meta``, ``.sigmf-data`` or base name)."""

    chunk_samples: int | None = Field(None, ge=1)
    clock: Literal["gps", "ntp", "free"] | None = None
    skip_checksum: bool = False

    @field_validator("path", mode="after")
    @classmethod
    def _existing_file(cls, v: Path, info: ValidationInfo) -> Path:
        p = _resolve(v, info)
        candidates = [p, p.with_name(p.name + ".sigmf-meta"), p.with_name(p.name + ".sigmf")]
        if not any(c.exists() for c in candidates):
            raise ValueError(f"no such file: {p}")
        return p


class ReplaySpec(BaseModel):
    """The network file's ``replay`` section: how its recordings are paced.

    ``pace``: event time runs ``pace`` times faster than the wall clock (1: real time), or
    ``"fast"``: as fast as the broker takes the chunks. ``loop``: replay again and again,
    each pass shifted by the recordings' span rounded up to whole seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    pace: float | Literal["fast"] = 1.0
    loop: bool = False

    @field_validator("pace", mode="before")
    @classmethod
    def _positive(cls, v: Any) -> Any:
        if v == "fast":
            return v
        try:
            ok = float(v) > 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError("pace must be a positive number (1 = real time) or fast")
        return v

    @property
    def realtime(self) -> bool:
        return self.pace != "fast"

    @property
    def speed(self) -> float:
        return 1.0 if isinstance(self.pace, str) else float(self.pace)


@dataclass(frozen=True)
class RecordingReceiver:
    """One recording, ready to replay (possibly more than once).

    ``make`` gives a fresh :class:`ReplaySource` of the whole recording each time it is
    called; ``first_t_ns`` / ``end_t_ns`` bound its event times (``end`` exclusive).
    """

    receiver_id: str
    make: Callable[[], ReplaySource]
    first_t_ns: int
    end_t_ns: int
    notes: tuple[str, ...] = ()


def open_recording(
    receiver_id: str,
    kind: str,
    options: KiwiWavOptions | SigmfOptions,
    *,
    position: Position | None = None,
    calibration_offset_db: float = 0.0,
) -> RecordingReceiver:
    """Read a recording and check it can be a receiver.

    Raises
    ------
    RecordingError
        One line: why this recording cannot be a receiver (unreadable, no position, a
        fitted sample rate more than ``max_rate_offset_ppm`` from the nominal one, no
        samples).
    """
    if isinstance(options, KiwiWavOptions):
        return _open_kiwi(receiver_id, options, position, calibration_offset_db)
    if kind == "sigmf" and isinstance(options, SigmfOptions):
        return _open_sigmf(receiver_id, options, position, calibration_offset_db)
    raise ValueError(f"{kind!r} is not a recording kind ({', '.join(RECORDING_KINDS)})")


def _open_kiwi(
    rid: str, o: KiwiWavOptions, position: Position | None, cal_db: float
) -> RecordingReceiver:
    rec = read_kiwi_wav(o.path)
    if abs(rec.rate_offset_ppm) > o.max_rate_offset_ppm:
        raise RecordingError(
            f"{o.path}: implausible sample rate: the GPS stamps give {rec.fitted_rate_hz:.4f} Hz, "
            f"{rec.rate_offset_ppm:+.0f} ppm from the header's {rec.nominal_rate_hz:g} Hz "
            f"(more than max_rate_offset_ppm {o.max_rate_offset_ppm:g})"
        )
    try:
        pos = position or kiwi_position(rec, o.position_file)
    except RecordingError as exc:
        raise RecordingError(
            str(exc).replace(
                "give one (--position-file)",
                "give the receiver a position: {lat, lon} or options.position_file",
            )
        ) from None
    notes = []
    if not rec.has_gps_time_base:
        notes.append(f"{o.path}: fewer than two good GPS stamps: published with clock=free")
    gaps = rec.discontinuities
    if gaps:
        worst = max(abs(j) for _, j in gaps)
        notes.append(
            f"{o.path}: {len(gaps)} jump(s) of the GPS stamps (lost frames, largest "
            f"{worst * 1e3:.1f} ms): no chunk spans one"
        )

    def make() -> ReplaySource:
        return kiwi_source(
            rec,
            position=pos,
            receiver_id=rid,
            blocks_per_chunk=o.blocks_per_chunk,
            full_scale_dbm=cal_db,
        )

    times = [c.t_ns for c in make().chunks]  # chunk starts only: views of the samples
    if not times:
        raise RecordingError(f"{o.path}: no samples")
    end = rec.utc_ns(rec.sample_times_s(index=[rec.n_samples - 1]))[0]
    end_ns = int(end) + round(_NS / rec.fitted_rate_hz)
    return RecordingReceiver(rid, make, times[0], max(end_ns, times[-1] + 1), tuple(notes))


def _open_sigmf(
    rid: str, o: SigmfOptions, position: Position | None, cal_db: float
) -> RecordingReceiver:
    from heimdall.producers.recordings.sigmf_io import read_sigmf, sigmf_source

    rec = read_sigmf(o.path, skip_checksum=o.skip_checksum)
    clock = ClockSource(o.clock) if o.clock is not None else None

    def make() -> ReplaySource:
        src = sigmf_source(
            rec, receiver_id=rid, chunk_samples=o.chunk_samples, clock=clock, position=position
        )
        if cal_db:
            shifted = (replace(c, full_scale_dbm=c.full_scale_dbm + cal_db) for c in src.chunks)
            src = replace(src, chunks=shifted)
        return src

    first = make()  # reads the first chunk: no position, no frequency, no samples → here
    first_chunk = next(iter(first.chunks))
    # event time span from the captures (as sigmf_chunks times them) without reading samples
    t0 = first_chunk.t_ns
    t = t0
    for cap in rec.captures:
        start = cap.t_ns if cap.t_ns is not None else t
        t = start + round(cap.n_samples * _NS / rec.sample_rate_hz)
    notes = []
    if all(c.t_ns is None for c in rec.captures):
        notes.append(f"{o.path}: no core:datetime: replayed from now, clock=free")
    return RecordingReceiver(rid, make, t0, max(t, t0 + 1), tuple(notes))


def loop_period_ns(recordings: Sequence[RecordingReceiver]) -> int:
    """The shift between two passes of a looped network: the span from the earliest first
    chunk to the latest end, rounded up to whole seconds (so second marks stay on seconds)."""
    span = max(r.end_t_ns for r in recordings) - min(r.first_t_ns for r in recordings)
    return max(1, -(-span // _NS)) * _NS


def _passes(rec: RecordingReceiver, period_ns: int, stop: threading.Event) -> Iterator[IqChunk]:
    """The recording's chunks pass after pass: pass k shifted so that it starts k·period after
    pass 0 started, with ``seq`` continuing and new event ids."""
    seq = 0
    base: int | None = None
    k = 0
    while not stop.is_set():
        n = 0
        shift = 0
        for c in rec.make().chunks:
            if base is None:
                base = c.t_ns
            if n == 0:
                shift = base + k * period_ns - c.t_ns
            n += 1
            yield c if k == 0 else replace(c, t_ns=c.t_ns + shift, seq=seq, event_id=new_event_id())
            seq += 1
        if n == 0:
            return
        k += 1


def _guarded(receiver_id: str, chunks: Iterable[IqChunk]) -> Iterator[IqChunk]:
    """``chunks`` until the recording fails to give one (a file cut short or changed while
    it is replayed): then one line says why and this receiver ends, the others go on."""
    n = 0
    try:
        for c in chunks:
            yield c
            n += 1
    except (HeimdallError, OSError, ValueError) as exc:
        log.error("%s: the recording stopped after %d chunks: %s", receiver_id, n, exc)


def replay_recordings(
    settings: HeimdallSettings,
    recordings: Sequence[RecordingReceiver],
    spec: ReplaySpec,
    *,
    publisher: EventPublisher | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
) -> ReplayStats:
    """Replay the recordings together with :func:`replay`, paced and looped as ``spec`` says.

    Ends when the recordings end (never with ``loop``), or when ``stop`` is set.
    """
    stop = stop or threading.Event()
    sources = [r.make() for r in recordings]
    if spec.loop:
        period = loop_period_ns(recordings)
        looped: list[Iterable[IqChunk]] = [_passes(r, period, stop) for r in recordings]
        sources = [replace(s, chunks=c) for s, c in zip(sources, looped, strict=True)]
    sources = [replace(s, chunks=_guarded(s.receiver_id, s.chunks)) for s in sources]
    return replay(
        settings,
        sources,
        speed=spec.speed,
        realtime=spec.realtime,
        publisher=publisher,
        stop=stop,
        on_progress=on_progress,
    )
