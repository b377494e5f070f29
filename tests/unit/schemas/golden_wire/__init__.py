"""Golden wire bytes of every event model, recorded before the models were generated.

``events()`` is :func:`tests.unit.schemas.examples.examples` with fixed event ids (the
examples draw a fresh UUIDv7 each run); ``<n>-<Record>.bin`` is the single-object encoding
``Serde().encode(event)`` of the n-th one, as the hand-written models of commit ``80f9922``
(wip-events before issue 16, item 1) wrote it. ``python -m tests.unit.schemas.golden_wire``
rewrites the files: only do that for a deliberate change of the wire format.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from tests.unit.schemas.examples import examples

HERE = Path(__file__).resolve().parent


def minimal() -> list[Any]:
    """Events with every defaulted field left at its default (nulls, empty arrays and maps)."""
    from heimdall.schemas.models import (
        Localization,
        Observation,
        ReceiverState,
        ReceiverStatus,
        Truth,
    )
    from tests.unit.schemas.examples import POS, T0, member

    return [
        Truth(source_id="tx", t_ns=T0, position=POS, freq_hz=1e6),
        Localization(
            observation_id="0190c5b8-0000-7000-8000-0000000000ff", channel_id="c", t_ns=T0,
            position=POS, cov_ee_m2=1.0, cov_en_m2=0.0, cov_nn_m2=1.0, method="m",
            n_receivers=3,
        ),
        ReceiverStatus(
            receiver_id="rx", kind="sim", position=POS, state=ReceiverState.ONLINE, updated_ns=T0
        ),
        Observation(
            channel_id="c", channel_freq_hz=1e6, window_start_ns=T0, window_end_ns=T0,
            members=(member(0),),
        ),
    ]  # fmt: skip


def events() -> list[Any]:
    """The examples and :func:`minimal`, each with the event id
    ``0190c5b8-0000-7000-8000-<n as 12 digits>``."""
    return [
        dataclasses.replace(e, event_id=f"0190c5b8-0000-7000-8000-{i:012d}")
        for i, e in enumerate([*examples(), *minimal()])
    ]


def path_of(i: int, event: Any) -> Path:
    return HERE / f"{i:02d}-{event.SCHEMA.rsplit('.', 1)[-1]}.bin"


def record() -> None:
    from heimdall.schemas.serde import Serde

    serde = Serde()
    for i, e in enumerate(events()):
        path_of(i, e).write_bytes(serde.encode(e))
