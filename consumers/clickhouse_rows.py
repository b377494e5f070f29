"""How the ClickHouse sink turns wire dicts into the columns of the history tables.

Each table is declared once (:data:`ROUTES`): the Avro record its events must have and, column
by column (the columns of ``infra/clickhouse/schema.sql``), how to read the value from the wire
dict and the Arrow type it is sent as. Adding a field to a table means adding its column to
the DDL and one :class:`Column` line here.

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
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fastavro import schemaless_reader, schemaless_writer
from fastavro.validation import ValidationError, validate

from heimdall.core.errors import InvalidEventError
from heimdall.schemas import catalog

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


def uuid_column(name: str, *path: str) -> Column:
    return Column(name, wire(name, *path), pa.string(), uuid_text)


def position_columns(prefix: str = "", of: str | None = None) -> tuple[Column, ...]:
    """``lat_deg, lon_deg, alt_m`` of the record's ``position`` (or of each ``of`` member)."""
    read = (lambda *p: each(of, *p)) if of else wire
    typ = pa.list_(pa.float64()) if of else pa.float64()
    return (
        Column(f"{prefix}lat_deg", read("position", "lat_deg"), typ, LATITUDE),
        Column(f"{prefix}lon_deg", read("position", "lon_deg"), typ, LONGITUDE),
        Column(f"{prefix}alt_m", read("position", "alt_m"), typ),
    )


@dataclass(frozen=True)
class TableSpec:
    """A history table: the Avro record its events have, and its columns."""

    table: str
    schema: str
    columns: tuple[Column, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([(c.name, c.type) for c in self.columns])


F64, I64, STR, BOOL = pa.float64(), pa.int64(), pa.string(), pa.bool_()
F64S, STRS = pa.list_(F64), pa.list_(STR)

FEATURES = TableSpec("features", "heimdall.v1.Measurement", (
    uuid_column("event_id"),
    uuid_column("chunk_id"),
    Column("receiver_id", wire("receiver_id"), STR),
    Column("t_ns", wire("t_ns"), I64),
    Column("duration_s", wire("duration_s"), F64),
    Column("clock", wire("clock"), STR),
    *position_columns(),
    Column("channel_id", wire("channel_id"), STR),
    Column("channel_freq_hz", wire("channel_freq_hz"), F64),
    Column("channel_bw_hz", wire("channel_bw_hz"), F64),
    Column("power_dbm", wire("power_dbm"), F64),
    Column("noise_floor_dbm_hz", wire("noise_floor_dbm_hz"), F64),
    Column("snr_db", wire("snr_db"), F64),
    Column("freq_offset_hz", wire("freq_offset_hz"), F64),
    Column("occupied_bw_hz", wire("occupied_bw_hz"), F64),
    Column("detected", wire("detected"), BOOL),
    Column("psd_dbm_hz", wire("psd_dbm_hz"), pa.list_(pa.float32())),
    Column("psd_bin_hz", wire("psd_bin_hz"), F64),
    Column("chunk_published_ns", wire("chunk_published_ns"), I64),
    Column("published_ns", wire("published_ns"), I64),
))  # fmt: skip

OBSERVATIONS = TableSpec("observations", "heimdall.v1.Observation", (
    uuid_column("event_id"),
    Column("channel_id", wire("channel_id"), STR),
    Column("channel_freq_hz", wire("channel_freq_hz"), F64),
    Column("window_start_ns", wire("window_start_ns"), I64),
    Column("window_end_ns", wire("window_end_ns"), I64),
    Column("n_members", count("members"), pa.uint16()),
    Column("members.receiver_id", each("members", "receiver_id"), STRS),
    *position_columns("members.", of="members"),
    Column("members.clock", each("members", "clock"), STRS),
    Column("members.t_ns", each("members", "t_ns"), pa.list_(I64)),
    Column("members.power_dbm", each("members", "power_dbm"), F64S),
    Column("members.power_std_db", each("members", "power_std_db"), F64S),
    Column("members.snr_db", each("members", "snr_db"), F64S),
    Column("members.noise_floor_dbm_hz", each("members", "noise_floor_dbm_hz"), F64S),
    Column("members.freq_offset_hz", each("members", "freq_offset_hz"), F64S),
    Column("members.n_measurements", each("members", "n_measurements"), pa.list_(pa.uint32())),
    Column("members.measurement_ids", each("members", "measurement_ids"), pa.list_(STRS)),
    Column("tdoa_pairs.receiver_a", each("tdoa_pairs", "receiver_a"), STRS),
    Column("tdoa_pairs.receiver_b", each("tdoa_pairs", "receiver_b"), STRS),
    Column("tdoa_pairs.tdoa_s", each("tdoa_pairs", "tdoa_s"), F64S),
    Column("tdoa_pairs.sigma_s", each("tdoa_pairs", "sigma_s"), F64S),
    Column("latest_chunk_published_ns", wire("latest_chunk_published_ns"), I64),
    Column("upstream_latency_s", wire("upstream_latency_s"), F64),
    Column("published_ns", wire("published_ns"), I64),
))  # fmt: skip

LOCALIZATIONS = TableSpec("localizations", "heimdall.v1.Localization", (
    uuid_column("event_id"),
    uuid_column("observation_id"),
    Column("channel_id", wire("channel_id"), STR),
    Column("t_ns", wire("t_ns"), I64),
    *position_columns(),
    Column("cov_ee_m2", wire("cov_ee_m2"), F64),
    Column("cov_en_m2", wire("cov_en_m2"), F64),
    Column("cov_nn_m2", wire("cov_nn_m2"), F64),
    Column("method", wire("method"), STR),
    Column("model_version", wire("model_version"), STR),
    Column("n_receivers", wire("n_receivers"), pa.uint16()),
    Column("converged", wire("converged"), BOOL),
    Column("params", wire("params"), pa.map_(STR, F64)),
    Column("processing_latency_s", wire("processing_latency_s"), F64),
    Column("published_ns", wire("published_ns"), I64),
))  # fmt: skip

TRUTH = TableSpec("truth", "heimdall.v1.Truth", (
    uuid_column("event_id"),
    Column("source_id", wire("source_id"), STR),
    Column("t_ns", wire("t_ns"), I64),
    *position_columns(),
    Column("channel_id", wire("channel_id"), STR),
    Column("freq_hz", wire("freq_hz"), F64),
    Column("tx_power_dbm", wire("tx_power_dbm"), F64),
    Column("waveform", wire("waveform"), STR),
    Column("transmitting", wire("transmitting"), BOOL),
    Column("velocity_enu_mps", wire("velocity_enu_mps"), F64S),
))  # fmt: skip

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
