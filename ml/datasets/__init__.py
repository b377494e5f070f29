"""Training data sources of the set models, each a :class:`~heimdall.ml.training.SetDataset`.

* :func:`~.sim.labelled_dataset` — simulated labelled samples (the caller draws them with
  the simulator; ``ml`` does not import ``producers``).
* :func:`~.history.load_history` — the ClickHouse history: observations labelled by the
  truth of their channel nearest in time.
* :func:`~.events.label_events` — decoded ``Observation`` / ``Truth`` events (e.g. from
  the archive), labelled the same way.
* :func:`~.frames.combine_datasets` — several sources in one frame with one identity per
  receiver.
"""

from heimdall.ml.datasets.events import label_events
from heimdall.ml.datasets.frames import (
    centroid_frame,
    combine_datasets,
    frame_dict,
    latlon_of_enu,
    receiver_positions,
    reproject,
    suggest_pos_scale,
)
from heimdall.ml.datasets.history import HistoryData, label_rows, load_history
from heimdall.ml.datasets.sim import LabelledArrays, labelled_dataset

__all__ = [
    "HistoryData",
    "LabelledArrays",
    "centroid_frame",
    "combine_datasets",
    "frame_dict",
    "label_events",
    "label_rows",
    "labelled_dataset",
    "latlon_of_enu",
    "load_history",
    "receiver_positions",
    "reproject",
    "suggest_pos_scale",
]
