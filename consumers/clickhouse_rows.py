"""How the ClickHouse sink turns wire dicts into the columns of the history tables.

Each table is declared once (:data:`ROUTES`): the Avro record its events must have. Its columns
are the record's fields by name (:func:`avro_columns`: a nested record flattened, an array of
records as a ``Nested``), each read from its field and sent as the Arrow type of its Avro type;
only what differs is declared (:func:`table_spec`): narrower unsigned types, computed columns,
values deliberately not stored, and the checks of :data:`CHECKS`. The columns of
``infra/clickhouse/schema.sql`` are the ones that exist, and a unit test holds the two
together, so adding a field to a table is its Avro field plus its DDL line.

:func:`build_columns` maps a whole batch of wire dicts at once, column by column, into a
``pyarrow.Table`` (inserted with ``client.insert_arrow``). Avro decoding already guarantees
every field's presence and type, so only what Avro cannot say is checked, vectorised over the
column: UUID text, WGS84 latitude/longitude, the range of unsigned columns. A row that fails
is left out of the table with a one-line reason naming the field (the sink sends its event to
the dead-letter topic). A batch whose columns cannot be built at all (a dict that did not come
from the decoder, say) is mapped row by row to find the rows at fault.

:func:`map_event` maps one event to a row tuple (``TABLE_COLUMNS`` order, UUIDs as
``uuid.UUID``) for ``client.insert``; a dict built by hand is first checked against the
Avro schema and completed with its defaults (:func:`as_decoded`), so it gets what decoding
guarantees.
"""

from __future__ import annotations

import io
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from heimdall.core.errors import InvalidEventError
from heimdall.schemas import catalog
from heimdall.schemas.wire import named_types

__all__ = [
    "ROUTES",
    "TABLE_COLUMNS",
    "Column",
    "TableSpec",
    "build_columns",
    "map_event",
]

Reader = Callable[[Mapping[str, Any]], Any]
Wire = Mapping[str, Any]


def wire(name: str, *path: str) -> Reader:
    """Reads field ``name`` (then ``path`` into nested records) of a wire dict."""
    if not path:
        return operator.itemgetter(name)
    names = (name, *path)

    def read(w: Wire) -> Any:
        for n in names:
            w = w[n]
        return w

    return read


def each(name: str, *path: str) -> Reader:
    """Reads ``path`` of every record of the array field ``name`` (a Nested sub-column)."""
    inner = wire(*path)
    return lambda w: [inner(x) for x in w[name]]


def count(name: str) -> Reader:
    """The number of entries of the array field ``name``."""
    return lambda w: len(w[name])


# --------------------------------------------------------------------------------------------
# Checks Avro cannot make: each returns the mask of the rows at fault and their reasons
# --------------------------------------------------------------------------------------------

Check = Callable[[str, pa.Array], tuple[np.ndarray, Callable[[int], str]]]

_UUID_TEXT = (
    r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"|[0-9a-fA-F]{32})$"
)  # the two spellings ClickHouse parses into a UUID column


