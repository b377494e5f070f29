"""In-stream TDOA: the GPS-timed IQ of one emission from several receivers meets in one place.

How IQ meets IQ
---------------
The features stage measures every chunk; when a chunk is GPS-timed (``clock == gps``: the
adapters set ``free`` when the receiver's GPS fix is older than their limit) and its channel
is *detected*, it also forwards the chunk's bytes untouched to ``rf.snippets.v1``, keyed by
**channel id**. Every snippet of a channel therefore reaches one task of the ``tdoa`` agent,
and only detected, GPS-timed IQ travels twice (no re-encoding: the forwarded value is the
received one). Receivers whose clock is not GPS never enter TDOA; their measurements still
reach the association (``rf.features.v1``) and count for RSS.

Blocks
------
Cross-correlation gains with integration time (a lag's standard error falls as
:math:`1/\\sqrt{B^2 \\, \\mathrm{SNR} \\, T}`), so TDOA integrates over **blocks** longer
than the RSS association window: a block of a channel starts with the first snippet of a
*session* (``s0``) and block ``k`` covers event times ``[s0 + kW, s0 + (k+1)W)``, ``W`` =
``HEIMDALL_TDOA_WINDOW_S`` (30 s by default: the recording length of the KiwiSDR network's
own TDoA service, so a replayed recording of that service is one block). A chunk belongs to
the block its first sample falls in; chunks a little *before* ``s0`` (another receiver's
first chunk measured later) join block 0.

Blocks close like association windows (:func:`heimdall.streams.associate.watermark`): when
the slowest active receiver's progress passes the block's end, or when every receiver of the
channel has been idle for ``idle_s`` of wall time (the input ended: a finite recording, or
the emission stopped) — then every open block closes and the session ends, so the next
snippet starts a new one.

A pair whose common signal is too narrowband to resolve a lag within what its baseline
allows (a pure carrier, slow keying: :mod:`heimdall.ml.tdoa.resolution`) is left out rather
than giving a silently wrong fix (the correlation of a carrier peaks at zero lag whatever the
delay). A closed block with at least three GPS receivers becomes an :class:`Observation` whose
members are the receivers' block-averaged measurements and whose ``tdoa_pairs`` are the
pairwise lags (:func:`heimdall.ml.tdoa.lags.pair_lags`: cross-correlation, or the
DCF77 matched filter with ``HEIMDALL_TDOA_METHOD=dcf77-pn``), each with its standard error
(statistical and systematic in quadrature) and quality. A receiver whose lags are unusable
(no overlap, a weak peak with every other) is left out with the reason logged.

State and failures
------------------
The IQ of open blocks is held in memory only (a changelog of raw IQ would double the
broker's traffic); a worker that dies loses its open blocks, and the snippets are still on
``rf.snippets.v1`` (one hour) for a replay. The RSS path does not depend on it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from heimdall.core.errors import EstimationError
from heimdall.ml.tdoa.lags import LagOptions, TdoaMethod, TdoaRecording, max_lag_s, pair_lags
from heimdall.ml.tdoa.resolution import gabor_bandwidth_hz, lag_resolution_s
from heimdall.schemas.models import ClockSource, IqChunk, Measurement, Observation, TdoaPair
from heimdall.streams.associate import aggregate_measurement, observation_of

log = logging.getLogger(__name__)

__all__ = [
    "MAX_TDOA_RECEIVERS",
    "TdoaBlock",
    "TdoaSessions",
    "is_tdoa_snippet",
    "strongest_receivers",
    "tdoa_observation",
]

#: A 2-D TDOA fix needs three receivers (two independent differences).
MIN_TDOA_RECEIVERS = 3


def is_tdoa_snippet(chunk: IqChunk, m: Measurement) -> bool:
    """Whether the features stage forwards ``chunk`` to the TDOA stage: GPS-timed and detected."""
    return chunk.clock == ClockSource.GPS and m.detected


@dataclass
class TdoaBlock:
    """The snippets of one channel in one block: per receiver, its chunks and measurements."""

    channel_id: str
    start_ns: int
    end_ns: int
    chunks: dict[str, list[tuple[IqChunk, Measurement]]] = field(default_factory=dict)

    @property
    def n_receivers(self) -> int:
        return len(self.chunks)


@dataclass
class _Session:
    s0_ns: int
    created_wall_ns: int
    blocks: dict[int, TdoaBlock] = field(default_factory=dict)
    closed_before: int = 0
    #: receiver id -> [event-time progress (end of its latest chunk), wall ns last seen]
    sources: dict[str, list[int]] = field(default_factory=dict)


class TdoaSessions:
    """Open TDOA blocks per channel (module docstring); pure state, testable without a broker.

    Parameters
    ----------
    window_s : float
        Block length ``W``, s.
    idle_s : float
        A receiver silent this long (wall time) no longer holds blocks open.
    grace_s : float
        No block of a new session closes by the watermark this soon after it began (the
        features workers' skew at start-up), as in the association.
    """

    def __init__(self, window_s: float, idle_s: float = 5.0, grace_s: float = 2.0) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_ns = int(window_s * 1e9)
        self.idle_ns = int(idle_s * 1e9)
        self.grace_ns = int(grace_s * 1e9)
        self._sessions: dict[str, _Session] = {}
        self.late = 0

    def __contains__(self, channel_id: object) -> bool:
        return channel_id in self._sessions

    @property
    def channels(self) -> list[str]:
        return list(self._sessions)

    def held_chunks(self) -> int:
        """Chunks held in open blocks (for the memory it takes: each is one IQ chunk)."""
        return sum(
            len(v) for s in self._sessions.values() for b in s.blocks.values()
            for v in b.chunks.values()
        )  # fmt: skip

    def add(
        self, chunk: IqChunk, m: Measurement, now_ns: int | None = None
    ) -> tuple[list[TdoaBlock], bool]:
        """Put a snippet into its block; returns the blocks closed now and whether it was late."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        s = self._sessions.get(m.channel_id)
        if s is None:
            s = self._sessions[m.channel_id] = _Session(s0_ns=chunk.t_ns, created_wall_ns=now_ns)
        k = max(0, (chunk.t_ns - s.s0_ns) // self.window_ns)
        # a chunk from long before the session began would stretch block 0 back to it
        if k < s.closed_before or chunk.t_ns < s.s0_ns - self.window_ns:
            self.late += 1
            return [], True
        block = s.blocks.get(k)
        if block is None:
            start = s.s0_ns + k * self.window_ns
            block = s.blocks[k] = TdoaBlock(m.channel_id, start, start + self.window_ns)
        block.start_ns = min(block.start_ns, chunk.t_ns)
        block.chunks.setdefault(chunk.receiver_id, []).append((chunk, m))
        end = chunk.t_ns + round(chunk.duration_s * 1e9)
        progress = s.sources.get(chunk.receiver_id, [end, now_ns])[0]
        s.sources[chunk.receiver_id] = [max(progress, end), now_ns]
        return self._close(m.channel_id, now_ns), False

    def close_ready(self, now_ns: int | None = None) -> list[TdoaBlock]:
        """Blocks that the passing of wall time alone made closable (every receiver idle)."""
        now_ns = time.time_ns() if now_ns is None else now_ns
        out: list[TdoaBlock] = []
        for channel_id in list(self._sessions):
            out += self._close(channel_id, now_ns)
        return out

    def drop(self, channel_ids: Iterable[str]) -> None:
        """Forget channels (their partition moved to another worker)."""
        for c in channel_ids:
            self._sessions.pop(c, None)

    def _close(self, channel_id: str, now_ns: int) -> list[TdoaBlock]:
        s = self._sessions[channel_id]
        active = [t for t, seen in s.sources.values() if now_ns - seen <= self.idle_ns]
        closed: list[TdoaBlock] = []
        if not active:  # the input ended: close everything, end the session
            closed = [s.blocks[k] for k in sorted(s.blocks)]
            del self._sessions[channel_id]
            return closed
        if now_ns - s.created_wall_ns < self.grace_ns:
            return closed
        wm = min(active)
        for k in sorted(s.blocks):
            if s.blocks[k].end_ns <= wm:
                closed.append(s.blocks.pop(k))
                s.closed_before = k + 1
        return closed


def _recording(
    chunks: Sequence[tuple[IqChunk, Measurement]], t_ref_ns: int
) -> tuple[np.ndarray, np.ndarray, IqChunk]:
    """Samples and per-sample times (s after ``t_ref_ns``) of one receiver's chunks."""
    ordered = sorted(chunks, key=lambda cm: cm[0].t_ns)
    xs = [np.asarray(c.iq, dtype=np.complex128) for c, _ in ordered]
    ts = [
        (c.t_ns - t_ref_ns) / 1e9 + np.arange(x.size) / c.sample_rate_hz
        for (c, _), x in zip(ordered, xs, strict=True)
    ]
    return np.concatenate(xs), np.concatenate(ts), ordered[-1][0]


def _resolves(a: TdoaRecording, b: TdoaRecording, problems: dict[str, str]) -> bool:
    """Whether the pair's common signal resolves a lag within what the geometry allows
    (:mod:`heimdall.ml.tdoa.resolution`); if not, the reason goes into ``problems``."""
    t0 = max(float(a.times_s[0]), float(b.times_s[0]))
    t1 = min(float(a.times_s[-1]), float(b.times_s[-1]))
    xa = a.samples[(a.times_s >= t0) & (a.times_s <= t1)]
    xb = b.samples[(b.times_s >= t0) & (b.times_s <= t1)]
    beta_hz = gabor_bandwidth_hz(xa, xb, a.sample_rate_hz, LagOptions().band_hz)
    allowed_s = max_lag_s(a, b)
    if lag_resolution_s(beta_hz) <= allowed_s:
        return True
    problems[f"{a.name}–{b.name}"] = (
        f"unresolved: the common signal's RMS bandwidth {beta_hz:.0f} Hz resolves lags to "
        f"{lag_resolution_s(beta_hz) * 1e3:.1f} ms, wider than the ±{allowed_s * 1e3:.1f} ms "
        "the baseline allows (a narrowband emission)"
    )
    return False


#: Most receivers one block correlates (``HEIMDALL_TDOA_MAX_RECEIVERS``): N receivers are
#: N(N − 1)/2 pairs, 300 for the 25 receivers of a dense channel.
MAX_TDOA_RECEIVERS = 8


def strongest_receivers(block: TdoaBlock, n: int) -> list[str]:
    """The ``n`` receivers of ``block`` with the highest mean SNR over their chunks (dB),
    sorted by id: the pairs of N receivers carry N − 1 independent differences, so beyond a
    handful of well-placed strong receivers more pairs add cost quadratically and little
    information; the weakest ones add the least."""
    snr = {
        rid: float(np.mean([m.snr_db for _c, m in chunks])) for rid, chunks in block.chunks.items()
    }
    return sorted(sorted(snr, key=lambda r: (-snr[r], r))[:n])


def tdoa_observation(
    block: TdoaBlock, method: TdoaMethod = "xcorr", max_receivers: int = MAX_TDOA_RECEIVERS
) -> Observation | None:
    """The observation of a closed block, its ``tdoa_pairs`` filled; None below 3 receivers.

    Only the ``max_receivers`` strongest receivers are correlated (:func:`strongest_receivers`).

    Raises
    ------
    EstimationError
        When fewer than three receivers give usable lags (the reasons in the message).
    """
    if block.n_receivers < MIN_TDOA_RECEIVERS:
        return None
    started_ns = time.time_ns()
    recordings = []
    for rid in strongest_receivers(block, max(max_receivers, MIN_TDOA_RECEIVERS)):
        x, t, last = _recording(block.chunks[rid], block.start_ns)
        recordings.append(
            TdoaRecording(
                name=rid,
                samples=x,
                times_s=t,
                sample_rate_hz=last.sample_rate_hz,
                lat_deg=last.position.lat_deg,
                lon_deg=last.position.lon_deg,
            )
        )
    # first which pairs can resolve a lag at all (cheap): a narrowband emission costs nothing
    problems: dict[str, str] = {}
    resolvable = {
        (a.name, b.name)
        for i, a in enumerate(recordings)
        for b in recordings[i + 1 :]
        if _resolves(a, b, problems)
    }
    candidates = [r for r in recordings if any(r.name in k for k in resolvable)]
    if len(candidates) < MIN_TDOA_RECEIVERS:
        why = "; ".join(f"{k}: {v}" for k, v in problems.items()) or "no usable pair"
        raise EstimationError(f"{len(candidates)} receivers with resolvable lags ({why})")
    # dcf77-pn pairs by cross-correlation: the observation carries independent pair sigmas,
    # not the shared arrival-time errors of its toa mode
    lags = pair_lags(candidates, method=method, options=LagOptions(pn_pair_mode="cross"))
    problems.update(lags.problems)
    resolved = [
        p
        for p in lags.pairs
        if (p.a, p.b) in resolvable and p.a not in lags.problems and p.b not in lags.problems
    ]
    usable = {r for p in resolved for r in (p.a, p.b)}
    if len(usable) < MIN_TDOA_RECEIVERS:
        why = "; ".join(f"{k}: {v}" for k, v in problems.items()) or "no usable pair"
        raise EstimationError(f"{len(usable)} receivers with usable lags ({why})")
    pairs = resolved
    members: dict[str, dict[str, Any]] = {}
    for rid in sorted(usable):
        agg: dict[str, Any] | None = None
        for _chunk, m in block.chunks[rid]:
            agg = aggregate_measurement(agg, m)
        assert agg is not None  # a receiver is in a block through at least one chunk
        members[rid] = agg
    tdoa_pairs = tuple(
        TdoaPair(
            receiver_a=p.a,
            receiver_b=p.b,
            tdoa_s=-p.lag_s,  # PairLag: t_b − t_a; TdoaPair: t_a − t_b
            sigma_s=p.sigma_s,
            sigma_sys_s=p.sigma_sys_s or 0.0,
            quality=float(p.quality) if math.isfinite(p.quality) else 0.0,
            method=method,
        )
        for p in pairs
    )
    end_ns = max(c.t_ns + round(c.duration_s * 1e9) for v in block.chunks.values() for c, _ in v)
    obs = observation_of(block.channel_id, block.start_ns, end_ns, members, tdoa_pairs)
    # the lag computation is processing (counted); the wait for the block is the window (not)
    computed_s = (obs.published_ns - started_ns) / 1e9
    return dataclasses.replace(obs, upstream_latency_s=obs.upstream_latency_s + computed_s)
