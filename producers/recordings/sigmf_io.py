"""SigMF recordings ↔ the IQ topic: replay a recording, record a receiver, write chunks.

Reading (:func:`read_sigmf`, :func:`sigmf_chunks`, :func:`replay_sigmf`)
    Any SigMF recording the ``sigmf`` package reads, single channel, complex samples
    (``ci16_le`` and ``cf32_le`` and the other complex datatypes, scaled to full scale 1).
    Per capture segment: ``core:sample_start``, ``core:frequency`` (centre, Hz),
    ``core:datetime`` (UTC of the segment's first sample; a segment without one continues
    the previous segment's time); the global ``core:sample_rate``; ``core:geolocation``, a
    GeoJSON point ``[lon, lat, alt]``, from the capture or else the global object. A
    recording without any ``core:datetime`` is replayed as if it started now, clock FREE.

Writing (:class:`SigmfWriter`, :func:`write_sigmf`, :func:`record_sigmf`)
    One receiver's chunks, in order, into ``<name>.sigmf-data`` (``ci16_le`` if the first
    chunk is ci16, else ``cf32_le``) and ``<name>.sigmf-meta``. A new capture segment starts
    at the first chunk and wherever the chunks are not continuous: a gap in ``seq``, a
    ``t_ns`` that differs from the segment's start + samples / rate by more than
    ``time_tol_s`` (default: the smaller of 1 µs and half a sample), or a change of centre
    frequency, clock or position. Each capture carries ``core:datetime`` to the nanosecond
    and ``core:geolocation``.

Heimdall's own keys (declared as the optional extension ``heimdall``): global
``heimdall:receiver_id``, ``heimdall:full_scale_dbm``, ``heimdall:gain_db``,
``heimdall:source``; per capture ``heimdall:clock`` (gps/ntp/free) and ``heimdall:seq``
(the ``seq`` of the segment's first chunk). They are read back when present.
"""

from __future__ import annotations

import calendar
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt
import sigmf
from sigmf import SigMFFile
from sigmf.error import SigMFError

from heimdall.core import kafka
from heimdall.core.errors import HeimdallError, RecordingError
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings
from heimdall.producers.publisher import Publisher
from heimdall.producers.recordings.replay import ProgressFn, ReplaySource, ReplayStats, replay
from heimdall.schemas.models import (
    ClockSource,
    IqChunk,
    Position,
    SampleFormat,
    encode_samples,
)
from heimdall.schemas.serde import Serde

log = logging.getLogger(__name__)

__all__ = [
    "HEIMDALL_EXTENSION",
    "RecordResult",
    "SigmfCapture",
    "SigmfRecording",
    "SigmfWriter",
    "format_sigmf_datetime",
    "parse_sigmf_datetime",
    "read_sigmf",
    "record_sigmf",
    "replay_sigmf",
    "sigmf_chunks",
    "sigmf_source",
    "write_sigmf",
]

HEIMDALL_EXTENSION = {"name": "heimdall", "version": "1.0.0", "optional": True}
_DATATYPE = {SampleFormat.CI16: "ci16_le", SampleFormat.CF32: "cf32_le"}
_NS = 1_000_000_000
_DATETIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(?:[Zz]|\+00:?00)$"
)


# -------------------------------------------------------------------------- datetime


def format_sigmf_datetime(t_ns: int) -> str:
    """UTC ns since the epoch → ``YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`` (exact to the ns)."""
    s, ns = divmod(int(t_ns), _NS)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(s)) + f".{ns:09d}Z"


def parse_sigmf_datetime(text: str) -> int:
    """``core:datetime`` (RFC 3339, UTC, any number of fraction digits) → UTC ns.

    Fractions finer than 1 ns are truncated. Raises ``ValueError`` on another format.
    """
    m = _DATETIME.match(text.strip())
    if m is None:
        raise ValueError(f"not an RFC 3339 UTC time: {text!r}")
    y, mo, d, h, mi, s = (int(m[i]) for i in range(1, 7))
    frac = (m[7] or "")[:9].ljust(9, "0")
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) * _NS + int(frac)


def _geo(position: Position) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [position.lon_deg, position.lat_deg, position.alt_m]}


