"""The dashboard's one server-side consumer: topics -> :class:`DashboardState`.

Two threads:

* **events**: a consumer of a group of its own (unique per server, so it never takes
  partitions from a stage) *assigned* every partition of ``rf.receivers``, ``rf.models``,
  ``rf.localizations``, ``rf.truth``, ``rf.features``, ``rf.observations`` (TDOA pairs, for
  the hyperbolas), ``rf.waterfall`` (web receivers' rows) and ``rf.dlq``. On start it goes back
  in each partition by time — to ``offsets_for_times(now − history)`` where the broker
  answers it, and never more than ``backlog`` events (Tansu 0.6 answers offset 0 to any
  time, measured) — and skips events older than the history. Partitions that appear later
  are read from their start. Values are decoded with the stages' :class:`Serde`.
* **pipeline**: every ``interval_s``, each topic's event count (``count_topics``: the
  monitor's ``topic_counts``, injected) gives events/s, and the committed offsets of the
  stream workers' and the sink's consumer groups give the lag of each stage:
  ``lag = Σ_p (end_p − committed_p) = count − Σ_p (committed_p − low_p)``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition

from heimdall.consumers.dashboard.state import DashboardState
from heimdall.core import kafka
from heimdall.core.ids import new_event_id
from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.serde import Serde

log = logging.getLogger(__name__)

#: ``(unassigned consumer, topics) -> {topic: events}`` (``heimdall.infra.monitor.topic_counts``).
CountFn = Callable[[Consumer, list[str]], dict[str, int]]

#: Most events read back per partition on start, by topic role.
BACKLOG = {
    "receivers": 20_000,
    "models": 1_000,
    "localizations": 5_000,
    "truth": 5_000,
    "features": 5_000,
    "observations": 2_000,
    "waterfall": 500,
    "dlq": 1_000,
}
#: Roles whose whole (recent) content is state, not history: read regardless of age.
STATE_ROLES = ("receivers", "models")


@dataclass(frozen=True)
class Stage:
    """A pipeline stage for the lag panel: its consumer group and the topics it reads."""

    name: str
    group_id: str
    topics: tuple[str, ...]


def default_stages(settings: HeimdallSettings) -> list[Stage]:
    """The stream worker's three agents (one Faust group) and the ClickHouse sink."""
    from heimdall.consumers.clickhouse_sink import DEFAULT_GROUP_ID as SINK_GROUP_ID  # pyarrow

    t, app = settings.topics, settings.streams_app_id
    return [
        Stage("features", app, (t.iq,)),
        Stage("associate", app, (t.features,)),
        Stage("localize", app, (t.observations,)),
        Stage("sink", SINK_GROUP_ID, (t.features, t.observations, t.localizations, t.truth)),
    ]


