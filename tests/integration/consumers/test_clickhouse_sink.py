"""The ClickHouse sink against the real embedded broker and a real chDB directory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from confluent_kafka import TopicPartition

from heimdall.consumers.queries import (
    count_rows,
    localization_error_details,
    localization_errors,
)
from heimdall.core import kafka
from heimdall.core.errors import StoreError
from heimdall.core.settings import ClickHouseSettings, HeimdallSettings
from heimdall.core.store import open_clickhouse
from heimdall.schemas.dlq import DeadLetter
from heimdall.schemas.serde import Serde
from tests.integration.consumers.conftest import SinkThread
from tests.unit.consumers import wire_samples as ws

pytestmark = pytest.mark.integration

ROLES = ("features", "observations", "localizations", "truth")


def produce(
    settings: HeimdallSettings, items: list[tuple[str, bytes | None, bytes]]
) -> dict[tuple[str, int], int]:
    """Produce ``(role, key, value)`` to the test's topics; return the end offset per partition.

    (The end offsets come from the delivery reports: Tansu's ListOffsets answers with batch
    positions rather than record offsets, so watermarks cannot be compared with commits.)
    """
    p = kafka.producer(settings)
    errors: list[Any] = []
    ends: dict[tuple[str, int], int] = {}

    def delivered(err: Any, m: Any) -> None:
        if err:
            errors.append(err)
        else:
            key = (m.topic(), m.partition())
            ends[key] = max(ends.get(key, 0), m.offset() + 1)

    for role, key, value in items:
        p.produce(getattr(settings.topics, role), key=key, value=value, on_delivery=delivered)
        p.poll(0)
    assert p.flush(30.0) == 0
    assert not errors, errors
    return ends


def events(serde: Serde, n: int) -> tuple[list[tuple[str, bytes | None, bytes]], dict[str, int]]:
    """``n`` events of each stored type, keyed like the pipeline keys them."""
    items: list[tuple[str, bytes | None, bytes]] = []
    for i in range(n):
        for role in ROLES:
            schema, build = ws.BUILDERS[role]
            w = build(i)
            key = str(w.get("receiver_id") or w.get("channel_id") or w["source_id"]).encode()
            items.append((role, key, serde.encode_dict(schema, w)))
    return items, dict.fromkeys(ROLES, n)


def committed(settings: HeimdallSettings, group_id: str) -> dict[tuple[str, int], int]:
    """The group's committed offsets on the four stored topics (-1001: none)."""
    c = kafka.consumer(settings, group_id)
    try:
        tps = [
            TopicPartition(getattr(settings.topics, r), p)
            for r in ROLES
            for p in range(settings.partitions)
        ]
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10.0)}
    finally:
        c.close()


def merged(*ends: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    out: dict[tuple[str, int], int] = {}
    for e in ends:
        for k, v in e.items():
            out[k] = max(out.get(k, 0), v)
    return out


def assert_committed_to(settings: HeimdallSettings, group_id: str, ends: dict) -> None:
    """Every partition that got events is committed to its end; the others have no commit."""
    got = committed(settings, group_id)
    want = {k: ends.get(k, -1001) for k in got}
    assert got == want


def test_sink_writes_every_table_and_commits_after_the_write(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread], group_id: str
) -> None:
    serde = Serde()
    items, expected = events(serde, 40)
    ends = produce(ch_settings, items)
    st = run_sink(serde, group_id=group_id, batch_size=50)
    st.wait_for("all rows", lambda: st.sink.stats.rows == expected)
    st.finish()
    stats = st.sink.stats
    assert stats.dlq == 0 and stats.insert_failures == 0
    assert stats.flushes >= 160 // 50  # batch_size bounds the batch
    for role in ROLES:
        assert count_rows(store, role) == 40
    # flattened columns hold the event's values
    lat, lon, cov_nn, params = store.query(
        "SELECT lat_deg, lon_deg, cov_nn_m2, params FROM localizations FINAL LIMIT 1"
    ).result_rows[0]
    assert (lat, lon, cov_nn) == (45.05, 7.05, 1600.0)
    assert params == {"tx_power_dbm_1m": -20.0, "path_loss_exponent": 2.8}
    rx, n_meas, n_members = store.query(
        "SELECT members.receiver_id, members.n_measurements, n_members "
        "FROM observations FINAL LIMIT 1"
    ).result_rows[0]
    assert (rx, n_meas, n_members) == (["rx0", "rx1", "rx2"], [1, 2, 3], 3)
    members = store.query(
        "SELECT count() FROM observations FINAL ARRAY JOIN members WHERE members.clock = 'ntp'"
    ).result_rows[0][0]
    assert members == 40 * 3
    # offsets were committed up to the end of every partition
    assert_committed_to(ch_settings, group_id, ends)
    # the localizations (45.05, 7.05) sit on the truth: zero error, paired at dt = 0
    errs = localization_error_details(store)
    assert len(errs) == 40
    assert all(e.error_m < 1e-6 and e.dt_s == 0.0 and e.source_id == "tx1" for e in errs)
    assert localization_errors(store) == [e.error_m for e in errs]