def _position(geo: Any, where: str) -> Position | None:
    if geo is None:
        return None
    try:
        if geo.get("type") != "Point":
            raise ValueError(f"type {geo.get('type')!r}, not Point")
        c = geo["coordinates"]
        pos = Position(
            lat_deg=float(c[1]), lon_deg=float(c[0]), alt_m=float(c[2]) if len(c) > 2 else 0.0
        )
        pos.check()
        return pos
    except (AttributeError, KeyError, IndexError, TypeError, ValueError, HeimdallError) as exc:
        raise RecordingError(f"{where}: core:geolocation is not a GeoJSON point: {exc}") from exc


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True, slots=True, kw_only=True)
class SigmfCapture:
    """One capture segment: samples [``sample_start``, ``sample_start + n_samples``).

    ``t_ns`` is the UTC time of its first sample (None: continues the previous segment);
    ``clock`` and ``seq`` come from Heimdall's keys (None when absent).
    """

    sample_start: int
    n_samples: int
    t_ns: int | None
    center_freq_hz: float | None
    position: Position | None
    clock: ClockSource | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class SigmfRecording:
    """A SigMF recording's metadata and access to its samples (:func:`read_sigmf`)."""

    meta_path: Path
    datatype: str
    sample_rate_hz: float
    n_samples: int
    captures: tuple[SigmfCapture, ...]
    position: Position | None
    receiver_id: str | None
    full_scale_dbm: float
    gain_db: float
    global_info: dict[str, Any]
    _handle: SigMFFile

    @property
    def sample_format(self) -> SampleFormat:
        """ci16 for integer datatypes of at most 16 bits (lossless), else cf32."""
        dt = self.datatype.lower()
        fixed = "f" not in dt.split("_")[0]
        return SampleFormat.CI16 if fixed and re.search(r"(8|16)", dt) else SampleFormat.CF32

    def read_samples(self, start: int = 0, count: int = -1) -> npt.NDArray[np.complex64]:
        """complex64 samples [start, start + count) (count −1: to the end), full scale 1."""
        if count == 0 or self.n_samples == 0:
            return np.zeros(0, dtype=np.complex64)
        try:
            x = self._handle.read_samples(start_index=start, count=count)
        except (OSError, SigMFError) as exc:
            raise RecordingError(f"{self.meta_path}: cannot read samples: {exc}") from exc
        return np.ascontiguousarray(x, dtype=np.complex64).reshape(-1)


def read_sigmf(path: str | Path, *, skip_checksum: bool = False) -> SigmfRecording:
    """Open a SigMF recording (``.sigmf-meta``, ``.sigmf-data``, base name or ``.sigmf``).

    Raises
    ------
    RecordingError
        Unreadable or invalid metadata, checksum mismatch, several channels, real samples,
        no sample rate, or an unparsable ``core:datetime`` / ``core:geolocation``.
    """
    p = Path(path)
    try:
        handle = sigmf.fromfile(str(p), skip_checksum=skip_checksum)
    except (OSError, ValueError, SigMFError) as exc:
        raise RecordingError(f"{p}: not a readable SigMF recording: {exc}") from exc
    if not isinstance(handle, SigMFFile):
        raise RecordingError(f"{p}: a SigMF collection; give one of its recordings")
    g = handle.get_global_info()
    datatype = str(g.get("core:datatype", ""))
    if not datatype.lower().startswith("c"):
        raise RecordingError(f"{p}: datatype {datatype!r} is not complex IQ")
    if int(g.get("core:num_channels", 1)) != 1:
        raise RecordingError(f"{p}: {g.get('core:num_channels')} channels; only 1 is supported")
    rate = g.get("core:sample_rate")
    if not rate or float(rate) <= 0:
        raise RecordingError(f"{p}: no positive core:sample_rate")
    n_total = int(handle.sample_count) if handle.data_file is not None else 0
    raw_caps = handle.get_captures() or [{"core:sample_start": 0}]
    starts = [int(c.get("core:sample_start", 0)) for c in raw_caps]
    captures = []
    for i, c in enumerate(raw_caps):
        where = f"{p}: capture {i}"
        end = starts[i + 1] if i + 1 < len(starts) else n_total
        t_ns = None
        if "core:datetime" in c:
            try:
                t_ns = parse_sigmf_datetime(str(c["core:datetime"]))
            except ValueError as exc:
                raise RecordingError(f"{where}: core:datetime: {exc}") from exc
        clock = c.get("heimdall:clock")
        try:
            clk = ClockSource(clock) if clock is not None else None
        except ValueError:
            raise RecordingError(f"{where}: heimdall:clock {clock!r} is not gps/ntp/free") from None
        freq = c.get("core:frequency")
        captures.append(
            SigmfCapture(
                sample_start=starts[i],
                n_samples=max(0, end - starts[i]),
                t_ns=t_ns,
                center_freq_hz=float(freq) if freq is not None else None,
                position=_position(c.get("core:geolocation"), where),
                clock=clk,
                seq=int(c["heimdall:seq"]) if "heimdall:seq" in c else None,
            )
        )
    return SigmfRecording(
        meta_path=p,
        datatype=datatype,
        sample_rate_hz=float(rate),
        n_samples=n_total,
        captures=tuple(captures),
        position=_position(g.get("core:geolocation"), f"{p}: global"),
        receiver_id=g.get("heimdall:receiver_id"),
        full_scale_dbm=float(g.get("heimdall:full_scale_dbm", 0.0)),
        gain_db=float(g.get("heimdall:gain_db", 0.0)),
        global_info=dict(g),
        _handle=handle,
    )


