"""Association: the measurements of one emission by several receivers in one window.

Windows are tumbling and in **event time**: a measurement taken at ``t_ns`` belongs to window
``k = floor(t_ns / W)``. Each receiver is a source with its own progress (the latest ``t_ns``
it delivered on the channel). The channel's *watermark* is the slowest active source's progress
minus the allowed lateness, as in Flink or Beam: receivers arrive through different partitions
and may be seconds apart in event time (a replay runs partitions at different speeds), and a
window must wait for the slowest. A receiver that has delivered nothing for ``idle_s`` of wall
time is *idle* and no longer holds the watermark back (a dead receiver must not stop the
channel). Receivers not heard yet are treated as last heard when the channel was first seen:
no window closes during the first ``grace_s`` of a channel (default 2 s in the stream; the
idle time when not given), so that receivers whose chunks were measured a little later at
start-up (by a worker that joined later) are not declared late. All measurements of a
channel reach the association through one partition (they are keyed by channel where they
are made), so the grace only has to cover the skew between the features workers.

When every source of a channel is idle the input has ended for now (a finite replay or
simulation, or a channel that went quiet): the watermark is then the furthest progress of any
source, so the windows still open are closed instead of waiting for a measurement that may
never come. Closing is checked when a measurement arrives and by a periodic tick
(:func:`close_ready`, run by the agent's timer), because the passing of wall time alone can
make a window closable.

Window ``k`` closes when the watermark passes its end ``(k + 1) W``. A closed window with at
least ``min_receivers`` distinct receivers becomes an :class:`Observation`. A measurement for
a window that has already closed is *late* and is refused (the agent sends it to the
dead-letter topic).

Why not Faust's windowed tables: faust-streaming 0.15 expires windows against the wall clock
(``tables/base.py``, ``window.stale(timestamps[0], time.time())``), so a replay or a simulation
faster than real time would never (or always) close its windows. The state here is a plain
JSON-able dict kept per channel in a Faust table, so it is changelogged and survives a
restart, and this module is testable without a broker.

Each receiver's measurements in a window are combined: power as the mean of the linear
powers, :math:`\\bar P = 10 \\log_{10}(\\frac1N \\sum 10^{P_i/10})`, with the spread of the
per-chunk powers in dB kept as ``power_std_db``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from heimdall.core.derived_ids import derived_event_id
from heimdall.schemas.models import (
    ClockSource,
    Measurement,
    Observation,
    ObservationMember,
    Position,
    TdoaPair,
)

ChannelState = dict[str, Any]
"""``{"windows": {k: {receiver_id: aggregate}}, "closed_before": k,
"sources": {receiver_id: [latest t_ns, wall ns last seen]}, "created_ns": wall ns}``"""


@dataclass(frozen=True)
class WindowPolicy:
    """Window length, allowed lateness, source idleness and the receivers an observation needs."""

    window_ns: int
    lateness_ns: int
    min_receivers: int
    idle_ns: int = 5_000_000_000
    grace_ns: int | None = None
    """No window of a channel closes this long after it was first seen (None: ``idle_ns``)."""

    @classmethod
    def from_seconds(
        cls,
        window_s: float,
        min_receivers: int,
        lateness_s: float = 0.0,
        idle_s: float = 5.0,
        grace_s: float | None = 2.0,
    ) -> WindowPolicy:
        grace_ns = None if grace_s is None else int(grace_s * 1e9)
        return cls(
            int(window_s * 1e9), int(lateness_s * 1e9), min_receivers, int(idle_s * 1e9), grace_ns
        )

    @property
    def startup_grace_ns(self) -> int:
        return self.idle_ns if self.grace_ns is None else self.grace_ns


@dataclass(frozen=True)
class AddResult:
    """What adding one measurement did: the new state, windows closed, whether it was late."""

    state: ChannelState
    closed: list[tuple[int, dict[str, dict[str, Any]]]]
    late: bool


def new_state() -> ChannelState:
    return {"windows": {}, "closed_before": None, "sources": {}, "created_ns": None}


def aggregate_measurement(agg: dict[str, Any] | None, m: Measurement) -> dict[str, Any]:
    """Add ``m`` to a receiver's running aggregate in a window (None: start one)."""
    lin = 10.0 ** (m.power_dbm / 10.0)
    if agg is None:
        agg = {
            "n": 0,
            "sum_mw": 0.0,
            "sum_db": 0.0,
            "sum_db2": 0.0,
            "sum_snr": 0.0,
            "sum_nf": 0.0,
            "sum_foff": 0.0,
            "t_first": m.t_ns,
            "ids": [],
            "chunk_pub_max": 0,
            "upstream_max_s": 0.0,
        }
    agg["n"] += 1
    agg["sum_mw"] += lin
    agg["sum_db"] += m.power_dbm
    agg["sum_db2"] += m.power_dbm**2
    agg["sum_snr"] += m.snr_db
    agg["sum_nf"] += m.noise_floor_dbm_hz
    agg["sum_foff"] += m.freq_offset_hz
    agg["t_first"] = min(agg["t_first"], m.t_ns)
    agg["ids"].append(m.event_id)
    agg["chunk_pub_max"] = max(agg["chunk_pub_max"], m.chunk_published_ns)
    if m.chunk_published_ns and m.published_ns:
        upstream = (m.published_ns - m.chunk_published_ns) / 1e9
        agg["upstream_max_s"] = max(agg["upstream_max_s"], upstream)
    agg["pos"] = [m.position.lat_deg, m.position.lon_deg, m.position.alt_m]
    agg["clock"] = m.clock.value
    agg["freq_hz"] = m.channel_freq_hz
    return agg


