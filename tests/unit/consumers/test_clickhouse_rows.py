"""Row and column mapping of the ClickHouse sink, DDL consistency and store URL parsing (no
services)."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pyarrow as pa
import pytest

from heimdall.consumers.clickhouse_rows import build_columns, uuid_text
from heimdall.consumers.clickhouse_sink import ROUTES, TABLE_COLUMNS, map_event
from heimdall.core.errors import ConfigError, InvalidEventError
from heimdall.core.settings import load_settings
from heimdall.core.store import http_params
from heimdall.infra.clickhouse import SCHEMA_SQL, TABLES, schema_statements
from heimdall.schemas import catalog
from heimdall.schemas.batch_decode import BatchDecoder
from heimdall.schemas.serde import Serde
from tests.unit.consumers import wire_samples as ws


def as_columns(table: str, row: tuple[Any, ...]) -> dict[str, Any]:
    cols = TABLE_COLUMNS[table]
    assert len(row) == len(cols)
    return dict(zip(cols, row, strict=True))


def test_measurement_row_flattens_position_and_parses_ids() -> None:
    w = ws.measurement(3)
    table, row = map_event("features", "heimdall.v1.Measurement", w)
    assert table == "features"
    r = as_columns(table, row)
    assert r["event_id"] == uuid.UUID(w["event_id"])
    assert r["chunk_id"] == uuid.UUID(w["chunk_id"])
    assert (r["lat_deg"], r["lon_deg"], r["alt_m"]) == (45.0003, 7.0, 250.0)
    assert r["clock"] == "gps"
    assert r["power_dbm"] == -93.0
    assert r["psd_dbm_hz"] == [-170.0, -160.5, -150.25]
    assert r["detected"] is True
    assert r["t_ns"] == w["t_ns"]


def test_observation_members_become_nested_arrays() -> None:
    w = ws.observation(1)
    table, row = map_event("observations", "heimdall.v1.Observation", w)
    r = as_columns(table, row)
    assert r["n_members"] == 3
    assert r["members.receiver_id"] == ["rx0", "rx1", "rx2"]
    assert r["members.lat_deg"] == [45.0, 45.1, 45.2]
    assert r["members.clock"] == ["ntp"] * 3
    assert r["members.n_measurements"] == [1, 2, 3]
    assert [len(ids) for ids in r["members.measurement_ids"]] == [1, 2, 3]
    assert r["members.measurement_ids"][2] == w["members"][2]["measurement_ids"]
    assert r["tdoa_pairs.receiver_a"] == ["rx0"]
    assert r["tdoa_pairs.tdoa_s"] == [1.5e-6]
    # every Nested sub-column has one entry per member / pair
    for col, value in r.items():
        if col.startswith("members."):
            assert len(value) == 3, col


def test_observation_without_tdoa_pairs_has_empty_arrays() -> None:
    w = ws.observation()
    del w["tdoa_pairs"]
    r = as_columns(*map_event("observations", "heimdall.v1.Observation", w))
    assert r["tdoa_pairs.receiver_a"] == [] and r["tdoa_pairs.sigma_s"] == []


def test_localization_row_keeps_covariance_and_params() -> None:
    w = ws.localization(model_version="m-7")
    r = as_columns(*map_event("localizations", "heimdall.v1.Localization", w))
    assert (r["cov_ee_m2"], r["cov_en_m2"], r["cov_nn_m2"]) == (900.0, 50.0, 1600.0)
    assert r["observation_id"] == uuid.UUID(w["observation_id"])
    assert r["model_version"] == "m-7"
    assert r["params"] == {"tx_power_dbm_1m": -20.0, "path_loss_exponent": 2.8}


def test_truth_row_keeps_nulls() -> None:
    w = ws.truth(channel_id=None, tx_power_dbm=None)
    r = as_columns(*map_event("truth", "heimdall.v1.Truth", w))
    assert r["channel_id"] is None and r["tx_power_dbm"] is None
    assert r["velocity_enu_mps"] == [1.0, 0.5, 0.0]


def test_defaulted_fields_may_be_absent() -> None:
    w = ws.localization()
    for name in ("model_version", "converged", "params", "processing_latency_s", "published_ns"):
        del w[name]
    r = as_columns(*map_event("localizations", "heimdall.v1.Localization", w))
    assert r["model_version"] is None and r["converged"] is True and r["params"] == {}


@pytest.mark.parametrize(
    ("role", "mutate", "message"),
    [
        ("features", lambda w: w.pop("power_dbm"), "'power_dbm' is missing"),
        ("features", lambda w: w.update(event_id="not-a-uuid"), "'event_id' is not a UUID"),
        ("features", lambda w: w.update(t_ns="soon"), "'t_ns' = 'soon' is not an Avro long"),
        ("features", lambda w: w.update(position={"lat_deg": 95.0, "lon_deg": 0.0}),
         "not a WGS84"),
        ("features", lambda w: w.update(psd_dbm_hz=["x"]),
         "'psd_dbm_hz' = 'x' is not an Avro float"),
        ("localizations", lambda w: w.update(n_receivers=-1), "'n_receivers' = -1 is outside"),
        ("localizations", lambda w: w.update(params={"a": "b"}),
         "'params' = 'b' is not an Avro double"),
        ("observations", lambda w: w["members"][1].pop("clock"), "'clock' is missing"),
        ("observations", lambda w: w["members"][0].update(n_measurements=-2),
         "'members.n_measurements' = -2 is outside [0, 4294967295]"),
        ("truth", lambda w: w.update(transmitting="yes"),
         "'transmitting' = 'yes' is not an Avro boolean"),
    ],
)  # fmt: skip
def test_unusable_values_are_refused_with_the_field_named(
    role: str, mutate: Any, message: str
) -> None:
    """What Avro guarantees (presence, types) is checked by Avro's validator for a dict built
    by hand; the rest (UUID text, WGS84, unsigned ranges) by the column checks."""
    schema, build = ws.BUILDERS[role]
    w = build()
    mutate(w)
    with pytest.raises(InvalidEventError, match=re.escape(message)):
        map_event(role, schema, w)


def test_schema_must_match_the_topic() -> None:
    with pytest.raises(InvalidEventError, match=r"the truth topic carries heimdall\.v1\.Truth"):
        map_event("truth", "heimdall.v1.Measurement", ws.measurement())
    with pytest.raises(InvalidEventError, match="does not store topic role 'iq'"):
        map_event("iq", "heimdall.v1.IqChunk", {})


@pytest.mark.parametrize("role", sorted(ROUTES))
def test_rows_of_serde_decoded_events(role: str) -> None:
    """The mapping accepts what Serde.decode_dict really returns (defaults filled in)."""
    serde = Serde()
    schema, build = ws.BUILDERS[role]
    wire = build(2)
    name, decoded = serde.decode_dict(serde.encode_dict(schema, wire))
    assert name == schema
    table, row = map_event(role, name, decoded)
    r = as_columns(table, row)
    assert r["event_id"] == uuid.UUID(wire["event_id"])


def test_every_inserted_column_is_in_the_ddl() -> None:
    ddl = {}
    for stmt in schema_statements("h"):
        m = re.match(r"CREATE TABLE IF NOT EXISTS `h`\.(\w+)", stmt)
        assert m, stmt[:80]
        ddl[m.group(1)] = stmt
    assert set(ddl) == set(TABLE_COLUMNS) == set(TABLES.values())
    for table, cols in TABLE_COLUMNS.items():
        stmt = ddl[table]
        assert "ENGINE = ReplacingMergeTree" in stmt
        assert "PARTITION BY toDate(ts)" in stmt
        assert re.search(r"ORDER BY \([^)]*, event_id\)", stmt), table
        for col in cols:
            leaf = col.split(".")[-1]
            assert re.search(rf"^\s+{re.escape(leaf)}\s", stmt, re.M), f"{table}.{col}"


def test_schema_sql_is_idempotent_ddl() -> None:
    for stmt in schema_statements("x"):
        assert stmt.startswith("CREATE TABLE IF NOT EXISTS `x`.")
    assert SCHEMA_SQL.exists()


def test_http_params_from_url() -> None:
    s = load_settings(clickhouse={"url": "https://alice:s3cret@ch.example:9443/rf"})
    p = http_params(s)
    assert p == {
        "host": "ch.example", "port": 9443, "interface": "https", "secure": True,
        "username": "alice", "password": "s3cret", "database": "rf",
    }  # fmt: skip
    s = load_settings(clickhouse={"url": "http://ch.local", "database": "hist", "password": "pw"})
    p = http_params(s)
    assert (p["port"], p["username"], p["database"], p["password"]) == (
        8123, "default", "hist", "pw",
    )  # fmt: skip
    assert http_params(load_settings(clickhouse={"url": "https://h"}))["port"] == 8443


def test_http_params_refuses_other_schemes() -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        http_params(load_settings(clickhouse={"url": "tcp://h:9000"}))


# -------------------------------------------------------------------- batches, by column


def decoded(role: str, n: int, **over: Any) -> list[dict[str, Any]]:
    """``n`` events of ``role`` as the sink's decoder gives them (float arrays as numpy)."""
    serde = Serde()
    decoder = BatchDecoder(serde)
    schema, build = ws.BUILDERS[role]
    out = []
    for i in range(n):
        name, wire = decoder.decode_dict(serde.encode_dict(schema, build(i, **over)))
        assert name == schema
        out.append(wire)
    return out


