"""The models write the very bytes the hand-written models of commit 80f9922 wrote, and read
them back into equal events (``golden_wire/``)."""

from __future__ import annotations

from typing import Any

import pytest

from heimdall.schemas.serde import Serde
from tests.unit.schemas.golden_wire import events, path_of

EVENTS = events()


@pytest.mark.parametrize(
    ("i", "event"), list(enumerate(EVENTS)), ids=[path_of(i, e).stem for i, e in enumerate(EVENTS)]
)
def test_wire_bytes_are_the_golden_ones_and_read_back(i: int, event: Any) -> None:
    serde = Serde()
    golden = path_of(i, event).read_bytes()
    assert serde.encode(event) == golden
    back = serde.decode(golden, type(event))
    assert back == event
    assert serde.encode_dict(event.SCHEMA, back.to_dict()) == golden


def test_every_golden_file_is_an_event() -> None:
    names = {path_of(i, e).name for i, e in enumerate(EVENTS)}
    on_disk = {p.name for p in path_of(0, EVENTS[0]).parent.glob("*.bin")}
    assert on_disk == names
