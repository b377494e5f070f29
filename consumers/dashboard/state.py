r"""What the dashboard shows, kept in bounded memory, as the JSON the page receives.

Every event the feed reads goes through :meth:`DashboardState.apply` (or
:meth:`~DashboardState.apply_dead_letter`): the state keeps the latest status of each
receiver, a ring buffer of each receiver's recent measurements, a ring buffer of fixes (each
with its 1σ and 2σ ellipses already as lat/lon polygons), of truth positions, of dead
letters and of latencies; and it collects what changed since the last
:meth:`~DashboardState.take_delta` so that the server pushes only that.

Memory is bounded by the ring sizes (``collections.deque(maxlen=…)``) and by
``max_receivers``: with the defaults, 2,000 fixes of ~2 kB, 2,000 truth points, 300
measurement points and one PSD summary for each of at most 2,000 receivers, 120 waterfall
rows of 1 kB for each of at most 50 receivers, 500 observations with TDOA pairs, whatever
the run time (measured: 27 MB from the 2,000th fix to the 12,000th, 100 receivers).

Ellipses
--------
The k-sigma ellipse of a fix with east/north covariance Σ is ``{ε : εᵀ Σ⁻¹ ε = k²}``; with
semi-axes ``a ≥ b`` and the major axis at angle φ from east (``error_ellipse``, injected from
``heimdall.ml.estimators.ellipse``: consumers do not import ``ml``), its points are

.. math:: (e, n) = (a\cos θ \cos φ − b \sin θ \sin φ,\; a \cos θ \sin φ + b \sin θ \cos φ)

for θ in [0, 2π), in the ENU frame at the fix, mapped to lat/lon by
:func:`heimdall.core.geodesy.latlon_of_enu`. k = 1 holds the truth with probability
1 − e^{−1/2} = 39 %, k = 2 with 86 % (χ² with 2 degrees of freedom).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from heimdall.consumers.dashboard.hyperbola import tdoa_hyperbolas
from heimdall.core.geodesy import LocalFrame, distance_m, latlon_of_enu
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.models import (
    Localization,
    Measurement,
    ModelPointer,
    Observation,
    ReceiverStatus,
    Truth,
    WaterfallRow,
)

#: ``(cov 2x2 m², k) -> (semi_major_m, semi_minor_m, angle_deg from east)``.
EllipseFn = Callable[[npt.ArrayLike, float], tuple[float, float, float]]

#: Points of an ellipse polygon (closed: the first point is repeated at the end).
ELLIPSE_POINTS = 36
#: Channels whose last SNR a receiver keeps (the oldest-heard is dropped first).
MAX_CHANNELS_PER_RECEIVER = 16

#: Bins of a waterfall row as kept and sent (peak of each group of the receiver's bins).
WATERFALL_BINS = 256


def peak_bins(values: npt.ArrayLike, n_out: int = WATERFALL_BINS) -> npt.NDArray[np.float32]:
    """``values`` reduced to at most ``n_out`` bins, each the maximum of its group.

    The maximum (peak hold), not the mean: a narrow carrier one bin wide stays as high as it
    is. The last group takes the remainder when ``n_out`` does not divide the length.
    """
    v = np.asarray(values, dtype=np.float32).reshape(-1)
    if v.size <= n_out:
        return v.copy()
    edges = np.linspace(0, v.size, n_out + 1).astype(int)
    return np.maximum.reduceat(v, edges[:-1]).astype(np.float32)


#: A truth read after fixes of its channel (that had none) is matched to the last this many
#: fixes, like a truth read before them (the nearest in event time, no limit).
LATE_TRUTH_FIXES = 200


def ellipse_polygon(
    ellipse: EllipseFn, lat_deg: float, lon_deg: float, cov_m2: npt.ArrayLike, k_sigma: float
) -> list[list[float]]:
    """The k-sigma ellipse of a fix as ``[[lat, lon], …]`` (closed), or ``[]`` if undefined.

    An undefined ellipse (non-finite covariance) gives ``[]``: the fix is still drawn.
    """
    if not (math.isfinite(lat_deg) and math.isfinite(lon_deg)):
        return []
    try:
        a, b, angle_deg = ellipse(cov_m2, k_sigma)
    except ValueError:
        return []
    if not (math.isfinite(a) and math.isfinite(b)):
        return []
    theta = np.linspace(0.0, 2.0 * np.pi, ELLIPSE_POINTS + 1)
    phi = math.radians(angle_deg)
    e = a * np.cos(theta) * math.cos(phi) - b * np.sin(theta) * math.sin(phi)
    n = a * np.cos(theta) * math.sin(phi) + b * np.sin(theta) * math.cos(phi)
    lat, lon = latlon_of_enu(LocalFrame(lat_deg, lon_deg, 0.0), e, n)
    return [[round(float(y), 7), round(float(x), 7)] for y, x in zip(lat, lon, strict=True)]


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (linear interpolation, numpy's default), None when empty."""
    arr = np.fromiter(values, dtype=float)
    return float(np.percentile(arr, q)) if arr.size else None