def sigmf_chunks(
    rec: SigmfRecording,
    *,
    receiver_id: str | None = None,
    chunk_samples: int | None = None,
    clock: ClockSource | None = None,
    position: Position | None = None,
    center_freq_hz: float | None = None,
    first_seq: int = 0,
) -> Iterator[IqChunk]:
    """The recording as IQ chunks of ``chunk_samples`` (default ≈ 0.2 s), never across a
    capture boundary.

    ``receiver_id`` defaults to ``heimdall:receiver_id``, else the file's base name;
    ``clock`` to the capture's ``heimdall:clock``, else FREE; ``position`` to the capture's
    geolocation, else the global one (required); ``center_freq_hz`` to the capture's
    ``core:frequency`` (required). ``seq`` counts from ``first_seq``.
    """
    rid = receiver_id or rec.receiver_id or rec.meta_path.name.split(".sigmf")[0]
    rate = rec.sample_rate_hz
    step = chunk_samples or max(1, round(0.2 * rate))
    fmt = rec.sample_format
    seq = first_seq
    t_next: int | None = None
    fallback_clock = None
    if all(c.t_ns is None for c in rec.captures):
        t_next, fallback_clock = time.time_ns(), ClockSource.FREE
    for i, cap in enumerate(rec.captures):
        where = f"{rec.meta_path}: capture {i}"
        t_cap = cap.t_ns if cap.t_ns is not None else t_next
        if t_cap is None:
            raise RecordingError(f"{where}: no core:datetime and no earlier capture to continue")
        freq = center_freq_hz if center_freq_hz is not None else cap.center_freq_hz
        if freq is None:
            raise RecordingError(f"{where}: no core:frequency")
        pos = position or cap.position or rec.position
        if pos is None:
            raise RecordingError(f"{where}: no core:geolocation (capture or global)")
        clk = clock or cap.clock or fallback_clock or ClockSource.FREE
        for a in range(0, cap.n_samples, step):
            n = min(step, cap.n_samples - a)
            yield IqChunk(
                receiver_id=rid,
                seq=seq,
                t_ns=t_cap + round(a * _NS / rate),
                clock=clk,
                center_freq_hz=freq,
                sample_rate_hz=rate,
                sample_format=fmt,
                iq=rec.read_samples(cap.sample_start + a, n),
                full_scale_dbm=rec.full_scale_dbm,
                position=pos,
                gain_db=rec.gain_db,
                source="sigmf",
            )
            seq += 1
        t_next = t_cap + round(cap.n_samples * _NS / rate)


def sigmf_source(
    rec: SigmfRecording,
    *,
    receiver_id: str | None = None,
    chunk_samples: int | None = None,
    clock: ClockSource | None = None,
    position: Position | None = None,
) -> ReplaySource:
    """A :class:`ReplaySource` of a SigMF recording (chunks from :func:`sigmf_chunks`)."""
    chunks = sigmf_chunks(
        rec, receiver_id=receiver_id, chunk_samples=chunk_samples, clock=clock, position=position
    )
    first = next(chunks, None)
    if first is None:
        raise RecordingError(f"{rec.meta_path}: no samples")

    def all_chunks() -> Iterator[IqChunk]:
        yield first
        yield from chunks

    return ReplaySource(
        receiver_id=first.receiver_id,
        kind="sigmf",
        position=first.position,
        chunks=all_chunks(),
        n_samples=rec.n_samples,
        url=rec.meta_path.resolve().as_uri(),
    )


