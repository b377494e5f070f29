r"""Evaluation protocols that imitate a receiver network changing in time (issue 14).

The shared splits (``random_test``, ``grid_test``) test new *places* with the receivers of
training. A deployed network also changes: days pass, receivers are added (their position
is known, their name is not in any model), others go away. Two protocols on the POWDER rows:

``time``
    Train on every day but the last of the data, test on the last day (:func:`time_split`).
    In ``single_tx.csv`` the days are 2022-04-25, 07-05 and 07-06 (training) and 07-11
    (test: 1,701 rows). The special cases (``off_campus``, ``indoor``, ``stationary*``) are
    neither training nor test rows, as in the data set authors' protocol. The network
    already changes here: ``cbrssdr1-smt-comp`` reads only on 07-11, and the April
    receivers ``madsen-nuc1-b210`` etc. are gone by July.
``churn``
    The time split, and per seeded draw (:func:`draw_churn`): ``n_withheld`` fixed receivers
    that read on both sides are removed from the training rows entirely (their columns
    dropped: no model, fingerprint or offset fit ever sees them) and revealed at test with
    their position but without their identity (``rx_index`` −1, as a receiver whose name
    is not in ``location_indexes.json``); ``n_removed`` other fixed receivers are removed
    from the test rows (columns dropped). Defaults 4 and 3: the numbers of the later POWDER
    campaign issue 14 describes (4 receivers never seen in training, 3 training receivers
    absent).

In both protocols a test receiver that never reads in the training rows is anonymised
(:func:`anonymise_unseen`): a model cannot know a name it was never trained with.

Removing a receiver means dropping its column (:func:`drop_receivers`), what a test file of
a network without it looks like; the k-NN fingerprint then reads it as "no reading".

References
----------
- F. Mitchell, N. Patwari, A. Bhaskara, S. K. Kasera, "Learning-based Techniques for
  Transmitter Localization: A Case Study on Model Robustness", IEEE SECON 2023 (the data
  set and its robustness to changes of the network and of time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from heimdall.ml.powder.data import SPECIAL_SPLITS, PowderSamples

__all__ = [
    "DEFAULT_REMOVED",
    "DEFAULT_WITHHELD",
    "PROTOCOLS",
    "ChurnDraw",
    "ProtocolCase",
    "TimeSplit",
    "anonymise_unseen",
    "apply_churn",
    "draw_churn",
    "drop_receivers",
    "forget_identities",
    "protocol_cases",
    "reading_fixed_names",
    "sample_days",
    "time_split",
]

IntArray = npt.NDArray[np.int64]

#: Protocol names of ``heimdall eval powder --protocol``.
PROTOCOLS = ("time", "churn")
#: Fixed receivers withheld from training per churn draw (revealed at test).
DEFAULT_WITHHELD = 4
#: Fixed receivers removed from the test rows per churn draw.
DEFAULT_REMOVED = 3


def sample_days(samples: PowderSamples) -> npt.NDArray[np.str_]:
    """The calendar day ``YYYY-MM-DD`` of each sample (the timestamp's first 10 characters).

    Raises
    ------
    ValueError
        When a timestamp does not start with an ISO-8601 date.
    """
    days = np.array([str(t)[:10] for t in samples.timestamps], dtype=str)
    try:
        days.astype("datetime64[D]")
    except ValueError as exc:
        raise ValueError(f"a day split needs ISO-8601 timestamps: {exc}") from None
    return days


@dataclass(frozen=True)
class TimeSplit:
    """Rows of a split by day: training days before the test day."""

    train_index: IntArray
    test_index: IntArray
    train_days: tuple[str, ...]
    test_day: str


def time_split(
    samples: PowderSamples,
    splits: Mapping[str, Sequence[str]] | None = None,
    *,
    exclude: Sequence[str] = SPECIAL_SPLITS,
) -> TimeSplit:
    """Train on every day but the last, test on the last day (special cases in neither).

    Parameters
    ----------
    samples : PowderSamples
        All rows.
    splits : mapping, optional
        Named splits (``splits.json``); the rows of the ``exclude`` splits are left out.
    exclude : sequence of str
        Split names whose rows are neither training nor test rows.

    Raises
    ------
    ValueError
        When the rows span fewer than two days.
    """
    days = sample_days(samples)
    banned: set[str] = set()
    for name in exclude:
        banned.update((splits or {}).get(name, ()))
    usable = np.array([t not in banned for t in samples.timestamps], dtype=bool)
    order = sorted(set(days[usable].tolist()))
    if len(order) < 2:
        raise ValueError(f"a time split needs at least two days, the data has {order}")
    test_day = order[-1]
    train = np.flatnonzero(usable & (days != test_day)).astype(np.int64)
    test = np.flatnonzero(usable & (days == test_day)).astype(np.int64)
    return TimeSplit(train, test, tuple(order[:-1]), test_day)


def reading_fixed_names(samples: PowderSamples) -> tuple[str, ...]:
    """Fixed receivers with at least one reading in ``samples`` (column order)."""
    seen = samples.mask.any(axis=0) & ~samples.is_mobile
    return tuple(n for n, s in zip(samples.rx_names, seen, strict=True) if s)


def drop_receivers(samples: PowderSamples, names: Iterable[str]) -> PowderSamples:
    """The samples without the named receivers' columns (unknown names are ignored)."""
    gone = set(names)
    keep = np.array([n not in gone for n in samples.rx_names], dtype=bool)
    return replace(
        samples,
        rx_names=tuple(n for n, k in zip(samples.rx_names, keep, strict=True) if k),
        is_mobile=samples.is_mobile[keep],
        rx_enu=samples.rx_enu[:, keep],
        rss_dbm=samples.rss_dbm[:, keep],
        rx_index=samples.rx_index[:, keep],
        mask=samples.mask[:, keep],
    )


def forget_identities(samples: PowderSamples, names: Iterable[str]) -> PowderSamples:
    """The samples with the named receivers' identity index set to −1 (name unknown)."""
    forget = np.array([n in set(names) for n in samples.rx_names], dtype=bool)
    return replace(samples, rx_index=np.where(forget[None, :], -1, samples.rx_index))


@dataclass(frozen=True)
class ChurnDraw:
    """One draw of the churn protocol: receivers withheld from training, removed at test."""

    seed: int
    withheld: tuple[str, ...]
    removed: tuple[str, ...]


def draw_churn(
    train: PowderSamples,
    test: PowderSamples,
    seed: int,
    *,
    n_withheld: int = DEFAULT_WITHHELD,
    n_removed: int = DEFAULT_REMOVED,
) -> ChurnDraw:
    """Draw disjoint withheld and removed sets among fixed receivers reading on both sides.

    A receiver that reads in the training rows and in the test rows is a candidate; the
    draw is ``numpy.random.default_rng(seed).choice`` without replacement of
    ``n_withheld + n_removed`` candidates (sorted by name first, so the draw does not depend
    on column order), the first ``n_withheld`` withheld, the rest removed.

    Raises
    ------
    ValueError
        When there are fewer candidates than receivers to draw.
    """
    if n_withheld < 0 or n_removed < 0:
        raise ValueError(f"n_withheld={n_withheld} and n_removed={n_removed} must be ≥ 0")
    both = sorted(set(reading_fixed_names(train)) & set(reading_fixed_names(test)))
    want = n_withheld + n_removed
    if want > len(both):
        raise ValueError(
            f"churn draw needs {want} fixed receivers reading in training and test, "
            f"there are {len(both)}"
        )
    pick = np.random.default_rng(seed).choice(len(both), size=want, replace=False)
    names = [both[int(i)] for i in pick]
    return ChurnDraw(seed, tuple(names[:n_withheld]), tuple(names[n_withheld:]))


def apply_churn(
    train: PowderSamples, test: PowderSamples, draw: ChurnDraw
) -> tuple[PowderSamples, PowderSamples]:
    """(training rows without the withheld receivers, test rows without the removed ones and
    with the withheld ones anonymised)."""
    return (
        drop_receivers(train, draw.withheld),
        forget_identities(drop_receivers(test, draw.removed), draw.withheld),
    )


def anonymise_unseen(train: PowderSamples, test: PowderSamples) -> PowderSamples:
    """``test`` with the identity of every receiver that never reads in ``train`` forgotten."""
    reads = np.asarray(train.mask.any(axis=0), dtype=bool)
    seen = {n for j, n in enumerate(train.rx_names) if reads[j]}
    return forget_identities(test, [n for n in test.rx_names if n not in seen])


@dataclass(frozen=True)
class ProtocolCase:
    """One train/test pair of a protocol (``draw`` None for the plain time split)."""

    train: PowderSamples
    test: PowderSamples
    draw: ChurnDraw | None


def protocol_cases(
    samples: PowderSamples,
    splits: Mapping[str, Sequence[str]] | None,
    protocol: str,
    *,
    draws: int = 3,
    seed: int = 0,
    n_withheld: int = DEFAULT_WITHHELD,
    n_removed: int = DEFAULT_REMOVED,
) -> tuple[TimeSplit, list[ProtocolCase]]:
    """The time split and the protocol's train/test pairs (module notes).

    ``churn`` draws use the seeds ``seed, seed + 1, …, seed + draws − 1``.

    Raises
    ------
    ValueError
        For an unknown protocol or fewer than one draw.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    split = time_split(samples, splits)
    train, test = samples.subset(split.train_index), samples.subset(split.test_index)
    if protocol == "time":
        return split, [ProtocolCase(train, anonymise_unseen(train, test), None)]
    if draws < 1:
        raise ValueError(f"--draws must be at least 1, got {draws}")
    cases = []
    for k in range(draws):
        d = draw_churn(train, test, seed + k, n_withheld=n_withheld, n_removed=n_removed)
        tr, te = apply_churn(train, test, d)
        cases.append(ProtocolCase(tr, anonymise_unseen(tr, te), d))
    return split, cases