class Feed:
    """Feeds ``state`` from the topics until :meth:`stop`."""

    def __init__(
        self,
        settings: HeimdallSettings,
        serde: Serde,
        state: DashboardState,
        *,
        count_topics: CountFn,
        history_s: float = 600.0,
        interval_s: float = 2.0,
        on_change: Callable[[], None] | None = None,
        stages: list[Stage] | None = None,
    ) -> None:
        self.settings = settings
        self.serde = serde
        self.state = state
        self.count_topics = count_topics
        self.history_s = history_s
        self.interval_s = interval_s
        self.on_change = on_change or (lambda: None)
        self.stages = stages if stages is not None else default_stages(settings)
        self.group_id = f"heimdall-dashboard-{new_event_id()}"
        self._stop = threading.Event()
        t = settings.topics
        self._roles = {getattr(t, role): role for role in BACKLOG}
        self._threads = [
            threading.Thread(target=self._events, name="heimdall-dashboard-feed", daemon=True),
            threading.Thread(target=self._pipeline, name="heimdall-dashboard-lag", daemon=True),
        ]
        self.events_read = 0

    def start(self) -> Feed:
        for th in self._threads:
            th.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for th in self._threads:
            th.join(timeout=10)

    # -- events ----------------------------------------------------------------------------
    def _assign_new(self, c: Consumer, assigned: set[tuple[str, int]], first: bool) -> None:
        md = c.list_topics(timeout=5)
        since_ms = int((time.time() - self.history_s) * 1000)
        new: list[TopicPartition] = []
        for name, role in self._roles.items():
            meta = md.topics.get(name)
            if meta is None or meta.error is not None:
                continue
            for p in meta.partitions:
                if (name, p) in assigned:
                    continue
                lo, hi = c.get_watermark_offsets(TopicPartition(name, p), timeout=5, cached=False)
                start = lo
                if first:
                    start = max(lo, hi - BACKLOG[role])
                    if role not in STATE_ROLES:
                        start = max(start, self._offset_at(c, name, p, since_ms, lo))
                new.append(TopicPartition(name, p, start))
                assigned.add((name, p))
        if new:
            c.incremental_assign(new)

    @staticmethod
    def _offset_at(c: Consumer, name: str, p: int, ts_ms: int, default: int) -> int:
        try:
            (tp,) = c.offsets_for_times([TopicPartition(name, p, ts_ms)], timeout=5)
        except Exception:
            return default
        return int(tp.offset) if tp.error is None and tp.offset >= 0 else default

    def _events(self) -> None:
        c = kafka.consumer(self.settings, self.group_id)
        assigned: set[tuple[str, int]] = set()
        next_meta = 0.0
        first = True
        since_ns = int((time.time() - self.history_s) * 1e9)
        dlq = self.settings.topics.dlq
        try:
            while not self._stop.is_set():
                if time.monotonic() >= next_meta:
                    try:
                        self._assign_new(c, assigned, first)
                        first = False
                    except Exception as exc:  # broker not up yet: try again
                        log.warning("dashboard: assigning partitions failed: %s", exc)
                    next_meta = time.monotonic() + 5.0
                if not assigned:
                    self._stop.wait(0.5)
                    continue
                changed = False
                for msg in c.consume(500, timeout=0.1):
                    if msg.error():
                        continue
                    topic = str(msg.topic())
                    _, ts_ms = msg.timestamp()
                    t_ns = int(ts_ms) * 1_000_000 if ts_ms and ts_ms > 0 else time.time_ns()
                    if t_ns < since_ns and self._roles.get(topic) not in STATE_ROLES:
                        continue
                    self.events_read += 1
                    if topic == dlq:
                        headers: Any = msg.headers()
                        dead = DeadLetter.from_message(msg.key(), msg.value(), headers)
                        self.state.apply_dead_letter(dead, t_ns)
                        changed = True
                        continue
                    try:
                        event = self.serde.decode(msg.value() or b"")
                    except Exception:
                        self.state.decode_errors += 1
                        continue
                    changed = self.state.apply(event) or changed
                if changed:
                    self.on_change()
        finally:
            c.close()

    # -- pipeline --------------------------------------------------------------------------
    def _pipeline(self) -> None:
        counter = kafka.consumer(self.settings, f"{self.group_id}-counts")
        groups = {s.group_id: kafka.consumer(self.settings, s.group_id) for s in self.stages}
        last: tuple[float, dict[str, int]] | None = None
        try:
            while not self._stop.is_set():
                try:
                    now = time.monotonic()
                    totals = self.count_topics(counter, self.settings.topics.all())
                    rates: dict[str, float] = {}
                    if last is not None and now > last[0]:
                        rates = {
                            k: max(v - last[1].get(k, 0), 0) / (now - last[0])
                            for k, v in totals.items()
                        }
                    last = (now, totals)
                    lag = {
                        s.name: self._lag(counter, groups[s.group_id], s, totals)
                        for s in self.stages
                    }
                    known = {k: v for k, v in lag.items() if v is not None}
                    dlq = rates.get(self.settings.topics.dlq)
                    self.state.set_pipeline(rates, totals, known, dead_letters_per_s=dlq)
                    self.on_change()
                except Exception as exc:
                    log.warning("dashboard: reading counts and lag failed: %s", exc)
                self._stop.wait(self.interval_s)
        finally:
            counter.close()
            for g in groups.values():
                g.close()

    @staticmethod
    def _lag(
        meta_c: Consumer, group_c: Consumer, stage: Stage, totals: dict[str, int]
    ) -> int | None:
        """Events of the stage's topics its group has not committed yet (None: no commit)."""
        md = meta_c.list_topics(timeout=5)
        total = 0
        seen = False
        for name in stage.topics:
            meta = md.topics.get(name)
            if meta is None or meta.error is not None:
                continue
            parts = [TopicPartition(name, p) for p in meta.partitions]
            committed = group_c.committed(parts, timeout=5)
            done = 0
            for tp in committed:
                if tp.offset == OFFSET_INVALID or tp.offset < 0:
                    continue
                seen = True
                lo, _ = meta_c.get_watermark_offsets(
                    TopicPartition(name, tp.partition), timeout=5, cached=False
                )
                done += max(int(tp.offset) - lo, 0)
            total += max(totals.get(name, 0) - done, 0)
        return total if seen else None