def _flat(arr: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Values of a (list) array and the row each value belongs to."""
    if pa.types.is_list(arr.type):
        parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        return pc.list_flatten(arr), parents
    return arr, np.arange(len(arr))


def _rows_of(bad_values: np.ndarray, parents: np.ndarray, n_rows: int) -> np.ndarray:
    mask = np.zeros(n_rows, dtype=bool)
    mask[parents[bad_values]] = True
    return mask


def uuid_text(name: str, arr: pa.Array) -> tuple[np.ndarray, Callable[[int], str]]:
    """UUID columns travel as text: it must be one that ClickHouse parses."""
    values, parents = _flat(arr)
    ok = pc.fill_null(pc.match_substring_regex(values, _UUID_TEXT), False)
    bad = ~ok.to_numpy(zero_copy_only=False)
    text = values.to_pylist() if bad.any() else []
    first = {int(parents[i]): text[i] for i in np.flatnonzero(bad)[::-1]}
    return _rows_of(bad, parents, len(arr)), (
        lambda row: f"field {name!r} is not a UUID: {str(first[row])[:60]!r}"
    )


def between(lo: float, hi: float, what: str) -> Check:
    """Values (of a column or of a Nested sub-column) must lie in ``[lo, hi]``."""

    def check(name: str, arr: pa.Array) -> tuple[np.ndarray, Callable[[int], str]]:
        values, parents = _flat(arr)
        x = values.to_numpy(zero_copy_only=False)
        bad = ~((x >= lo) & (x <= hi))
        first = {int(parents[i]): x[i] for i in np.flatnonzero(bad)[::-1]}
        return _rows_of(bad, parents, len(arr)), (
            lambda row: f"field {name!r} = {first[row]} is not a {what}"
        )

    return check


LATITUDE = between(-90.0, 90.0, "WGS84 latitude")
LONGITUDE = between(-180.0, 180.0, "WGS84 longitude")


def _unsigned(t: pa.DataType) -> pa.DataType | None:
    """The unsigned integer type of a column (or of its list items), if it is one."""
    inner = t.value_type if pa.types.is_list(t) else t
    return inner if pa.types.is_unsigned_integer(inner) else None


def in_range(unsigned: pa.DataType) -> Check:
    """Values must fit the unsigned integer type (a column is built as int64, then cast)."""
    hi = (1 << unsigned.bit_width) - 1

    def check(name: str, arr: pa.Array) -> tuple[np.ndarray, Callable[[int], str]]:
        values, parents = _flat(arr)
        x = values.to_numpy(zero_copy_only=False)
        bad = (x < 0) | (x > hi)
        first = {int(parents[i]): int(x[i]) for i in np.flatnonzero(bad)[::-1]}
        return _rows_of(bad, parents, len(arr)), (
            lambda row: f"field {name!r} = {first[row]} is outside [0, {hi}]"
        )

    return check


# --------------------------------------------------------------------------------------------
# The tables
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One column of a history table.

    Attributes
    ----------
    name : str
        Column name in ``schema.sql`` (``members.t_ns`` for a Nested sub-column).
    read : callable
        Its value from the wire dict (:func:`wire`, :func:`each`, :func:`count`, or any).
    type : pyarrow.DataType
        What it is sent as; ClickHouse converts (text to UUID, to LowCardinality, ...).
        An unsigned type is range-checked.
    check : callable, optional
        A check Avro cannot make (:func:`uuid_text`, :data:`LATITUDE`, ...).
    """

    name: str
    read: Reader
    type: pa.DataType
    check: Check | None = None


@dataclass(frozen=True)
class TableSpec:
    """A history table: the Avro record its events have, its columns, and the Avro values
    it deliberately does not store (column names as :func:`avro_columns` gives them)."""

    table: str
    schema: str
    columns: tuple[Column, ...]
    skipped: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])


# --------------------------------------------------------------------------------------------
# Columns derived from the Avro record
# --------------------------------------------------------------------------------------------

