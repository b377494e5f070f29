"""Event identifiers: UUIDv7 (RFC 9562), time-ordered so that sinks can sort and dedupe on them."""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Iterable

_lock = threading.Lock()
_last_ms = 0
_counter = 0


def uuid7(unix_ms: int | None = None) -> uuid.UUID:
    """Return a UUIDv7: 48-bit Unix ms, version 7, 12-bit counter, variant, 62 random bits.

    Within one millisecond the 12-bit ``rand_a`` field is a counter (RFC 9562 §6.2, method 1),
    so ids made by one process are strictly increasing.
    """
    global _last_ms, _counter
    with _lock:
        ms = int(time.time() * 1000) if unix_ms is None else int(unix_ms)
        if ms > _last_ms:
            _last_ms, _counter = ms, 0
        elif ms == _last_ms or unix_ms is None:  # same or clock stepped back: keep order
            ms = _last_ms
            _counter += 1
            if _counter > 0xFFF:  # counter overflow: borrow the next millisecond
                _last_ms, _counter = _last_ms + 1, 0
                ms = _last_ms
        else:  # an explicit past time: honour it, outside the monotonic sequence
            return _compose(ms, 0)
        counter = _counter
    return _compose(ms, counter)


def _compose(ms: int, counter: int) -> uuid.UUID:
    rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= counter << 64
    value |= 0b10 << 62
    value |= rand_b
    return uuid.UUID(int=value)


def new_event_id() -> str:
    """A fresh UUIDv7 as its canonical string."""
    return str(uuid7())


_KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")


def check_key_id(value: str) -> str:
    """``value`` if it can name a receiver or a source, else ValueError.

    Such an id is a Kafka key and a ClickHouse column value, typed by hand in network files:
    letters, digits and ``. _ : -``, starting with a letter or digit.
    """
    if not _KEY_ID.fullmatch(value):
        raise ValueError(f"{value!r} must be letters, digits and . _ : - (it is the Kafka key)")
    return value


def first_repeated(ids: Iterable[str]) -> str | None:
    """The first id that appears a second time in ``ids``, or None when all differ."""
    seen: set[str] = set()
    for i in ids:
        if i in seen:
            return i
        seen.add(i)
    return None