@pytest.mark.parametrize("role", sorted(ROUTES))
def test_a_batch_maps_to_the_rows_map_event_gives(role: str) -> None:
    wires = decoded(role, 4)
    data, rejected = build_columns(ROUTES[role], wires)
    assert rejected == {}
    assert tuple(data.column_names) == TABLE_COLUMNS[role]
    assert data.num_rows == 4
    schema = ROUTES[role].schema
    rows = [map_event(role, schema, {k: _plain(v) for k, v in w.items()})[1] for w in wires]
    for i, (name, column) in enumerate(zip(data.column_names, data.columns, strict=True)):
        values = column.to_pylist()
        want = [r[i] for r in rows]
        if ROUTES[role].columns[i].check is uuid_text:
            values = [uuid.UUID(v) for v in values]
        if name == "params":
            values = [dict(v) for v in values]
        assert values == want, name


def _plain(v: Any) -> Any:
    return v.tolist() if hasattr(v, "tolist") else v


def test_bad_rows_are_left_out_with_their_reason_and_the_rest_keeps_its_order() -> None:
    wires = decoded("observations", 6)
    wires[1]["event_id"] = "nope"
    wires[3]["members"][2]["position"]["lat_deg"] = -91.0
    wires[4]["members"][0]["n_measurements"] = -5
    wires[5]["event_id"] = "also-bad"
    wires[5]["members"][0]["n_measurements"] = 1 << 33  # the first check at fault is reported
    data, rejected = build_columns(ROUTES["observations"], wires)
    assert rejected == {
        1: "field 'event_id' is not a UUID: 'nope'",
        3: "field 'members.lat_deg' = -91.0 is not a WGS84 latitude",
        4: "field 'members.n_measurements' = -5 is outside [0, 4294967295]",
        5: "field 'event_id' is not a UUID: 'also-bad'",
    }
    assert data.column("event_id").to_pylist() == [wires[0]["event_id"], wires[2]["event_id"]]
    assert data.schema.field("members.n_measurements").type == pa.list_(pa.uint32())


def test_a_batch_that_cannot_be_built_is_mapped_row_by_row() -> None:
    """A dict that did not come from the decoder does not take the good rows down with it."""
    wires = decoded("features", 5)
    del wires[2]["power_dbm"]
    wires[3]["t_ns"] = "soon"
    data, rejected = build_columns(ROUTES["features"], wires)
    assert rejected[2] == "field 'power_dbm' is missing"
    assert rejected[3].startswith("field 't_ns': ")
    assert data.column("event_id").to_pylist() == [wires[i]["event_id"] for i in (0, 1, 4)]
    assert data.column("psd_dbm_hz").to_pylist()[0] == wires[0]["psd_dbm_hz"].tolist()


def test_an_empty_batch_is_an_empty_table() -> None:
    data, rejected = build_columns(ROUTES["truth"], [])
    assert data.num_rows == 0 and rejected == {}
    assert tuple(data.column_names) == TABLE_COLUMNS["truth"]


def test_every_table_is_declared_once_with_its_avro_record() -> None:
    for role, spec in ROUTES.items():
        assert spec.table == role
        assert spec.schema in catalog.current().entries
        assert len(set(spec.names)) == len(spec.names)
        assert spec.arrow_schema.names == list(spec.names)
