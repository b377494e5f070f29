"""The sink's columns and the DDL are one contract: every column of ``schema.sql`` that an
insert fills is an Avro field of the table's record (by name, after flattening) or declared
in ``clickhouse_rows``, with a matching type, and every Avro value of a stored event has a
column or is listed as deliberately not stored."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from heimdall.consumers import clickhouse_rows as rows
from heimdall.consumers.clickhouse_rows import ROUTES, TableSpec, avro_columns, uuid_text
from heimdall.infra.clickhouse import schema_statements

#: ClickHouse types of the DDL -> the Arrow type the sink must send.
_SCALARS = {
    "Int32": pa.int32(), "Int64": pa.int64(), "UInt16": pa.uint16(), "UInt32": pa.uint32(),
    "Float32": pa.float32(), "Float64": pa.float64(), "Bool": pa.bool_(), "String": pa.string(),
    "UUID": pa.string(),
}  # fmt: skip


def arrow_of(ch: str) -> pa.DataType:
    """The Arrow type that a ClickHouse column type takes from the sink."""
    ch = re.sub(r"\s+CODEC\(.*\)$", "", ch.strip())
    m = re.fullmatch(r"(\w+)\((.*)\)", ch)
    if m is None:
        return _SCALARS[ch]
    outer, inner = m.groups()
    if outer in ("LowCardinality", "Nullable"):
        return arrow_of(inner)
    if outer == "Array":
        return pa.list_(arrow_of(inner))
    if outer == "Map":
        key, value = (p.strip() for p in inner.split(",", 1))
        return pa.map_(arrow_of(key), arrow_of(value))
    raise AssertionError(f"no Arrow type for ClickHouse {ch}")


def split_top(text: str) -> list[str]:
    """``text`` split at the commas outside parentheses."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [" ".join(p.split()) for p in parts if p.strip()]


def ddl_columns() -> dict[str, dict[str, str]]:
    """Table -> {column: ClickHouse type} of the columns an insert fills, in DDL order
    (MATERIALIZED, DEFAULT and ALIAS columns are filled by ClickHouse)."""
    out: dict[str, dict[str, str]] = {}
    for stmt in schema_statements("h"):
        m = re.match(r"CREATE TABLE IF NOT EXISTS `h`\.(\w+)\s*\((.*)\)\s*ENGINE", stmt, re.S)
        assert m, stmt[:80]
        cols: dict[str, str] = {}
        for definition in split_top(re.sub(r"--[^\n]*", "", m.group(2))):
            name, _, typ = definition.partition(" ")
            if typ.startswith("Nested"):
                inner = typ[typ.index("(") + 1 : typ.rindex(")")]
                for sub in split_top(inner):
                    sub_name, _, sub_typ = sub.partition(" ")
                    cols[f"{name}.{sub_name}"] = f"Array({sub_typ})"
            elif not re.search(r"\b(MATERIALIZED|DEFAULT|ALIAS)\b", typ):
                cols[name] = typ
        out[m.group(1)] = cols
    return out


DDL = ddl_columns()


def test_every_table_of_the_ddl_is_stored_by_the_sink() -> None:
    assert set(DDL) == set(ROUTES)


@pytest.mark.parametrize("table", sorted(ROUTES))
def test_the_sink_fills_exactly_the_ddl_columns_in_order(table: str) -> None:
    spec = ROUTES[table]
    ddl = list(DDL[table])
    avro = [c.name for c in avro_columns(spec.schema)]
    missing = [c for c in avro if c not in ddl and c not in spec.skipped]
    assert not missing, (
        f"{spec.schema} values {missing} have no column in {table}: add their DDL lines to "
        "infra/clickhouse/schema.sql, or list them in the table's skip=[...] in clickhouse_rows"
    )
    unknown = [c for c in ddl if c not in spec.names]
    assert not unknown, (
        f"{table} columns {unknown} are no {spec.schema} field: declare them in clickhouse_rows"
    )
    assert list(spec.names) == ddl


@pytest.mark.parametrize("table", sorted(ROUTES))
def test_each_column_is_sent_as_the_type_the_ddl_takes(table: str) -> None:
    spec: TableSpec = ROUTES[table]
    for col in spec.columns:
        ch = DDL[table][col.name]
        assert col.type == arrow_of(ch), f"{table}.{col.name}: {col.type} for {ch}"
        # UUID text is checked (ClickHouse would refuse the whole insert); unsigned columns
        # are range-checked by their Arrow type (build_columns); WGS84 by CHECKS
        if ch.removeprefix("Array(").startswith(("UUID", "Nullable(UUID")):
            assert col.check is uuid_text, f"{table}.{col.name}"
        leaf = col.name.rsplit(".", 1)[-1]
        if leaf in rows.CHECKS:
            assert col.check is rows.CHECKS[leaf]


def test_only_the_differences_are_declared() -> None:
    """Columns not derived from a field by name: n_members (computed), two unsigned types,
    and the TDOA pair fields the table does not store."""
    declared = {}
    for table, spec in ROUTES.items():
        derived = {c.name: c.type for c in avro_columns(spec.schema)}
        for col in spec.columns:
            if derived.get(col.name) != col.type:
                declared[f"{table}.{col.name}"] = col.type
        assert set(derived) - set(spec.names) == set(spec.skipped)
        declared.update({f"{table}.{c}": None for c in spec.skipped})
    assert declared == {
        "observations.n_members": pa.uint16(),
        "observations.members.n_measurements": pa.list_(pa.uint32()),
        "localizations.n_receivers": pa.uint16(),
        "observations.tdoa_pairs.sigma_sys_s": None,
        "observations.tdoa_pairs.quality": None,
        "observations.tdoa_pairs.method": None,
    }


def test_a_declaration_that_matches_no_field_is_refused() -> None:
    with pytest.raises(ValueError, match=r"no Avro column \['snr'\]"):
        rows.table_spec("features", "heimdall.v1.Measurement", skip=["snr"])
    with pytest.raises(ValueError, match="no column 'nope' to put 'x' after"):
        rows.table_spec(
            "features", "heimdall.v1.Measurement",
            computed=[("nope", rows.Column("x", rows.count("psd_dbm_hz"), pa.int64()))],
        )  # fmt: skip
