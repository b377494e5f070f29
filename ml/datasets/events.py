"""Training data from decoded events: ``Observation`` and ``Truth`` as the stream carries them.

The same labelling as the history (:func:`heimdall.ml.datasets.history.label_rows`): each
observation whose window starts in ``[since_ns, until_ns)`` is labelled with the truth of its
``channel_id`` nearest in time to the middle of its window, within the tolerance. Truths
come from the one truth topic (``rf.truth.v1``) whoever wrote them: the simulator or the
known sources of a network file (:mod:`heimdall.producers.known_sources`). An event seen
twice (same ``event_id``, e.g. archived once live and once from a replay) counts once, as
``FINAL`` does in the history. Truths with ``transmitting=False`` or without a channel are
not labels.

``ml`` reads no archive itself: the caller (``heimdall train --source archive``) decodes the
archived events (:func:`heimdall.consumers.archive_store.decoded_events`) and passes them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from heimdall.core.geodesy import LocalFrame
from heimdall.ml.datasets.history import HistoryData, label_rows
from heimdall.schemas.models import Observation, Truth

__all__ = ["label_events"]


def label_events(
    observations: Iterable[Observation],
    truths: Iterable[Truth],
    *,
    since_ns: int | None = None,
    until_ns: int | None = None,
    tolerance_s: float | None = None,
    min_receivers: int = 4,
    frame: LocalFrame | None = None,
    rx_names: Mapping[str, int] | None = None,
) -> HistoryData:
    """Observations labelled by their channel's truth (module notes).

    Parameters
    ----------
    observations, truths : iterable
        Decoded events, any order.
    since_ns, until_ns : int, optional
        Only observations whose window starts in ``[since_ns, until_ns)``.
    tolerance_s, min_receivers, frame, rx_names
        As :func:`heimdall.ml.datasets.history.load_history`.

    Returns
    -------
    HistoryData
    """
    obs_by_id: dict[str, Observation] = {}
    for o in observations:
        if since_ns is not None and o.window_start_ns < since_ns:
            continue
        if until_ns is not None and o.window_start_ns >= until_ns:
            continue
        obs_by_id[o.event_id] = o
    ordered = sorted(
        obs_by_id.values(), key=lambda o: (o.channel_id, o.window_start_ns, o.event_id)
    )
    rows: list[tuple[Any, ...]] = [
        (
            o.channel_id,
            o.window_start_ns,
            o.window_end_ns,
            [m.receiver_id for m in o.members],
            [m.position.lat_deg for m in o.members],
            [m.position.lon_deg for m in o.members],
            [m.power_dbm for m in o.members],
            [m.snr_db for m in o.members],
        )
        for o in ordered
    ]
    truth_by_id: dict[str, tuple[Any, ...]] = {}
    for t in truths:
        if t.channel_id is None or not t.transmitting:
            continue
        truth_by_id[t.event_id] = (
            t.channel_id, t.t_ns, t.position.lat_deg, t.position.lon_deg, t.source_id
        )  # fmt: skip
    return label_rows(
        rows,
        truth_by_id.values(),
        tolerance_s=tolerance_s,
        min_receivers=min_receivers,
        frame=frame,
        rx_names=rx_names,
        source="events",
    )
