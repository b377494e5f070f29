"""Training data sources of the set models, each a :class:`~heimdall.ml.training.SetDataset`.

* :func:`~.sim.labelled_dataset` — simulated labelled samples (the caller draws them with
  the simulator; ``ml`` does not import ``producers``).
* :func:`~.history.load_history` — the ClickHouse history: observations labelled by the
  truth of their channel nearest in time.
* :func:`~.frames.combine_datasets` — several sources in one frame with one identity per
  receiver.
"""

from heimdall.ml.datasets.frames import (
    centroid_frame,
    combine_datasets,
    frame_dict,
    latlon_of_enu,
    receiver_positions,
    reproject,
    suggest_pos_scale,
)
from heimdall.ml.datasets.history import HistoryData, load_history
from heimdall.ml.datasets.sim import LabelledArrays, labelled_dataset

__all__ = [
    "HistoryData",
    "LabelledArrays",
    "centroid_frame",
    "combine_datasets",
    "frame_dict",
    "labelled_dataset",
    "latlon_of_enu",
    "load_history",
    "receiver_positions",
    "reproject",
    "suggest_pos_scale",
]
