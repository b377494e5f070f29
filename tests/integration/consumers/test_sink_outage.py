"""ClickHouse gone for a while, with events arriving all along: the sink pauses, retries with
backoff and resumes; every event becomes exactly one row, and no offset is committed past a
row that is not in the store.

The outage is a real failure of the real chDB store (no mock): every history table is renamed
away for ``HEIMDALL_TEST_STORE_OUTAGE_S`` seconds (default 5), so each insert fails with
chDB's "table does not exist" until they come back. The rows the sink writes after the outage
are the real chDB's.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from heimdall.core.settings import HeimdallSettings
from heimdall.schemas.serde import Serde
from tests.integration.consumers.conftest import SinkThread
from tests.integration.consumers.test_clickhouse_sink import (
    ROLES,
    assert_committed_to,
    committed,
    events,
    merged,
    produce,
)

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("HEIMDALL_TEST_STORE_OUTAGE_S", "5"))


def test_store_outage_while_events_arrive_loses_nothing_and_writes_nothing_twice(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread], group_id: str
) -> None:
    serde = Serde()
    st = run_sink(serde, group_id=group_id, batch_size=200, max_backoff_s=1.0)
    ends: dict[tuple[str, int], int] = {}
    n_rounds, per_round = 0, 10
    # before the outage: written and committed
    ends = merged(ends, produce(ch_settings, events(serde, per_round)[0]))
    n_rounds += 1
    st.wait_for("rows before the outage", lambda: st.sink.stats.rows_total == 4 * per_round)
    st.wait_for("a commit before the outage", lambda: st.sink.stats.commits >= 1)
    before = committed(ch_settings, group_id)

    for table in ROLES:
        store.command(f"RENAME TABLE {table} TO {table}_away")
    outage_end = time.monotonic() + OUTAGE_S
    commits_at_start = st.sink.stats.commits
    rows_at_start = st.sink.stats.rows_total
    while time.monotonic() < outage_end:  # events keep arriving during the outage
        ends = merged(ends, produce(ch_settings, events(serde, per_round)[0]))
        n_rounds += 1
        time.sleep(0.5)
    st.wait_for("insert failures", lambda: st.sink.stats.insert_failures >= 2)
    # during the outage: paused, nothing written, nothing committed
    assert st.sink._paused, "partitions are paused while the store is gone"
    assert st.sink.stats.rows_total == rows_at_start
    assert st.sink.stats.commits == commits_at_start
    assert committed(ch_settings, group_id) == before

    restore = threading.Thread(
        target=lambda: [store.command(f"RENAME TABLE {t}_away TO {t}") for t in ROLES]
    )
    restore.start()
    restore.join(30)
    total = n_rounds * per_round
    st.wait_for("recovery", lambda: st.sink.stats.rows_total == 4 * total, timeout_s=120)
    # after the outage: resumed, new events flow again
    ends = merged(ends, produce(ch_settings, events(serde, per_round)[0]))
    total += per_round
    st.wait_for("rows after resume", lambda: st.sink.stats.rows_total == 4 * total)
    st.finish()
    assert not st.sink._paused
    for table in ROLES:
        # raw rows, not FINAL: the retries wrote no row twice, and lost none
        raw, distinct = store.query(
            f"SELECT count(), uniqExact(event_id) FROM {table}"
        ).result_rows[0]
        assert (raw, distinct) == (total, total), table
    assert_committed_to(ch_settings, group_id, ends)