def test_crash_before_commit_replays_and_final_counts_each_event_once(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread], group_id: str
) -> None:
    serde = Serde()
    items, expected = events(serde, 25)
    # the producer sends some events twice (a retry after a lost ack): still one row each
    items += items[:10]
    ends = produce(ch_settings, items)

    first = run_sink(serde, group_id=group_id, batch_size=30, commit=False)
    first.wait_for("every event read", lambda: first.sink.stats.consumed == len(items))
    first.wait_for("every row written", lambda: first.sink.stats.rows_total == len(items))
    first.finish()
    assert all(o < 0 for o in committed(ch_settings, group_id).values()), "nothing committed"

    second = run_sink(serde, group_id=group_id, batch_size=30)
    second.wait_for("the replay", lambda: second.sink.stats.rows_total == len(items))
    second.finish()
    assert second.sink.stats.commits >= 1

    raw = sum(store.query(f"SELECT count() FROM {t}").result_rows[0][0] for t in ROLES)
    assert raw >= len(items), "the replay wrote the events again"
    for role in ROLES:
        assert count_rows(store, role) == expected[role]
        distinct = store.query(f"SELECT uniqExact(event_id) FROM {role}").result_rows[0][0]
        assert count_rows(store, role) == distinct
    assert_committed_to(ch_settings, group_id, ends)


def test_undecodable_events_go_to_the_dlq_and_the_rest_is_written(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread], group_id: str
) -> None:
    serde = Serde()
    items, expected = events(serde, 5)
    garbage = b"\x7fnot avro at all"
    wrong_topic = serde.encode_dict("heimdall.v1.Measurement", ws.measurement())
    bad_uuid = serde.encode_dict("heimdall.v1.Truth", ws.truth(event_id="nope"))
    bad = [
        ("features", b"k-garbage", garbage),
        ("truth", b"k-wrong", wrong_topic),
        ("truth", b"k-uuid", bad_uuid),
    ]
    ends = produce(ch_settings, items[:8] + bad + items[8:])

    st = run_sink(serde, group_id=group_id, batch_size=1000)
    st.wait_for("good rows", lambda: st.sink.stats.rows == expected)
    st.wait_for("dead letters", lambda: st.sink.stats.dlq == 3)
    st.finish()
    for role in ROLES:
        assert count_rows(store, role) == 5

    c = kafka.consumer(ch_settings, f"{group_id}-dlq")
    c.subscribe([ch_settings.topics.dlq])
    letters: dict[bytes | None, DeadLetter] = {}
    deadline = time.monotonic() + 30
    try:
        while len(letters) < 3 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                d = DeadLetter.from_message(m.key(), m.value(), cast(Any, m.headers()))
                letters[d.key] = d
    finally:
        c.close()
    assert set(letters) == {b"k-garbage", b"k-wrong", b"k-uuid"}
    g = letters[b"k-garbage"]
    assert g.value == garbage and g.stage == "clickhouse-sink"
    assert g.topic == ch_settings.topics.features and g.offset >= 0 and g.partition >= 0
    assert "SchemaError" in g.reason and "magic byte" in g.reason
    w = letters[b"k-wrong"]
    assert w.value == wrong_topic and w.topic == ch_settings.topics.truth
    assert "carries heimdall.v1.Truth, not heimdall.v1.Measurement" in w.reason
    assert letters[b"k-uuid"].value == bad_uuid
    assert "'event_id' is not a UUID" in letters[b"k-uuid"].reason
    # dead-lettered offsets are committed too: nothing is read twice after a restart
    assert_committed_to(ch_settings, group_id, ends)