@dataclass
class Pipeline:
    """The pipeline panel: rates, lag, dead letters, latency, models."""

    rates_per_s: dict[str, float] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    lag: dict[str, int] = field(default_factory=dict)
    updated_ns: int = 0
    dead_letters_per_s: float | None = None


class DashboardState:
    """The bounded picture of the system; thread-safe (the feed writes, the server reads).

    Parameters
    ----------
    ellipse
        ``error_ellipse`` of ``heimdall.ml.estimators.ellipse`` (injected by the caller).
    max_fixes, max_truth, max_points, max_receivers, max_dead_letters, max_latencies
        Ring sizes: fixes kept, truth positions kept, measurements kept per receiver,
        receivers kept (the least recently heard is dropped first), dead letters and
        latency samples kept.
    max_waterfall_rows, max_waterfall_receivers
        Waterfall rows kept per receiver (each reduced to 256 float32 bins: 1 kB), and
        receivers whose rows are kept (the least recently heard is dropped first).
    clock_ns
        Wall clock (``time.time_ns``), injectable for tests.
    """

    def __init__(
        self,
        ellipse: EllipseFn,
        *,
        max_fixes: int = 2000,
        max_truth: int = 2000,
        max_points: int = 300,
        max_receivers: int = 2000,
        max_dead_letters: int = 50,
        max_latencies: int = 2000,
        max_waterfall_rows: int = 120,
        max_waterfall_receivers: int = 50,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.ellipse = ellipse
        self.clock_ns = clock_ns
        self.max_points = max_points
        self.max_receivers = max_receivers
        self.lock = threading.Lock()
        self.receivers: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.measurements: dict[str, deque[list[Any]]] = {}
        self.psd: dict[str, dict[str, Any]] = {}  # each receiver's latest PSD summary
        # the last waterfall rows of the receivers that give them (web receivers)
        self.waterfall: OrderedDict[str, deque[dict[str, Any]]] = OrderedDict()
        self.max_waterfall_rows = max_waterfall_rows
        self.max_waterfall_receivers = max_waterfall_receivers
        self._d_rows: dict[str, deque[dict[str, Any]]] = {}
        # observations with TDOA pairs, for the hyperbolas behind their TDOA fixes
        self._tdoa_obs: OrderedDict[str, Observation] = OrderedDict()
        self.max_observations = 500
        self.fixes: deque[dict[str, Any]] = deque(maxlen=max_fixes)
        self.truth: deque[dict[str, Any]] = deque(maxlen=max_truth)
        self._truth_by_channel: dict[str, deque[dict[str, Any]]] = {}
        self.dead_letters: deque[dict[str, Any]] = deque(maxlen=max_dead_letters)
        self.latencies_s: deque[float] = deque(maxlen=max_latencies)
        self.models: dict[str, dict[str, Any]] = {}
        self.pipeline = Pipeline()
        self.channels: set[str] = set()
        self.decode_errors = 0
        # what changed since the last take_delta (bounded as well)
        self._d_receivers: dict[str, dict[str, Any]] = {}
        self._d_fixes: deque[dict[str, Any]] = deque(maxlen=max_fixes)
        self._d_truth: deque[dict[str, Any]] = deque(maxlen=max_truth)
        self._d_dead: deque[dict[str, Any]] = deque(maxlen=max_dead_letters)
        self._d_points: dict[str, deque[list[Any]]] = {}
        self._d_pipeline = False
        self._d_models = False

    # -- input -----------------------------------------------------------------------------
    def apply(self, event: Any) -> bool:
        """Take one decoded event; True if it changed what the page shows."""
        with self.lock:
            if isinstance(event, Localization):
                self._on_fix(event)
            elif isinstance(event, Measurement):
                self._on_measurement(event)
            elif isinstance(event, ReceiverStatus):
                self._on_status(event)
            elif isinstance(event, Truth):
                self._on_truth(event)
            elif isinstance(event, ModelPointer):
                self._on_model(event)
            elif isinstance(event, WaterfallRow):
                self._on_waterfall(event)
            elif isinstance(event, Observation):
                if event.tdoa_pairs:
                    self._tdoa_obs[event.event_id] = event
                    while len(self._tdoa_obs) > self.max_observations:
                        self._tdoa_obs.popitem(last=False)
                return False
            else:
                return False
        return True

    def apply_dead_letter(self, dead: DeadLetter, t_ns: int) -> None:
        """Keep a dead letter's reason (never its bytes)."""
        d = {
            "t_ns": t_ns,
            "reason": dead.reason,
            "stage": dead.stage,
            "topic": dead.topic,
            "offset": dead.offset,
        }
        with self.lock:
            self.dead_letters.append(d)
            self._d_dead.append(d)

    def set_pipeline(
        self,
        rates_per_s: dict[str, float],
        totals: dict[str, int],
        lag: dict[str, int],
        dead_letters_per_s: float | None = None,
    ) -> None:
        """The feed's periodic reading of the topics and consumer groups.

        ``dead_letters_per_s``: the dead-letter topic's rate, when its count is known (the
        ring of reasons holds only the last few).
        """
        with self.lock:
            self.pipeline = Pipeline(
                dict(rates_per_s), dict(totals), dict(lag), self.clock_ns(), dead_letters_per_s
            )
            self._d_pipeline = True

    def _receiver(self, receiver_id: str) -> dict[str, Any]:
        r = self.receivers.get(receiver_id)
        if r is None:
            r = {
                "id": receiver_id,
                "kind": None,
                "lat": None,
                "lon": None,
                "state": "unknown",
                "updated_ns": None,
                "last_seen_ns": None,
                "snr_db": None,
                "power_dbm": None,
                "channel_id": None,
                "message": None,
            }
            self.receivers[receiver_id] = r
            while len(self.receivers) > self.max_receivers:
                old, _ = self.receivers.popitem(last=False)
                self.measurements.pop(old, None)
                self.psd.pop(old, None)
        else:
            self.receivers.move_to_end(receiver_id)
        return r

    def _on_status(self, s: ReceiverStatus) -> None:
        r = self._receiver(s.receiver_id)
        r.update(
            kind=s.kind,
            lat=s.position.lat_deg,
            lon=s.position.lon_deg,
            state=str(s.state),
            updated_ns=s.updated_ns,
            message=s.message,
        )
        if s.last_data_ns:
            r["last_seen_ns"] = max(r["last_seen_ns"] or 0, s.last_data_ns)
        self._d_receivers[s.receiver_id] = dict(r)

    def _on_measurement(self, m: Measurement) -> None:
        r = self._receiver(m.receiver_id)
        if r["lat"] is None:  # no status yet: the measurement says where it was made
            r["lat"], r["lon"] = m.position.lat_deg, m.position.lon_deg
        r["last_seen_ns"] = max(r["last_seen_ns"] or 0, m.t_ns)
        r["snr_db"], r["power_dbm"], r["channel_id"] = m.snr_db, m.power_dbm, m.channel_id
        self.channels.add(m.channel_id)
        point = [m.t_ns, m.channel_id, _r(m.power_dbm, 2), _r(m.snr_db, 2)]
        r["snr_db"], r["power_dbm"] = point[3], point[2]
        # a new dict each time: the copies already handed to the server stay unchanged
        by_channel = {**r.get("snr_db_by_channel", {}), m.channel_id: point[3]}
        if len(by_channel) > MAX_CHANNELS_PER_RECEIVER:
            del by_channel[next(iter(by_channel))]
        r["snr_db_by_channel"] = by_channel
        ring = self.measurements.get(m.receiver_id)
        if ring is None:
            ring = self.measurements[m.receiver_id] = deque(maxlen=self.max_points)
        ring.append(point)
        if m.psd_dbm_hz and m.psd_bin_hz > 0:
            self.psd[m.receiver_id] = {
                "t_ns": m.t_ns,
                "channel_id": m.channel_id,
                "bin_hz": m.psd_bin_hz,
                "dbm_hz": [_r(v, 1) for v in m.psd_dbm_hz],
            }
        self._d_receivers[m.receiver_id] = dict(r)
        pending = self._d_points.get(m.receiver_id)
        if pending is None:
            pending = self._d_points[m.receiver_id] = deque(maxlen=self.max_points)
        pending.append(point)

    def _on_waterfall(self, w: WaterfallRow) -> None:
        values = peak_bins(w.values)
        row = {
            "t_ns": w.t_ns,
            "center_freq_hz": w.center_freq_hz,
            "span_hz": w.bin_hz * w.n_bins,
            "values": values,
        }
        ring = self.waterfall.get(w.receiver_id)
        if ring is None:
            ring = self.waterfall[w.receiver_id] = deque(maxlen=self.max_waterfall_rows)
            while len(self.waterfall) > self.max_waterfall_receivers:
                old, _ = self.waterfall.popitem(last=False)
                self._d_rows.pop(old, None)
        else:
            self.waterfall.move_to_end(w.receiver_id)
        ring.append(row)
        pending = self._d_rows.get(w.receiver_id)
        if pending is None:
            pending = self._d_rows[w.receiver_id] = deque(maxlen=self.max_waterfall_rows)
        pending.append(row)
        r = self._receiver(w.receiver_id)
        if r["lat"] is None:
            r["lat"], r["lon"] = w.position.lat_deg, w.position.lon_deg
        r["last_seen_ns"] = max(r["last_seen_ns"] or 0, w.t_ns)
        self._d_receivers[w.receiver_id] = dict(r)

    def _on_truth(self, t: Truth) -> None:
        d = {
            "source_id": t.source_id,
            "channel_id": t.channel_id,
            "t_ns": t.t_ns,
            "lat": t.position.lat_deg,
            "lon": t.position.lon_deg,
            "transmitting": t.transmitting,
        }
        self.truth.append(d)
        self._d_truth.append(d)
        if t.channel_id:
            self.channels.add(t.channel_id)
            ring = self._truth_by_channel.get(t.channel_id)
            if ring is None:
                ring = self._truth_by_channel[t.channel_id] = deque(maxlen=64)
            ring.append(d)
            self._late_truth(d)

    def _late_truth(self, truth: dict[str, Any]) -> None:
        """Recent fixes of the truth's channel that came before any truth get it now (the
        topics are read in no fixed order); they are pushed again, the page replaces them."""
        for n, fix in enumerate(reversed(self.fixes)):
            if n >= LATE_TRUTH_FIXES:
                break
            if fix["channel_id"] != truth["channel_id"] or fix["truth"] is not None:
                continue
            if fix["lat"] is None:
                continue
            self._set_truth(fix, truth)
            self._d_fixes.append(fix)

    @staticmethod
    def _set_truth(fix: dict[str, Any], truth: dict[str, Any]) -> None:
        fix["truth"] = {"source_id": truth["source_id"], "lat": truth["lat"], "lon": truth["lon"]}
        p, q = (fix["lat"], fix["lon"], 0.0), (truth["lat"], truth["lon"], 0.0)
        fix["error_m"] = round(float(distance_m(p, q)), 1)

    def _on_model(self, p: ModelPointer) -> None:
        self.models[p.model_name] = {
            "model_name": p.model_name,
            "version": p.version,
            "created_ns": p.created_ns,
            "metrics": dict(p.metrics),
        }
        self._d_models = True

    def _nearest_truth(self, channel_id: str, t_ns: int) -> dict[str, Any] | None:
        ring = self._truth_by_channel.get(channel_id)
        if not ring:
            return None
        return min(ring, key=lambda d: abs(d["t_ns"] - t_ns))

    def _on_fix(self, loc: Localization) -> None:
        lat, lon = loc.position.lat_deg, loc.position.lon_deg
        cov = loc.cov_m2
        fix: dict[str, Any] = {
            "id": loc.event_id,
            "channel_id": loc.channel_id,
            "method": loc.method,
            "t_ns": loc.t_ns,
            "published_ns": loc.published_ns,
            "lat": _f(lat),
            "lon": _f(lon),
            "cov_ee_m2": _f(loc.cov_ee_m2),
            "cov_en_m2": _f(loc.cov_en_m2),
            "cov_nn_m2": _f(loc.cov_nn_m2),
            "n_receivers": loc.n_receivers,
            "model_version": loc.model_version,
            "latency_s": _f(loc.processing_latency_s),
            "ellipse_1sigma": ellipse_polygon(self.ellipse, lat, lon, cov, 1.0),
            "ellipse_2sigma": ellipse_polygon(self.ellipse, lat, lon, cov, 2.0),
            "truth": None,
            "error_m": None,
            "hyperbolas": [],
        }
        obs = self._tdoa_obs.get(loc.observation_id)
        is_tdoa = ("tdoa" in loc.method or "hybrid" in loc.method) and "+track" not in loc.method
        if obs is not None and is_tdoa and fix["lat"] is not None and fix["lon"] is not None:
            fix["hyperbolas"] = tdoa_hyperbolas(obs, lat, lon)
        truth = self._nearest_truth(loc.channel_id, loc.t_ns)
        if truth is not None and fix["lat"] is not None and fix["lon"] is not None:
            self._set_truth(fix, truth)
        self.channels.add(loc.channel_id)
        if math.isfinite(loc.processing_latency_s) and loc.processing_latency_s > 0:
            self.latencies_s.append(loc.processing_latency_s)
        self.fixes.append(fix)
        self._d_fixes.append(fix)

    # -- output ----------------------------------------------------------------------------
    def _pipeline_json(self) -> dict[str, Any]:
        p = self.pipeline
        now = self.clock_ns()
        recent_dead = [d for d in self.dead_letters if now - d["t_ns"] <= 60_000_000_000]
        per_min = (
            round(60.0 * p.dead_letters_per_s, 1)
            if p.dead_letters_per_s is not None
            else len(recent_dead)
        )
        return {
            "rates_per_s": p.rates_per_s,
            "totals": p.totals,
            "lag": p.lag,
            "updated_ns": p.updated_ns,
            "dead_letters_per_min": per_min,
            "last_dead_letters": list(self.dead_letters)[-10:],
            "latency_s": {
                "p50": percentile(self.latencies_s, 50),
                "p99": percentile(self.latencies_s, 99),
                "n": len(self.latencies_s),
            },
            "models": list(self.models.values()),
            "decode_errors": self.decode_errors,
        }

    def snapshot(self, max_fixes: int = 1000) -> dict[str, Any]:
        """Everything the page needs when it connects (``type: "snapshot"``)."""
        with self.lock:
            fixes = list(self.fixes)[-max_fixes:]
            return {
                "type": "snapshot",
                "now_ns": self.clock_ns(),
                "receivers": [dict(r) for r in self.receivers.values()],
                "fixes": fixes,
                "truth": list(self.truth),
                "channels": sorted(self.channels),
                "pipeline": self._pipeline_json(),
            }

    def take_delta(self) -> dict[str, Any] | None:
        """What changed since the last call (``type: "update"``), or None if nothing did.

        Measurement points are not in it: they go to the pages that selected their receiver
        (:meth:`take_points`).
        """
        with self.lock:
            if not (
                self._d_receivers
                or self._d_fixes
                or self._d_truth
                or self._d_dead
                or self._d_pipeline
                or self._d_models
            ):
                return None
            delta: dict[str, Any] = {
                "type": "update",
                "now_ns": self.clock_ns(),
                "receivers": list(self._d_receivers.values()),
                "fixes": list(self._d_fixes),
                "truth": list(self._d_truth),
                "channels": sorted(self.channels),
            }
            if self._d_pipeline or self._d_dead or self._d_models:
                delta["pipeline"] = self._pipeline_json()
            self._d_receivers.clear()
            self._d_fixes.clear()
            self._d_truth.clear()
            self._d_dead.clear()
            self._d_pipeline = self._d_models = False
            return delta

    def take_points(self) -> dict[str, list[list[Any]]]:
        """New measurement points by receiver since the last call: ``[t_ns, channel, dBm, dB]``."""
        with self.lock:
            out = {rid: list(points) for rid, points in self._d_points.items()}
            self._d_points.clear()
            return out

    def take_rows(self) -> dict[str, list[dict[str, Any]]]:
        """New waterfall rows by receiver since the last call (JSON-ready)."""
        with self.lock:
            out = {rid: [_row_json(r) for r in rows] for rid, rows in self._d_rows.items()}
            self._d_rows.clear()
            return out

    def latest_psd(self, receiver_id: str) -> dict[str, Any] | None:
        """A receiver's latest PSD summary: ``{t_ns, channel_id, bin_hz, dbm_hz}``.

        ``dbm_hz`` is the Welch PSD over the chunk's whole band, fftshifted (low to high):
        bin i is at ``(i − L/2) · bin_hz`` from the chunk's centre frequency.
        """
        with self.lock:
            return self.psd.get(receiver_id)

    def receiver_history(self, receiver_id: str) -> dict[str, Any]:
        """A receiver's status, recent measurements and PSD (``type: "measurements"``)."""
        with self.lock:
            r = self.receivers.get(receiver_id)
            return {
                "type": "measurements",
                "receiver_id": receiver_id,
                "receiver": dict(r) if r else None,
                "points": list(self.measurements.get(receiver_id, ())),
                "psd": self.psd.get(receiver_id),
                "waterfall": [_row_json(r) for r in self.waterfall.get(receiver_id, ())],
                "reset": True,
            }

    def history(self, from_ns: int, to_ns: int) -> dict[str, Any]:
        """Fixes and truth with event time in ``[from_ns, to_ns]`` (the replay slider)."""
        with self.lock:
            return {
                "from_ns": from_ns,
                "to_ns": to_ns,
                "fixes": [f for f in self.fixes if from_ns <= f["t_ns"] <= to_ns],
                "truth": [t for t in self.truth if from_ns <= t["t_ns"] <= to_ns],
            }

    def api_state(self) -> dict[str, Any]:
        """``GET /api/state``: what the page shows now, for machines.

        ``receivers``: id, lat, lon, state; ``fixes``: the latest fix per channel and method
        (lat, lon, covariance east/north in m², method, t_ns); ``lag`` per stage; events/s per
        topic; the dead letters, latency percentiles and active models of the panel.
        """
        with self.lock:
            latest: dict[tuple[str, str], dict[str, Any]] = {}
            for f in self.fixes:
                key = (f["channel_id"], f["method"])
                if key not in latest or f["t_ns"] >= latest[key]["t_ns"]:
                    latest[key] = f
            keep = (
                "channel_id",
                "method",
                "t_ns",
                "lat",
                "lon",
                "cov_ee_m2",
                "cov_en_m2",
                "cov_nn_m2",
                "n_receivers",
                "error_m",
            )
            p = self._pipeline_json()
            return {
                "now_ns": self.clock_ns(),
                "receivers": [
                    {k: r[k] for k in ("id", "lat", "lon", "state", "last_seen_ns", "snr_db")}
                    for r in self.receivers.values()
                ],
                "fixes": [{k: f[k] for k in keep} for _, f in sorted(latest.items())],
                "lag": p["lag"],
                "events_per_s": p["rates_per_s"],
                "events": p["totals"],
                "dead_letters_per_min": p["dead_letters_per_min"],
                "last_dead_letters": p["last_dead_letters"],
                "latency_s": p["latency_s"],
                "models": p["models"],
            }


def _row_json(row: dict[str, Any]) -> dict[str, Any]:
    """A waterfall row for the page: values in dB to 0.1 (the server's unit, not dBm)."""
    return {
        "t_ns": row["t_ns"],
        "center_freq_hz": row["center_freq_hz"],
        "span_hz": row["span_hz"],
        "values": [round(float(v), 1) if math.isfinite(v) else None for v in row["values"]],
    }


def _r(v: float, nd: int) -> float | None:
    return round(v, nd) if math.isfinite(v) else None


def _f(v: float) -> float | None:
    """A float the page can read: JSON has no NaN or infinity (they become null)."""
    return v if math.isfinite(v) else None