def watermark(state: ChannelState, policy: WindowPolicy, now_ns: int) -> int | None:
    """Slowest active source's progress minus the lateness; the furthest progress when every
    source is idle (``None``: nothing may close yet)."""
    if state["created_ns"] is None or now_ns - state["created_ns"] < policy.startup_grace_ns:
        return None
    progress = [t for t, _seen in state["sources"].values()]
    if not progress:
        return None
    active = [t for t, seen in state["sources"].values() if now_ns - seen <= policy.idle_ns]
    return (min(active) if active else max(progress)) - policy.lateness_ns


def close_ready(
    state: ChannelState, policy: WindowPolicy, now_ns: int | None = None
) -> list[tuple[int, dict[str, dict[str, Any]]]]:
    """Pop and return, oldest first, every window the watermark at ``now_ns`` has passed."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    wm = watermark(state, policy, now_ns)
    windows: dict[str, dict[str, dict[str, Any]]] = state["windows"]
    closed: list[tuple[int, dict[str, dict[str, Any]]]] = []
    if wm is None:
        return closed
    for key in sorted(windows, key=int):
        if (int(key) + 1) * policy.window_ns <= wm:
            closed.append((int(key), windows.pop(key)))
            state["closed_before"] = int(key) + 1
    return closed


def resume_after_silence(state: ChannelState, policy: WindowPolicy, now_ns: int) -> None:
    """After the whole channel was silent over ``2 idle_ns``, start over as at startup.

    Every source silent that long is not a receiver dropping out: the stream stopped (the worker
    was killed and restarted, or the broker was gone) and a backlog follows. Judged idle by
    the wall clock, every receiver would then be idle, the first ones whose backlog arrives
    would alone drive the watermark, and the others' measurements of the same windows would
    come late and be refused (measured: 9 of 90 observations short of 15 of their 35
    measurements after a killed worker). So the startup grace starts again and every known
    source counts as just seen: each has ``idle_ns`` to show up before it stops holding the
    windows. (Twice ``idle_ns``: a channel whose receivers all fell idle together for less
    than that still closes its windows by the furthest progress, as before.)
    """
    seen = [s for _t, s in state["sources"].values()]
    if seen and now_ns - max(seen) > 2 * policy.idle_ns:
        state["created_ns"] = now_ns
        for source in state["sources"].values():
            source[1] = now_ns


def add_measurement(
    state: ChannelState, m: Measurement, policy: WindowPolicy, now_ns: int | None = None
) -> AddResult:
    """Put ``m`` into its window and close every window the new watermark has passed.

    ``now_ns`` is the wall clock (injected for tests); it only decides which sources are idle.
    """
    now_ns = time.time_ns() if now_ns is None else now_ns
    if state["created_ns"] is None:
        state["created_ns"] = now_ns
    resume_after_silence(state, policy, now_ns)
    k = m.t_ns // policy.window_ns
    closed_before = state["closed_before"]
    if closed_before is not None and k < closed_before:
        return AddResult(state, [], late=True)
    windows: dict[str, dict[str, dict[str, Any]]] = state["windows"]
    window = windows.setdefault(str(k), {})
    window[m.receiver_id] = aggregate_measurement(window.get(m.receiver_id), m)
    sources: dict[str, list[int]] = state["sources"]
    latest = sources.get(m.receiver_id, [m.t_ns, now_ns])[0]
    sources[m.receiver_id] = [max(latest, m.t_ns + int(m.duration_s * 1e9)), now_ns]
    return AddResult(state, close_ready(state, policy, now_ns), late=False)


def build_observation(
    channel_id: str, k: int, members: dict[str, dict[str, Any]], policy: WindowPolicy
) -> Observation | None:
    """The observation of a closed window, or ``None`` when too few receivers heard it."""
    if len(members) < policy.min_receivers:
        return None
    return observation_of(channel_id, k * policy.window_ns, (k + 1) * policy.window_ns, members)


def observation_of(
    channel_id: str,
    start_ns: int,
    end_ns: int,
    members: dict[str, dict[str, Any]],
    tdoa_pairs: tuple[TdoaPair, ...] = (),
) -> Observation:
    """An observation of ``[start_ns, end_ns)`` from the receivers' aggregates (and lags)."""
    out = []
    freq_hz = 0.0
    latest_pub = 0
    upstream = 0.0
    for rid in sorted(members):
        a = members[rid]
        n = a["n"]
        mean_db = a["sum_db"] / n
        var_db = max(a["sum_db2"] / n - mean_db**2, 0.0)
        freq_hz = a["freq_hz"]
        latest_pub = max(latest_pub, a["chunk_pub_max"])
        upstream = max(upstream, a["upstream_max_s"])
        lat, lon, alt = a["pos"]
        out.append(
            ObservationMember(
                receiver_id=rid,
                position=Position(lat_deg=lat, lon_deg=lon, alt_m=alt),
                clock=ClockSource(a["clock"]),
                t_ns=a["t_first"],
                power_dbm=10.0 * math.log10(a["sum_mw"] / n),
                power_std_db=math.sqrt(var_db),
                snr_db=a["sum_snr"] / n,
                noise_floor_dbm_hz=a["sum_nf"] / n,
                freq_offset_hz=a["sum_foff"] / n,
                n_measurements=n,
                measurement_ids=tuple(a["ids"]),
            )
        )
    # derived from what it observes: a replayed window gets the same id; a TDOA block (with
    # lag pairs) that starts with an RSS window is a different result, so a different id
    kind = "tdoa-observation" if tdoa_pairs else "observation"
    return Observation(
        event_id=derived_event_id(kind, start_ns, channel_id, start_ns, end_ns),
        channel_id=channel_id,
        channel_freq_hz=freq_hz,
        window_start_ns=start_ns,
        window_end_ns=end_ns,
        members=tuple(out),
        tdoa_pairs=tdoa_pairs,
        latest_chunk_published_ns=latest_pub,
        upstream_latency_s=upstream,
        published_ns=time.time_ns(),
    )