def replay_sigmf(
    settings: HeimdallSettings,
    paths: Sequence[str | Path],
    *,
    speed: float = 1.0,
    realtime: bool = True,
    receiver_id: str | None = None,
    chunk_samples: int | None = None,
    clock: ClockSource | None = None,
    publisher: Publisher | None = None,
    stop: threading.Event | None = None,
    on_progress: ProgressFn | None = None,
) -> ReplayStats:
    """Replay SigMF recordings into the IQ topic together (see :func:`replay`).

    ``receiver_id`` overrides the recording's own (only with a single recording).
    """
    if receiver_id is not None and len(paths) != 1:
        raise ValueError("receiver_id can only be given for one recording")
    sources = [
        sigmf_source(
            read_sigmf(p), receiver_id=receiver_id, chunk_samples=chunk_samples, clock=clock
        )
        for p in paths
    ]
    return replay(
        settings,
        sources,
        speed=speed,
        realtime=realtime,
        publisher=publisher,
        stop=stop,
        on_progress=on_progress,
    )


# --------------------------------------------------------------------------- writing


def _base(path: str | Path) -> Path:
    p = Path(path)
    for ext in (".sigmf-meta", ".sigmf-data"):
        if p.name.endswith(ext):
            return p.with_name(p.name[: -len(ext)])
    return p


@dataclass
class _Capture:
    sample_start: int
    t_ns: int
    center_freq_hz: float
    clock: ClockSource
    position: Position
    seq: int
    n_samples: int = 0
    last_seq: int = 0


