"""Training data from the ClickHouse history: observations labelled by the truth.

Each observation (``observations`` table, read with ``FINAL`` so a replayed event counts
once) is labelled with the truth of the same ``channel_id`` nearest in time to the middle of
its window (the time its localization carries), if that truth is within ``tolerance_s``
(default: half the observation's window) — the pairing ``consumers.queries`` uses to score
localizations. Only truths with ``transmitting`` are used (a keyed-off source is not what
was heard). An observation with truths of two or more sources of its channel within the
tolerance is ambiguous and dropped, and so is one with fewer than ``min_receivers``
members. The members give the set: position (on the frame's tangent plane at zero height,
as the stream computes it), ``power_dbm`` (the window's mean) and ``snr_db``.

The two tables are read with plain queries (time and channel filters pushed down) and
paired here with a sorted search per channel; ``client`` is a ``clickhouse_connect`` client
whose current database holds the history tables (``heimdall.core.store.open_clickhouse``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from heimdall.core.geodesy import LocalFrame
from heimdall.ml.datasets.frames import centroid_frame, frame_dict
from heimdall.ml.training import SetDataset

__all__ = ["HistoryData", "label_rows", "load_history"]

log = logging.getLogger(__name__)

_OBS_SQL = """
SELECT channel_id, window_start_ns, window_end_ns,
       members.receiver_id, members.lat_deg, members.lon_deg, members.power_dbm, members.snr_db
FROM observations FINAL
{where}
ORDER BY channel_id, window_start_ns, event_id
"""

_TRUTH_SQL = """
SELECT assumeNotNull(channel_id) AS channel, t_ns, lat_deg, lon_deg, toString(source_id)
FROM truth FINAL
WHERE channel_id IS NOT NULL AND transmitting {extra}
ORDER BY channel, t_ns, event_id
"""


@dataclass(frozen=True)
class HistoryData:
    """A labelled data set read from the history, and what was left out.

    Attributes
    ----------
    dataset : SetDataset
        The matched observations.
    n_observations : int
        Observations read.
    n_unmatched : int
        Without a truth of their channel within the tolerance.
    n_ambiguous : int
        With truths of several sources of their channel within the tolerance.
    n_too_few : int
        With fewer than ``min_receivers`` members.
    """

    dataset: SetDataset
    n_observations: int
    n_unmatched: int
    n_ambiguous: int
    n_too_few: int


def _nearest(times: npt.NDArray[np.int64], t: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Index into sorted ``times`` of the element nearest each ``t`` (ties: the earlier)."""
    j = np.searchsorted(times, t)
    lo = np.clip(j - 1, 0, times.size - 1)
    hi = np.clip(j, 0, times.size - 1)
    take_hi = np.abs(times[hi] - t) < np.abs(t - times[lo])
    return np.where(take_hi, hi, lo).astype(np.int64)


def load_history(
    client: Any,
    *,
    channel_id: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
    tolerance_s: float | None = None,
    min_receivers: int = 4,
    frame: LocalFrame | None = None,
    rx_names: Mapping[str, int] | None = None,
) -> HistoryData:
    """Observations of the history labelled by their channel's truth (module notes).

    Parameters
    ----------
    client
        ``clickhouse_connect`` client on the history database.
    channel_id : str, optional
        Only this channel.
    since_ns, until_ns : int, optional
        Only observations whose window starts in ``[since_ns, until_ns)``.
    tolerance_s : float, optional
        Largest gap between the window's middle and the truth; default half the window.
    min_receivers : int
        Observations with fewer members are dropped.
    frame : LocalFrame, optional
        Default: the centroid of the receivers heard (their mean position).
    rx_names : mapping, optional
        Receiver name → identity (e.g. an existing model's); other receivers get −1.
        Default: the receivers heard, sorted by name, ``0..K-1``.

    Returns
    -------
    HistoryData
    """
    conds: list[str] = []
    params: dict[str, Any] = {}
    if channel_id is not None:
        conds.append("channel_id = {channel_id:String}")
        params["channel_id"] = channel_id
    if since_ns is not None:
        conds.append("window_start_ns >= {since_ns:Int64}")
        params["since_ns"] = int(since_ns)
    if until_ns is not None:
        conds.append("window_start_ns < {until_ns:Int64}")
        params["until_ns"] = int(until_ns)
    where = ("WHERE " + " AND ".join(conds)) if conds else ""
    obs = client.query(_OBS_SQL.format(where=where), parameters=params).result_rows
    truth: list[tuple[Any, ...]] = []
    if obs:
        starts = np.array([int(o[1]) for o in obs], dtype=np.int64)
        ends = np.array([int(o[2]) for o in obs], dtype=np.int64)
        widest = float(np.max(ends - starts)) / 2e9 if tolerance_s is None else tolerance_s
        pad = int(np.ceil(widest * 1e9))
        tparams: dict[str, Any] = {"t_lo": int(starts.min()) - pad, "t_hi": int(ends.max()) + pad}
        extra = "AND t_ns >= {t_lo:Int64} AND t_ns <= {t_hi:Int64}"
        if channel_id is not None:
            extra += " AND channel_id = {channel_id:String}"
            tparams["channel_id"] = channel_id
        truth = list(client.query(_TRUTH_SQL.format(extra=extra), parameters=tparams).result_rows)
    return label_rows(
        obs,
        truth,
        tolerance_s=tolerance_s,
        min_receivers=min_receivers,
        frame=frame,
        rx_names=rx_names,
        source="history",
    )