def test_insert_failure_pauses_retries_and_loses_nothing(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread], group_id: str
) -> None:
    """A real failure: the truth table is renamed away while the sink runs, then restored."""
    serde = Serde()
    items, expected = events(serde, 20)
    store.command("RENAME TABLE truth TO truth_away")
    ends = produce(ch_settings, items)
    st = run_sink(serde, group_id=group_id, batch_size=10_000, max_backoff_s=0.4)
    st.wait_for("insert failures", lambda: st.sink.stats.insert_failures >= 3)
    stats = st.sink.stats
    assert stats.rows["truth"] == 0
    assert st.sink._paused, "partitions are paused while the store refuses the batch"
    assert all(o < 0 for o in committed(ch_settings, group_id).values()), "no commit yet"

    store.command("RENAME TABLE truth_away TO truth")
    st.wait_for("recovery", lambda: st.sink.stats.rows == expected)
    st.wait_for("commit", lambda: st.sink.stats.commits >= 1)
    assert not st.sink._paused
    # more events after the recovery flow again (the partitions were resumed)
    more, _ = events(serde, 3)
    ends = merged(ends, produce(ch_settings, more))
    st.wait_for("rows after resume", lambda: st.sink.stats.rows_total == 4 * 23)
    st.finish()
    for role in ROLES:
        assert count_rows(store, role) == 23
    assert_committed_to(ch_settings, group_id, ends)


def test_stop_while_the_store_fails_commits_nothing(
    ch_settings: HeimdallSettings, store: Any, run_sink: Callable[..., SinkThread], group_id: str
) -> None:
    serde = Serde()
    items, _ = events(serde, 5)
    store.command("RENAME TABLE features TO features_away")
    produce(ch_settings, items)
    st = run_sink(serde, group_id=group_id, max_backoff_s=0.2)
    st.wait_for("insert failures", lambda: st.sink.stats.insert_failures >= 2)
    st.finish()
    store.command("RENAME TABLE features_away TO features")
    assert all(o < 0 for o in committed(ch_settings, group_id).values())


def test_second_data_directory_in_one_process_is_a_clear_error(
    ch_settings: HeimdallSettings, store: Any, tmp_path: Path
) -> None:
    other = ch_settings.model_copy(update={"data_dir": tmp_path / "other"})
    with pytest.raises(StoreError, match="chDB hosts one data directory per process"):
        open_clickhouse(other)
    # the open store still works
    assert store.query("SELECT 1").result_rows == [(1,)]