class SigmfWriter:
    """Write one receiver's IQ chunks as a SigMF recording, chunk by chunk.

    Parameters
    ----------
    path : str or Path
        Base name (``.sigmf-meta``/``.sigmf-data`` are added) or either file's name.
    overwrite : bool
        Replace existing files (else :class:`RecordingError`).
    time_tol_s : float, optional
        Largest ``t_ns`` error tolerated inside one capture segment (default
        ``min(1e-6, 0.5 / sample_rate_hz)``).
    description : str, optional
        ``core:description``.

    Use as a context manager, or call :meth:`close` (which writes the metadata).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        overwrite: bool = False,
        time_tol_s: float | None = None,
        description: str | None = None,
    ) -> None:
        self.base = _base(path)
        self.data_path = self.base.with_name(self.base.name + ".sigmf-data")
        self.meta_path = self.base.with_name(self.base.name + ".sigmf-meta")
        for f in (self.data_path, self.meta_path):
            if f.exists() and not overwrite:
                raise RecordingError(f"{f}: exists (overwrite=True replaces it)")
        self.data_path.parent.mkdir(parents=True, exist_ok=True)
        self._fp: BinaryIO | None = None
        self._time_tol_s = time_tol_s
        self._description = description
        self._first: IqChunk | None = None
        self._fmt = SampleFormat.CI16
        self._caps: list[_Capture] = []
        self.n_samples = 0
        self.n_chunks = 0
        self._closed = False

    def __enter__(self) -> SigmfWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.abort()

    @property
    def captures(self) -> int:
        return len(self._caps)

    def add(self, chunk: IqChunk) -> None:
        """Append ``chunk`` (same receiver and sample rate as the first)."""
        if self._closed:
            raise RecordingError(f"{self.meta_path}: writer is closed")
        first = self._first
        if first is None:
            self._first = first = chunk
            self._fmt = SampleFormat(chunk.sample_format)
            self._fp = open(self.data_path, "wb")  # noqa: SIM115 - closed in close()/abort()
        else:
            if chunk.receiver_id != first.receiver_id:
                raise RecordingError(
                    f"{self.meta_path}: chunk of {chunk.receiver_id!r} in a recording of "
                    f"{first.receiver_id!r}"
                )
            if abs(chunk.sample_rate_hz - first.sample_rate_hz) > 1e-9 * first.sample_rate_hz:
                raise RecordingError(
                    f"{self.meta_path}: sample rate changed from {first.sample_rate_hz} to "
                    f"{chunk.sample_rate_hz} Hz (seq {chunk.seq}); SigMF has one rate"
                )
        rate = first.sample_rate_hz
        tol_ns = 1e9 * (self._time_tol_s if self._time_tol_s is not None else min(1e-6, 0.5 / rate))
        cap = self._caps[-1] if self._caps else None
        if (
            cap is None
            or chunk.seq != cap.last_seq + 1
            or abs(chunk.t_ns - cap.t_ns - round(cap.n_samples * 1e9 / rate)) > tol_ns
            or chunk.center_freq_hz != cap.center_freq_hz
            or ClockSource(chunk.clock) is not cap.clock
            or chunk.position != cap.position
        ):
            cap = _Capture(
                sample_start=self.n_samples,
                t_ns=chunk.t_ns,
                center_freq_hz=chunk.center_freq_hz,
                clock=ClockSource(chunk.clock),
                position=chunk.position,
                seq=chunk.seq,
            )
            self._caps.append(cap)
        assert self._fp is not None
        self._fp.write(encode_samples(chunk.iq, self._fmt))
        cap.n_samples += chunk.n_samples
        cap.last_seq = chunk.seq
        self.n_samples += chunk.n_samples
        self.n_chunks += 1

    def abort(self) -> None:
        """Close and delete what was written."""
        if self._fp is not None:
            self._fp.close()
        self._closed = True
        self.data_path.unlink(missing_ok=True)

    def close(self) -> Path:
        """Finish the data file, write and validate the metadata; return the meta path."""
        if self._closed:
            return self.meta_path
        first = self._first
        if first is None or self._fp is None:
            self._closed = True
            raise RecordingError(f"{self.meta_path}: no IQ chunks to write")
        self._fp.close()
        self._closed = True
        glob: dict[str, Any] = {
            "core:datatype": _DATATYPE[self._fmt],
            "core:sample_rate": first.sample_rate_hz,
            "core:num_channels": 1,
            "core:recorder": "heimdall",
            "core:geolocation": _geo(first.position),
            "core:extensions": [dict(HEIMDALL_EXTENSION)],
            "heimdall:receiver_id": first.receiver_id,
            "heimdall:full_scale_dbm": first.full_scale_dbm,
            "heimdall:gain_db": first.gain_db,
            "heimdall:source": first.source,
        }
        if self._description:
            glob["core:description"] = self._description
        caps = [
            {
                "core:sample_start": c.sample_start,
                "core:frequency": c.center_freq_hz,
                "core:datetime": format_sigmf_datetime(c.t_ns),
                "core:geolocation": _geo(c.position),
                "heimdall:clock": c.clock.value,
                "heimdall:seq": c.seq,
            }
            for c in self._caps
        ]
        meta = {"global": glob, "captures": caps, "annotations": []}
        try:
            handle = SigMFFile(metadata=meta, data_file=str(self.data_path))
            handle.validate()
            handle.tofile(str(self.base), overwrite=True)
        except (OSError, SigMFError) as exc:
            raise RecordingError(f"{self.meta_path}: cannot write SigMF metadata: {exc}") from exc
        return self.meta_path


def write_sigmf(
    chunks: Iterable[IqChunk],
    path: str | Path,
    *,
    overwrite: bool = False,
    time_tol_s: float | None = None,
    description: str | None = None,
) -> Path:
    """Write one receiver's chunks (in order) as a SigMF recording; return the meta path.

    See :class:`SigmfWriter`. Raises :class:`RecordingError` on no chunks, several receivers
    or a change of sample rate.
    """
    w = SigmfWriter(path, overwrite=overwrite, time_tol_s=time_tol_s, description=description)
    try:
        for c in chunks:
            w.add(c)
        return w.close()
    except BaseException:
        w.abort()
        raise


@dataclass
class RecordResult:
    """What :func:`record_sigmf` wrote (``meta_path`` None when nothing matched)."""

    meta_path: Path | None
    chunks: int = 0
    samples: int = 0
    captures: int = 0
    skipped_undecodable: int = 0
    duplicates: int = 0
    t_range_ns: tuple[int, int] | None = None
    partitions: list[int] = field(default_factory=list)


def record_sigmf(
    settings: HeimdallSettings,
    receiver_id: str,
    path: str | Path,
    *,
    from_ns: int | None = None,
    to_ns: int | None = None,
    follow: bool = False,
    idle_timeout_s: float = 10.0,
    drain_quiet_s: float = 1.0,
    overwrite: bool = False,
    time_tol_s: float | None = None,
    stop: threading.Event | None = None,
    on_chunk: ProgressFn | None = None,
) -> RecordResult:
    """Write one receiver's chunks from the IQ topic as a SigMF recording.

    Reads every partition of the IQ topic from the beginning (assigned, no consumer group
    join), keeps the chunks keyed ``receiver_id`` with ``from_ns <= t_ns < to_ns`` (whole
    chunks; bounds optional), drops duplicate ``event_id``\\ s, and writes them in topic
    order with :class:`SigmfWriter`.

    Stops at the end of what the topic held when it started — or, with ``follow``, once a
    chunk of the receiver at or after ``to_ns`` arrives; in both cases also after
    ``idle_timeout_s`` without any message, or when ``stop`` is set. "The end" is: every
    partition read up to the high watermark queried at the start, and then either
    ``drain_quiet_s`` without a message or a chunk published after the start. The quiet
    period is needed because the embedded broker (Tansu) under-reports the high watermark:
    measured here, 97 for a partition holding offsets 0–137 (it looks like the base offset
    of the last record batch), so the watermark is only a lower bound.

    Returns a :class:`RecordResult` (``meta_path`` None and no files when nothing matched).
    """
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    topic = settings.topics.iq
    serde = Serde.from_settings(settings)
    key = receiver_id.encode()
    c = kafka.consumer(settings, f"heimdall-record-{new_event_id()}")
    result = RecordResult(meta_path=None)
    writer: SigmfWriter | None = None
    seen: set[str] = set()
    t_lo: int | None = None
    t_hi: int | None = None
    try:
        md = c.list_topics(topic, timeout=10.0)
        tmd = md.topics.get(topic)
        if tmd is None or tmd.error is not None or not tmd.partitions:
            raise RecordingError(f"topic {topic!r} does not exist")
        parts = sorted(tmd.partitions)
        result.partitions = parts
        ends: dict[int, int] = {}
        for p in parts:
            _, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)
            ends[p] = hi
        c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        started_ns = time.time_ns()
        pending = {p for p in parts if ends[p] > 0}
        last_msg = time.monotonic()
        done = False
        while not done:
            if stop is not None and stop.is_set():
                break
            quiet_s = time.monotonic() - last_msg
            if not follow and not pending and quiet_s > drain_quiet_s:
                break
            if quiet_s > idle_timeout_s:
                log.warning("record %s: no message for %.0f s, stopping", receiver_id, quiet_s)
                break
            msg = c.poll(0.1)
            if msg is None or msg.error():
                continue
            last_msg = time.monotonic()
            part, off = msg.partition(), msg.offset()
            if part is not None and off is not None and off + 1 >= ends.get(part, 0):
                pending.discard(part)
            if msg.key() != key:
                continue
            try:
                chunk = serde.decode(msg.value() or b"", IqChunk)
            except HeimdallError as exc:
                result.skipped_undecodable += 1
                log.warning(
                    "record %s: undecodable chunk at %s/%s: %s", receiver_id, part, off, exc
                )
                continue
            if chunk.receiver_id != receiver_id:
                continue
            if not follow and not pending and chunk.published_ns > started_ns:
                break  # published after we started: live data, past the snapshot
            if to_ns is not None and chunk.t_ns >= to_ns:
                done = follow
                continue
            if from_ns is not None and chunk.t_ns < from_ns:
                continue
            if chunk.event_id in seen:
                result.duplicates += 1
                continue
            seen.add(chunk.event_id)
            if writer is None:
                writer = SigmfWriter(
                    path,
                    overwrite=overwrite,
                    time_tol_s=time_tol_s,
                    description=f"{receiver_id} recorded from {topic}",
                )
            writer.add(chunk)
            t_lo = chunk.t_ns if t_lo is None else min(t_lo, chunk.t_ns)
            t_hi = chunk.t_ns if t_hi is None else max(t_hi, chunk.t_ns)
            if on_chunk is not None:
                on_chunk(writer.n_chunks, writer.n_samples)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        c.close()
    if writer is None:
        return result
    result.meta_path = writer.close()
    result.chunks, result.samples, result.captures = (
        writer.n_chunks,
        writer.n_samples,
        writer.captures,
    )
    result.t_range_ns = (t_lo, t_hi) if t_lo is not None and t_hi is not None else None
    return result
