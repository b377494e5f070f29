"""The time and churn protocols withhold and remove exactly what they say, reproducibly."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from heimdall.ml.powder.protocols import (
    apply_churn,
    draw_churn,
    protocol_cases,
    reading_fixed_names,
    sample_days,
    time_split,
)

from ._days import synthetic

NAMES = [f"rx{j}" for j in range(10)] + ["bus-1"]


def _data() -> object:
    days = ["2022-04-25"] * 6 + ["2022-07-05"] * 6 + ["2022-07-11"] * 8
    reads = np.ones((20, len(NAMES)), dtype=bool)
    reads[12:, 0] = False  # rx0 gone on the test day
    reads[:12, 9] = False  # rx9 new on the test day
    return synthetic(days, NAMES, reads, mobile=[False] * 10 + [True])


def test_time_split_trains_on_earlier_days_and_leaves_special_cases_out() -> None:
    s = _data()
    special = str(s.timestamps[13])  # a test-day row named by a special split
    split = time_split(s, {"indoor": [special], "random_test": [str(s.timestamps[0])]})
    assert split.train_days == ("2022-04-25", "2022-07-05") and split.test_day == "2022-07-11"
    days = sample_days(s)
    assert set(days[split.train_index]) == {"2022-04-25", "2022-07-05"}
    assert set(days[split.test_index]) == {"2022-07-11"}
    assert 13 not in split.test_index and 13 not in split.train_index
    assert split.train_index.size == 12 and split.test_index.size == 7  # random_test is no special


def test_time_split_needs_two_days() -> None:
    s = _data()
    with pytest.raises(ValueError, match="two days"):
        time_split(s.subset(np.arange(12, 20)))


def test_churn_withholds_from_training_and_removes_at_test() -> None:
    s = _data()
    split, cases = protocol_cases(s, {}, "churn", draws=4, seed=7, n_withheld=3, n_removed=2)
    train, test = s.subset(split.train_index), s.subset(split.test_index)
    # candidates: fixed receivers reading on both sides (not rx0: gone, not rx9: new, no bus)
    candidates = set(reading_fixed_names(train)) & set(reading_fixed_names(test))
    assert candidates == {f"rx{j}" for j in range(1, 9)}
    for case in cases:
        d = case.draw
        assert d is not None and len(d.withheld) == 3 and len(d.removed) == 2
        assert set(d.withheld) <= candidates and set(d.removed) <= candidates
        assert not set(d.withheld) & set(d.removed)
        # training rows: the withheld receivers are gone entirely, everything else is kept
        assert set(case.train.rx_names) == set(NAMES) - set(d.withheld)
        assert len(case.train) == len(train)
        # test rows: removed receivers gone; withheld ones present, read, with no identity
        assert set(case.test.rx_names) == set(NAMES) - set(d.removed)
        for name in d.withheld:
            j = case.test.rx_names.index(name)
            assert case.test.mask[:, j].all() and (case.test.rx_index[:, j] == -1).all()
        # rx9 never reads in training: anonymised too; a receiver seen in training keeps its id
        j9 = case.test.rx_names.index("rx9")
        assert (case.test.rx_index[:, j9] == -1).all()
        kept = next(n for n in sorted(candidates - set(d.withheld) - set(d.removed)))
        jk = case.test.rx_names.index(kept)
        assert (case.test.rx_index[:, jk] == NAMES.index(kept)).all()


def test_churn_draws_are_seeded_and_reproducible() -> None:
    s = _data()
    split = time_split(s)
    train, test = s.subset(split.train_index), s.subset(split.test_index)
    a = [draw_churn(train, test, k, n_withheld=3, n_removed=2) for k in range(6)]
    b = [draw_churn(train, test, k, n_withheld=3, n_removed=2) for k in range(6)]
    assert a == b
    assert len({(d.withheld, d.removed) for d in a}) > 1  # different seeds, different draws
    # the draw does not depend on the column order
    rev = np.arange(len(train.rx_names))[::-1]
    flipped = replace(
        train,
        rx_names=tuple(train.rx_names[j] for j in rev),
        is_mobile=train.is_mobile[rev],
        rx_enu=train.rx_enu[:, rev],
        rss_dbm=train.rss_dbm[:, rev],
        rx_index=train.rx_index[:, rev],
        mask=train.mask[:, rev],
    )
    assert draw_churn(flipped, test, 3, n_withheld=3, n_removed=2) == a[3]


def test_churn_refuses_more_receivers_than_candidates() -> None:
    s = _data()
    split = time_split(s)
    train, test = s.subset(split.train_index), s.subset(split.test_index)
    with pytest.raises(ValueError, match="needs 9 fixed receivers"):
        draw_churn(train, test, 0, n_withheld=5, n_removed=4)


def test_apply_churn_keeps_positions_and_readings_of_the_rest() -> None:
    s = _data()
    split = time_split(s)
    train, test = s.subset(split.train_index), s.subset(split.test_index)
    d = draw_churn(train, test, 0, n_withheld=2, n_removed=2)
    tr, te = apply_churn(train, test, d)
    for name in tr.rx_names:
        j, k = train.rx_names.index(name), tr.rx_names.index(name)
        np.testing.assert_array_equal(tr.rss_dbm[:, k], train.rss_dbm[:, j])
        np.testing.assert_array_equal(tr.rx_enu[:, k], train.rx_enu[:, j])
    for name in te.rx_names:
        j, k = test.rx_names.index(name), te.rx_names.index(name)
        np.testing.assert_array_equal(te.rss_dbm[:, k], test.rss_dbm[:, j])


def test_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown protocol 'space'"):
        protocol_cases(_data(), {}, "space")