def test_directory_held_by_another_process_is_a_clear_error(tmp_path: Path) -> None:
    """Both sides are child processes, so this process's own chDB state does not matter."""
    data = tmp_path / "held"
    holder_src = textwrap.dedent(f"""
        import sys
        from heimdall.core.settings import load_settings
        from heimdall.core.store import open_clickhouse
        c = open_clickhouse(load_settings(data_dir={str(data)!r}))
        print("ready", flush=True)
        sys.stdin.read()
        c.close()
    """)
    opener_src = textwrap.dedent(f"""
        from heimdall.core.errors import StoreError
        from heimdall.core.settings import load_settings
        from heimdall.core.store import open_clickhouse
        try:
            open_clickhouse(load_settings(data_dir={str(data)!r}))
        except StoreError as exc:
            print("StoreError:", exc)
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLICKHOUSE_")}
    holder = subprocess.Popen(
        [sys.executable, "-c", holder_src],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "ready"
        out = subprocess.run(
            [sys.executable, "-c", opener_src], capture_output=True, text=True, timeout=120, env=env
        ).stdout
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
    expected = (
        f"StoreError: the ClickHouse data directory {(data / 'chdb').resolve()} is in use "
        "by another process; embedded mode allows one owner"
    )
    assert out.strip() == expected


def test_open_clickhouse_creates_the_database(ch_settings: HeimdallSettings) -> None:
    s = ch_settings.model_copy(
        update={
            "clickhouse": ClickHouseSettings(
                url=None, password=None, database=f"fresh_{uuid.uuid4().hex[:8]}"
            )
        }
    )
    client = open_clickhouse(s)
    try:
        assert client.query("SELECT currentDatabase()").result_rows[0][0] == s.clickhouse.database
    finally:
        client.close()


def test_localization_errors_pair_with_the_nearest_truth_of_the_channel(store: Any) -> None:
    from heimdall.consumers.clickhouse_sink import TABLE_COLUMNS, map_event

    def insert(role: str, wires: list[dict[str, Any]]) -> None:
        schema = ws.BUILDERS[role][0]
        rows = [map_event(role, schema, w)[1] for w in wires]
        store.insert(role, rows, column_names=list(TABLE_COLUMNS[role]))

    s = 1_000_000_000
    insert("truth", [
        ws.truth(t_ns=ws.T0_NS, position=ws.position(50.0, 10.0)),
        ws.truth(t_ns=ws.T0_NS + 10 * s, position=ws.position(50.1, 10.0)),
        ws.truth(t_ns=ws.T0_NS, channel_id="other", position=ws.position(0.0, 0.0)),
        ws.truth(t_ns=ws.T0_NS, channel_id=None, position=ws.position(0.0, 0.0)),
    ])  # fmt: skip
    locs = {
        "before-first": ws.localization(t_ns=ws.T0_NS - 5 * s, position=ws.position(50.01, 10.0)),
        "near-first": ws.localization(t_ns=ws.T0_NS + 4 * s, position=ws.position(50.0, 10.0)),
        "near-second": ws.localization(t_ns=ws.T0_NS + 6 * s, position=ws.position(50.1, 10.0)),
        "after-last": ws.localization(t_ns=ws.T0_NS + 30 * s, position=ws.position(50.1, 10.01)),
        "no-truth": ws.localization(channel_id="silent"),
    }
    insert("localizations", list(locs.values()))
    insert("localizations", [locs["near-first"]])  # a duplicate: FINAL keeps one
    by_id = {e.event_id: e for e in localization_error_details(store)}
    got = {name: by_id.get(w["event_id"]) for name, w in locs.items()}
    assert got["no-truth"] is None
    assert len(by_id) == 4
    bf, nf, ns, al = got["before-first"], got["near-first"], got["near-second"], got["after-last"]
    assert bf is not None and nf is not None and ns is not None and al is not None
    assert bf.dt_s == -5.0 and bf.error_m == pytest.approx(1111.6, abs=5.0)  # 0.01° of latitude
    assert nf.dt_s == 4.0 and nf.error_m == pytest.approx(0.0, abs=1e-6)
    assert ns.dt_s == -4.0 and ns.error_m == pytest.approx(0.0, abs=1e-6)
    assert al.dt_s == 20.0 and al.error_m == pytest.approx(716.0, abs=5.0)  # 0.01° lon at 50.1°
    assert nf.drms_m == pytest.approx((900.0 + 1600.0) ** 0.5)
    assert len(localization_errors(store, max_dt_s=5.0)) == 3