#: Arrow type of each Avro primitive (enums travel as their symbol, UUIDs as text).
ARROW_TYPES: dict[str, pa.DataType] = {
    "boolean": pa.bool_(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
    "double": pa.float64(), "string": pa.string(), "bytes": pa.binary(),
}  # fmt: skip

#: Checks by column name (its last part: ``lat_deg`` and ``members.lat_deg``), in every table.
CHECKS: dict[str, Check] = {"lat_deg": LATITUDE, "lon_deg": LONGITUDE}


def _resolve(avro: Any, named: Mapping[str, Any]) -> Any:
    if isinstance(avro, str):
        return named.get(avro, avro)
    if isinstance(avro, list):
        branches = [b for b in avro if b != "null"]
        if len(branches) != 1:
            raise TypeError(f"unions other than [null, T] have no column type: {avro!r}")
        return _resolve(branches[0], named)  # a Nullable column
    if isinstance(avro, dict) and isinstance(avro["type"], str) and avro["type"] in ARROW_TYPES:
        return avro  # a primitive with a logical type
    return avro


def _leaves(
    avro: Any, named: Mapping[str, Any], path: tuple[str, ...]
) -> list[tuple[tuple[str, ...], Any]]:
    """(path into the wire dict, Avro type) of every value a column holds; a field of a record
    field is flattened into its parent (``position.lat_deg`` is the column ``lat_deg``)."""
    t = _resolve(avro, named)
    if isinstance(t, dict) and t["type"] == "record":
        out = []
        for f in t["fields"]:
            out += _leaves(f["type"], named, (*path, f["name"]))
        return out
    return [(path, t)]


def _arrow(t: Any, named: Mapping[str, Any], where: str) -> tuple[pa.DataType, Check | None]:
    """Arrow type of a (resolved) Avro type, and the check its values need (UUID text)."""
    if isinstance(t, str):
        return ARROW_TYPES[t], None
    kind = t["type"]
    if kind == "enum":
        return pa.string(), None
    if kind == "array":
        item, check = _arrow(_resolve(t["items"], named), named, where)
        return pa.list_(item), check
    if kind == "map":
        value, check = _arrow(_resolve(t["values"], named), named, where)
        return pa.map_(pa.string(), value), check
    if isinstance(kind, str) and kind in ARROW_TYPES:
        return ARROW_TYPES[kind], uuid_text if t.get("logicalType") == "uuid" else None
    raise TypeError(f"{where}: Avro type {kind!r} has no column type")


def avro_columns(schema: str) -> list[Column]:
    """A column for every value of an Avro record, named and typed after its field.

    A record field is flattened into its parent's columns (``position`` gives ``lat_deg``,
    ``lon_deg``, ``alt_m``); an array of records is a ClickHouse ``Nested`` (``members`` gives
    ``members.receiver_id``, ... , each an array with one item per record); ``["null", T]`` is
    a ``T`` column that takes NULL; a UUID is text, checked (:func:`uuid_text`); a column
    named in :data:`CHECKS` gets that check.
    """
    named = named_types()
    columns = []
    for path, t in _leaves(named[schema], named, ()):
        if isinstance(t, dict) and t["type"] == "array":
            item = _resolve(t["items"], named)
            if isinstance(item, dict) and item["type"] == "record":
                if len(path) > 1:
                    raise TypeError(f"{'.'.join(path)}: an array of records in a record")
                for sub, st in _leaves(item, named, ()):
                    typ, check = _arrow(st, named, ".".join((*path, *sub)))
                    columns.append(Column(
                        f"{path[-1]}.{sub[-1]}", each(*path, *sub), pa.list_(typ),
                        CHECKS.get(sub[-1], check),
                    ))  # fmt: skip
                continue
        typ, check = _arrow(t, named, ".".join(path))
        columns.append(Column(path[-1], wire(*path), typ, CHECKS.get(path[-1], check)))
    return columns


def table_spec(
    table: str,
    schema: str,
    *,
    types: Mapping[str, pa.DataType] | None = None,
    computed: Sequence[tuple[str, Column]] = (),
    skip: Sequence[str] = (),
) -> TableSpec:
    """The columns of ``table``: those of :func:`avro_columns`, with the declared differences.

    Parameters
    ----------
    types : mapping, optional
        Column -> Arrow type where the DDL's is narrower than the Avro field's (unsigned
        columns: their values are range-checked).
    computed : sequence of (column after which, Column), optional
        Columns that are no Avro field (``n_members`` = the number of members).
    skip : sequence of str, optional
        Avro values the table deliberately does not store.
    """
    types = dict(types or {})
    skipped = set(skip)
    columns = []
    for col in avro_columns(schema):
        if col.name in skipped:
            skipped.discard(col.name)
            continue
        if col.name in types:
            col = replace(col, type=types.pop(col.name))
        columns.append(col)
    for after, col in computed:
        at = next((i for i, c in enumerate(columns) if c.name == after), None)
        if at is None:
            raise ValueError(f"{table}: no column {after!r} to put {col.name!r} after")
        columns.insert(at + 1, col)
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"{table}: two values of {schema} flatten to one column name")
    if types or skipped:
        raise ValueError(f"{table}: no Avro column {sorted({*types, *skipped})} in {schema}")
    return TableSpec(table, schema, tuple(columns), tuple(skip))


FEATURES = table_spec("features", "heimdall.v1.Measurement")

OBSERVATIONS = table_spec(
    "observations",
    "heimdall.v1.Observation",
    types={"members.n_measurements": pa.list_(pa.uint32())},
    computed=[("window_end_ns", Column("n_members", count("members"), pa.uint16()))],
    skip=["tdoa_pairs.sigma_sys_s", "tdoa_pairs.quality", "tdoa_pairs.method"],
)

LOCALIZATIONS = table_spec(
    "localizations", "heimdall.v1.Localization", types={"n_receivers": pa.uint16()}
)

TRUTH = table_spec("truth", "heimdall.v1.Truth")

#: Topic role (field of ``TopicNames``) -> its table (the roles are named like the tables).
ROUTES: dict[str, TableSpec] = {s.table: s for s in (FEATURES, OBSERVATIONS, LOCALIZATIONS, TRUTH)}

#: Columns the sink inserts, by table.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {s.table: s.names for s in ROUTES.values()}


def route_of(role: str, schema: str) -> TableSpec:
    """The table of the topic with ``role``; :class:`InvalidEventError` if ``schema`` is not
    the record that topic carries."""
    spec = ROUTES.get(role)
    if spec is None:
        raise InvalidEventError(f"the ClickHouse sink does not store topic role {role!r}")
    if schema != spec.schema:
        raise InvalidEventError(f"the {role} topic carries {spec.schema}, not {schema}")
    return spec


# --------------------------------------------------------------------------------------------
# Mapping
# --------------------------------------------------------------------------------------------


def _array(col: Column, wires: Sequence[Wire]) -> pa.Array:
    """One column of the batch (unsigned columns built signed, range-checked afterwards)."""
    values = list(map(col.read, wires))
    unsigned = _unsigned(col.type)
    typ = col.type
    if unsigned is not None:
        typ = pa.list_(pa.int64()) if pa.types.is_list(col.type) else pa.int64()
    return pa.array(values, type=typ)