def label_rows(
    obs: Sequence[Sequence[Any]],
    truth: Iterable[Sequence[Any]],
    *,
    tolerance_s: float | None = None,
    min_receivers: int = 4,
    frame: LocalFrame | None = None,
    rx_names: Mapping[str, int] | None = None,
    source: str = "rows",
) -> HistoryData:
    """Pair observation rows with truth rows (module notes): the labelling of every source.

    Parameters
    ----------
    obs : sequence of rows
        ``(channel_id, window_start_ns, window_end_ns, receiver_ids, lat_deg, lon_deg,
        power_dbm, snr_db)`` — the last five sequences over the members.
    truth : iterable of rows
        ``(channel_id, t_ns, lat_deg, lon_deg, source_id)`` of transmitting sources, any order.
    tolerance_s, min_receivers, frame, rx_names
        As :func:`load_history`.
    source : str
        Named in the log line.

    Returns
    -------
    HistoryData
    """
    n_obs = len(obs)
    grouped: dict[str, list[tuple[int, float, float, str]]] = {}
    for ch, t, lat, lon, src in truth:
        grouped.setdefault(str(ch), []).append((int(t), float(lat), float(lon), str(src)))
    truth_by_channel: dict[str, tuple[npt.NDArray[np.int64], list[tuple[float, float, str]]]] = {}
    for ch, items in grouped.items():
        items.sort(key=lambda i: i[0])
        times = np.array([i[0] for i in items], dtype=np.int64)
        truth_by_channel[ch] = (times, [(i[1], i[2], i[3]) for i in items])

    kept: list[tuple[Sequence[Any], float, float]] = []
    n_unmatched = n_ambiguous = n_too_few = 0
    for o in obs:
        ch, start, end = str(o[0]), int(o[1]), int(o[2])
        if len(o[3]) < min_receivers:
            n_too_few += 1
            continue
        tol_ns = (end - start) / 2.0 if tolerance_s is None else tolerance_s * 1e9
        mid = (start + end) // 2
        entry = truth_by_channel.get(ch)
        if entry is None:
            n_unmatched += 1
            continue
        times, info = entry
        k = int(_nearest(times, np.array([mid], dtype=np.int64))[0])
        if abs(int(times[k]) - mid) > tol_ns:
            n_unmatched += 1
            continue
        lo = int(np.searchsorted(times, mid - tol_ns, side="left"))
        hi = int(np.searchsorted(times, mid + tol_ns, side="right"))
        if len({info[i][2] for i in range(lo, hi)}) > 1:
            n_ambiguous += 1
            continue
        kept.append((o, info[k][0], info[k][1]))

    heard: dict[str, tuple[list[float], list[float]]] = {}
    for o, _, _ in kept:
        for rid, lat, lon in zip(o[3], o[4], o[5], strict=True):
            la, lo_ = heard.setdefault(str(rid), ([], []))
            la.append(float(lat))
            lo_.append(float(lon))
    names = dict(rx_names) if rx_names is not None else {n: i for i, n in enumerate(sorted(heard))}
    if frame is None:
        if not heard:
            frame = LocalFrame(0.0, 0.0, 0.0)
        else:
            means = [(float(np.mean(a)), float(np.mean(b))) for a, b in heard.values()]
            frame = centroid_frame([m[0] for m in means], [m[1] for m in means])

    n, r = len(kept), max((len(o[3]) for o, _, _ in kept), default=0)
    lat = np.zeros((n, r))
    lon = np.zeros((n, r))
    rss = np.full((n, r), np.nan)
    snr = np.full((n, r), np.nan)
    ids = np.full((n, r), -1, dtype=np.int64)
    mask = np.zeros((n, r), dtype=bool)
    y_lat = np.zeros(n)
    y_lon = np.zeros(n)
    for i, (o, tlat, tlon) in enumerate(kept):
        m = len(o[3])
        lat[i, :m], lon[i, :m] = o[4], o[5]
        rss[i, :m], snr[i, :m] = o[6], o[7]
        ids[i, :m] = [names.get(str(rid), -1) for rid in o[3]]
        mask[i, :m] = True
        y_lat[i], y_lon[i] = tlat, tlon
    e, nn, _ = frame.to_enu(lat, lon, np.zeros_like(lat))
    ye, yn, _ = frame.to_enu(y_lat, y_lon, np.zeros_like(y_lat))
    enu = np.stack([np.asarray(e, dtype=np.float64), np.asarray(nn, dtype=np.float64)], axis=-1)
    ds = SetDataset(
        enu_m=np.where(mask[..., None], enu.reshape(n, r, 2), 0.0),
        rss_dbm=rss,
        snr_db=snr,
        rx_id=ids,
        mask=mask,
        y_enu_m=np.column_stack([np.atleast_1d(ye), np.atleast_1d(yn)]).reshape(n, 2),
        frame=frame_dict(frame),
        rx_names=names,
    )
    log.info(
        "%s: %d observations, %d labelled, %d without truth, %d ambiguous, %d too small",
        source, n_obs, n, n_unmatched, n_ambiguous, n_too_few,
    )  # fmt: skip
    return HistoryData(ds, n_obs, n_unmatched, n_ambiguous, n_too_few)
