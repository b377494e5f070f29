"""The models write the very bytes the hand-written models of commit 80f9922 wrote, and read
them back into equal events (``golden_wire/``).

A record whose schema has changed since (a new field with a default, say) writes other bytes;
its golden bytes must then still be read, by Avro schema resolution from the released schema
they were written with, into the same event (the new fields at their defaults).
"""

from __future__ import annotations

from typing import Any

import pytest

from heimdall.schemas import catalog
from heimdall.schemas.serde import Serde
from tests.unit.schemas.golden_wire import events, path_of

EVENTS = events()


@pytest.mark.parametrize(
    ("i", "event"), list(enumerate(EVENTS)), ids=[path_of(i, e).stem for i, e in enumerate(EVENTS)]
)
def test_wire_bytes_are_the_golden_ones_and_read_back(i: int, event: Any) -> None:
    serde = Serde()
    golden = path_of(i, event).read_bytes()
    back = serde.decode(golden, type(event))
    assert back == event
    if golden[2:10] == catalog.current()[event.SCHEMA].fingerprint:
        assert serde.encode(event) == golden
        assert serde.encode_dict(event.SCHEMA, back.to_dict()) == golden
    else:  # the schema has changed since: the golden bytes are a released version's
        released = {e.fingerprint for cat in catalog.released().values() for e in cat}
        assert golden[2:10] in released


def test_every_golden_file_is_an_event() -> None:
    names = {path_of(i, e).name for i, e in enumerate(EVENTS)}
    on_disk = {p.name for p in path_of(0, EVENTS[0]).parent.glob("*.bin")}
    assert on_disk == names