def _reason(col: Column, exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"field {exc.args[0]!r} is missing"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"field {col.name!r}: {text[:200]}"


_BUILD_ERRORS = (KeyError, TypeError, ValueError, IndexError, AttributeError, pa.ArrowException)


def _build(spec: TableSpec, wires: Sequence[Wire]) -> list[pa.Array]:
    """The columns of ``wires``; raises :class:`InvalidEventError` naming the column."""
    arrays = []
    for col in spec.columns:
        try:
            arrays.append(_array(col, wires))
        except _BUILD_ERRORS as exc:
            raise InvalidEventError(_reason(col, exc)) from exc
    return arrays


def build_columns(spec: TableSpec, wires: Sequence[Wire]) -> tuple[pa.Table, dict[int, str]]:
    """Map a batch of wire dicts (events of ``spec.schema``) to the table's columns.

    Returns the Arrow table of the good rows, in order, and ``{index in wires: reason}`` of
    the rows left out.
    """
    rejected: dict[int, str] = {}
    try:
        arrays = _build(spec, wires)
    except InvalidEventError:  # find the rows at fault, one by one
        for i, w in enumerate(wires):
            try:
                _build(spec, [w])
            except InvalidEventError as exc:
                rejected[i] = str(exc)
        wires = [w for i, w in enumerate(wires) if i not in rejected]
        arrays = _build(spec, wires)
    index = np.array([i for i in range(len(wires) + len(rejected)) if i not in rejected])
    bad = np.zeros(len(wires), dtype=bool)
    for col, arr in zip(spec.columns, arrays, strict=True):
        unsigned = _unsigned(col.type)
        checks = [in_range(unsigned)] if unsigned is not None else []
        if col.check is not None:
            checks.append(col.check)
        for check in checks:
            mask, why = check(col.name, arr)
            for row in np.flatnonzero(mask & ~bad):
                rejected[int(index[row])] = why(int(row))
            bad |= mask
    table = pa.Table.from_arrays(arrays, schema=_send_schema(spec, arrays))
    if bad.any():
        table = table.filter(pa.array(~bad))
    return table.cast(spec.arrow_schema), dict(sorted(rejected.items()))


def _send_schema(spec: TableSpec, arrays: Sequence[pa.Array]) -> pa.Schema:
    return pa.schema([(c.name, a.type) for c, a in zip(spec.columns, arrays, strict=True)])


def _invalid(schema: str, err: Any) -> str:
    """One line from a fastavro ``ValidationErrorData``."""
    record, _, leaf = str(err.field).rpartition(".")
    if not leaf:
        return f"the event is not a {schema} record: {type(err.datum).__name__}"
    where = "" if record == schema else f" (in {record})"
    if err.datum is None:
        return f"field {leaf!r} is missing{where}"
    kind = err.schema if isinstance(err.schema, str) else err.schema.get("type", "?")
    return f"field {leaf!r} = {str(err.datum)[:60]!r} is not an Avro {kind}{where}"


def as_decoded(schema: str, wire_dict: Any) -> dict[str, Any]:
    """``wire_dict`` as the Avro decoder would return it: checked against the schema
    (:class:`InvalidEventError` naming the first field at fault), defaults filled in."""
    entry = catalog.current().entries[schema]
    try:
        validate(wire_dict, entry.wire, raise_errors=True)
    except ValidationError as exc:
        raise InvalidEventError(_invalid(schema, exc.errors[0])) from None
    buf = io.BytesIO()
    schemaless_writer(buf, entry.wire, wire_dict)
    buf.seek(0)
    return cast(dict[str, Any], schemaless_reader(buf, entry.wire, None))


def map_event(role: str, schema: str, wire_dict: Wire) -> tuple[str, tuple[Any, ...]]:
    """``(table, row)`` for one event (wire dict) of the topic with ``role``.

    The row is in ``TABLE_COLUMNS[table]`` order, UUIDs as ``uuid.UUID``, for
    ``client.insert``. The dict goes through :func:`as_decoded` first (a dict built by hand
    gets what decoding guarantees). Raises :class:`InvalidEventError` (one line naming the
    field) when the schema is not the topic's or a value does not fit its column.
    """
    spec = route_of(role, schema)
    table, rejected = build_columns(spec, [as_decoded(spec.schema, wire_dict)])
    if rejected:
        raise InvalidEventError(rejected[0])
    row = list(table.to_pylist()[0].values())
    for i, col in enumerate(spec.columns):
        if col.check is uuid_text:
            row[i] = uuid.UUID(row[i])
        elif pa.types.is_map(col.type):
            row[i] = dict(row[i])
    return spec.table, tuple(row)
