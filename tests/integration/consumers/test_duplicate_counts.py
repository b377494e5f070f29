"""``duplicate_counts`` (the summary's ``duplicates``) on a real chDB history: what counts as the
same result twice, table by table (``consumers.queries.NATURAL_KEYS``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from heimdall.consumers.clickhouse_rows import TABLE_COLUMNS, map_event
from heimdall.consumers.queries import duplicate_counts
from heimdall.schemas.models import Observation
from tests.unit.schemas.examples import examples

pytestmark = pytest.mark.integration


def _insert(client: Any, role: str, events: list[Any]) -> None:
    rows = [map_event(role, e.SCHEMA, e.to_dict())[1] for e in events]
    client.insert(role, rows, column_names=list(TABLE_COLUMNS[role]))


def test_an_rss_window_and_a_tdoa_block_starting_together_are_two_results(store: Any) -> None:
    """Found by the killed-worker test in a clean clone: a TDOA block (the observation with
    lags) that starts on an RSS window's start was counted as a duplicate of it."""
    block = next(e for e in examples() if isinstance(e, Observation))
    assert block.tdoa_pairs
    window = dataclasses.replace(
        block,
        event_id="0190c5b8-0000-7000-8000-0000000000aa",
        window_end_ns=block.window_start_ns + 10**9,
        tdoa_pairs=(),
    )
    block = dataclasses.replace(block, window_end_ns=block.window_start_ns + 30 * 10**9)
    _insert(store, "observations", [window, block])
    assert duplicate_counts(store)["observations"] == 0
    # the same RSS window twice under another id (a replay before ids were derived) counts
    again = dataclasses.replace(window, event_id="0190c5b8-0000-7000-8000-0000000000bb")
    _insert(store, "observations", [again])
    assert duplicate_counts(store)["observations"] == 1
