"""POWDER loading: -101 = no reading, tuple-syntax coordinates, shuttle positions, splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from heimdall.ml.powder.data import (
    MISSING_RSS_DBM,
    load_location_coordinates,
    load_powder_csv,
    load_splits,
    train_test_for_split,
)

from ._tiny import FIXED, FIXED_ENU, write_tiny


def test_coordinates_python_literal(tmp_path: Path) -> None:
    p = tmp_path / "c.json"
    p.write_text('{\n "a": (40.5, -111.5),\n "bus-9": None,\n}')
    assert load_location_coordinates(p) == {"a": (40.5, -111.5), "bus-9": None}


def test_missing_is_masked_not_a_value(tmp_path: Path) -> None:
    s = load_powder_csv(write_tiny(tmp_path))
    j = s.rx_names.index("rx-b")
    assert not s.mask[3, j] and np.isnan(s.rss_dbm[3, j])  # the -101 cell
    assert s.mask[0, j] and s.rss_dbm[0, j] > MISSING_RSS_DBM
    assert not np.any(s.rss_dbm[s.mask] == MISSING_RSS_DBM)
    # the k-NN fingerprint writes -101 back for absent readings
    fp = s.fixed_rss_matrix(FIXED)
    assert fp[3, 1] == MISSING_RSS_DBM and fp[0, 1] == pytest.approx(s.rss_dbm[0, j])


def test_positions_and_bus(tmp_path: Path) -> None:
    s = load_powder_csv(write_tiny(tmp_path))
    assert s.rx_names == (*FIXED, "bus-1")
    assert s.is_mobile.tolist() == [False] * 5 + [True]
    np.testing.assert_allclose(s.rx_enu[0, :5], FIXED_ENU, atol=1e-3)
    b = s.rx_names.index("bus-1")
    assert not s.mask[0, b]  # -1, -1: no position (and -101)
    assert s.mask[1, b]
    assert np.all(np.abs(s.rx_enu[1, b]) <= 200.0 + 1e-3)
    assert s.rx_index[0].tolist() == [0, 1, 2, 3, 4, 5]
    assert s.tx_enu is not None and np.all(np.abs(s.tx_enu) <= 250.0 + 1e-3)
    latlon = s.tx_latlon()
    assert latlon is not None and latlon.shape == (len(s), 2)


def test_bus_zero_position_and_unknown_receiver(tmp_path: Path) -> None:
    csv = tmp_path / "t.csv"
    (tmp_path / "location_coordinates.json").write_text('{"rx-a": (40.766, -111.842)}')
    (tmp_path / "location_indexes.json").write_text('{"rx-a": 0}')
    csv.write_text(
        "timestamp,rx-a,mystery,bus-2_rss,bus-2_x,bus-2_y\n"
        "t0,-70,-60,-80,0.0,0.0\n"
        "t1,-101,-60,-80,40.767,-111.841\n"
    )
    s = load_powder_csv(csv)
    assert s.rx_names == ("rx-a", "bus-2")  # "mystery" has no position: ignored
    assert s.mask.tolist() == [[True, False], [False, True]]
    assert s.rx_index[0].tolist() == [0, -1]  # bus-2 is not in the index: unknown
    assert s.tx_enu is None and not s.has_truth


def test_split_protocol(tmp_path: Path) -> None:
    s = load_powder_csv(write_tiny(tmp_path))
    sp = load_splits(tmp_path / "splits.json")
    tr, te = train_test_for_split(s, sp, "random_test")
    assert len(te) == len(sp["random_test"])
    assert set(s.timestamps[tr]).isdisjoint(sp["random_test"])
    assert sp["indoor"][0] not in set(s.timestamps[tr])  # special cases are not training data
    assert len(tr) + len(te) == len(s) - 1
    with pytest.raises(KeyError):
        train_test_for_split(s, sp, "nope")
