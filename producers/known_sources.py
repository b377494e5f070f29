"""Known transmitters of a network file: their ``Truth`` on the receivers' event-time clock.

A network file may declare transmitters whose position is known (a beacon, a repeater, a
broadcast station)::

    sources:
      - id: dcf77                  # Kafka key of its truth (letters, digits, . _ : -)
        lat: 50.0152               # WGS84 degrees
        lon: 9.0112
        alt: 0                     # m above the ellipsoid (default 0)
        freq_hz: 77500
        channel_id: 0.0775MHz      # optional; default channel_id_for(freq_hz)
        tx_power_dbm: 77           # optional; unknown when absent
        schedule:                  # optional; always on when absent (the simulator's
          period_s: 180            # ScheduleSpec): on while (t − offset_s) mod period_s
          on_s: 10                 # < on_s, t the UTC time in s since the epoch
          offset_s: 0

Every chunk that goes to the IQ topic says which moment the receivers heard (its event time
``t_ns``) and which band (``center_freq_hz ± sample_rate_hz / 2``). For each source whose
``freq_hz`` lies in that band, :class:`TruthClock` issues a ``Truth`` at the first such chunk
(at its ``t_ns``) and then at every whole ``interval_s`` of event time (default 1 s) that a
later such chunk covers. The truth therefore follows the recordings' own time (2017 for the
shared DCF77 files, now for live receivers), and the stream's fixes of the source's channel
are matched to it by channel and nearest time (``consumers/queries.py``). During an off
period of the schedule the truth says ``transmitting=False`` (as the simulator's does).

:class:`TruthPublisher` wraps the process's publisher: every IQ chunk published through it
first publishes the truths it is due (``rf.truth.v1``, keyed by source id, Kafka timestamp
= event time), so recordings (:func:`~heimdall.producers.recordings.replay.replay`) and live
adapters (:class:`~heimdall.producers.adapters.pump.KafkaPump`) label the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from heimdall.core.channels import channel_id_for
from heimdall.core.ids import check_key_id
from heimdall.core.settings import TopicNames
from heimdall.producers.adapters.pump import EventPublisher
from heimdall.producers.sim.motion import ScheduleSpec
from heimdall.schemas.models import IqChunk, Position, Truth

__all__ = ["SourceSpec", "TruthClock", "TruthPublisher"]

_NS = 1_000_000_000
#: A chunk this many intervals before the last truth of a source starts a new time line (a
#: looped recording, or a recording and a live receiver in one network).
_NEW_TIMELINE_INTERVALS = 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceSpec(_Strict):
    """One known transmitter of the network file (see the module docstring)."""

    id: Annotated[str, Field(min_length=1, max_length=128), AfterValidator(check_key_id)]
    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)
    alt: float = 0.0
    freq_hz: float = Field(gt=0)
    channel_id: str | None = Field(None, min_length=1)
    tx_power_dbm: float | None = None
    schedule: ScheduleSpec | None = None

    @property
    def channel(self) -> str:
        """``channel_id``, else :func:`~heimdall.core.channels.channel_id_for` of ``freq_hz``."""
        return self.channel_id or channel_id_for(self.freq_hz)

    def heard_in(self, chunk: IqChunk) -> bool:
        """True when ``freq_hz`` lies in the chunk's band, ``centre ± rate / 2``."""
        return abs(self.freq_hz - chunk.center_freq_hz) <= 0.5 * chunk.sample_rate_hz

    def truth(self, t_ns: int) -> Truth:
        """The source's :class:`Truth` at ``t_ns``."""
        return Truth(
            source_id=self.id,
            t_ns=t_ns,
            position=Position(lat_deg=self.lat, lon_deg=self.lon, alt_m=self.alt),
            freq_hz=self.freq_hz,
            channel_id=self.channel,
            tx_power_dbm=self.tx_power_dbm,
            transmitting=self.schedule is None or bool(self.schedule.is_on(t_ns, 0.0)),
        )


class TruthClock:
    """When each known source's truth is due, from the IQ chunks as they are published.

    For source s and a chunk covering event times [t₀, t₁) whose band holds s's frequency,
    with I = ``interval_s`` in ns and L_s the index of s's last truth (truth times k·I):

    * first chunk of s (or t₀ < (L_s − 60)·I: a new time line): one truth at t₀, L_s = ⌊t₀/I⌋;
    * otherwise one truth at k·I for every k with max(L_s + 1, ⌈t₀/I⌉) ≤ k ≤ ⌊(t₁ − 1)/I⌋,
      then L_s = max(L_s, ⌊(t₁ − 1)/I⌋).

    So a continuous stretch of chunks from t_a to t_b gives 1 + (whole intervals in (t_a,
    t_b)) truths, however many receivers heard it, and no truth falls where no receiver
    recorded. Thread-safe (the replay thread and the adapters' pump may share it).
    """

    def __init__(self, sources: Sequence[SourceSpec], interval_s: float = 1.0) -> None:
        if not interval_s > 0:
            raise ValueError("interval_s must be positive")
        self.sources = tuple(sources)
        self.interval_ns = round(interval_s * _NS)
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    def due(self, chunk: IqChunk) -> list[Truth]:
        """The truths due once ``chunk`` is published (in time order per source)."""
        out: list[Truth] = []
        iv = self.interval_ns
        t0 = chunk.t_ns
        t1 = t0 + max(1, round(chunk.n_samples * _NS / chunk.sample_rate_hz))
        last_k = (t1 - 1) // iv
        with self._lock:
            for s in self.sources:
                if not s.heard_in(chunk):
                    continue
                prev = self._last.get(s.id)
                if prev is None or t0 < (prev - _NEW_TIMELINE_INTERVALS) * iv:
                    out.append(s.truth(t0))
                    prev = t0 // iv
                    self._last[s.id] = prev
                for k in range(max(prev + 1, -(-t0 // iv)), last_k + 1):
                    out.append(s.truth(k * iv))
                if last_k > prev:
                    self._last[s.id] = last_k
        return out


class TruthPublisher:
    """An :class:`~heimdall.producers.adapters.pump.EventPublisher` that labels IQ chunks.

    Publishing an IQ chunk (to ``topics.iq``) first publishes the truths it makes due
    (:class:`TruthClock`) to ``topics.truth``; everything else passes through unchanged.
    ``truths`` counts what was published per source.
    """

    def __init__(
        self,
        inner: EventPublisher,
        sources: Sequence[SourceSpec],
        topics: TopicNames,
        *,
        interval_s: float = 1.0,
    ) -> None:
        self.inner = inner
        self.producer = inner.producer
        self.topics = topics
        self.clock = TruthClock(sources, interval_s)
        self.truths: dict[str, int] = {}
        self._lock = threading.Lock()

    def publish(self, topic: str, key: str, event: Any, t_ns: int | None = None) -> None:
        if topic == self.topics.iq and isinstance(event, IqChunk):
            for truth in self.clock.due(event):
                self.inner.publish(self.topics.truth, truth.source_id, truth, truth.t_ns)
                with self._lock:
                    self.truths[truth.source_id] = self.truths.get(truth.source_id, 0) + 1
        self.inner.publish(topic, key, event, t_ns)

    def flush(self, timeout_s: float = 30.0) -> int:
        return self.inner.flush(timeout_s)
