"""Decode many payloads at once, with the float arrays of a record read by numpy.

fastavro reads an ``array`` of ``float``/``double`` one item at a time into Python floats:
a Measurement's 256-bin PSD costs ~22 µs of its ~27 µs decode (2026-12, this machine). The
Avro binary encoding of such an array is a sequence of blocks (Avro 1.11 specification,
"Binary Encoding", Complex Types -- Arrays)::

    count : long (zig-zag varint); 0 ends the array
    [size : long]             -- present when count < 0: |count| items, then the block size
    items : |count| x 4 bytes (float) or 8 bytes (double), IEEE 754 little-endian

so a block is one ``numpy.frombuffer`` call. :class:`BatchDecoder` splits a writer schema at
its top-level float/double arrays: fastavro's schemaless reader reads the fields between them
(schemas of consecutive fields, read back to back from the same buffer), numpy the arrays.

Which payloads take that path: single-object encoded (``C3 01`` + fingerprint) with a
*current* schema -- what every Heimdall producer writes without a registry. Everything else
(Confluent framing, released schema versions that need resolution, unknown or malformed
headers) goes through :meth:`Serde.decode_dict <heimdall.schemas.serde.Serde.decode_dict>`,
which knows the registry and the released versions, with the same errors. Either way the
result is Serde's wire dict, except that a top-level float/double array is a 1-D numpy array
(``float32``/``float64``) instead of a list.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import numpy as np
from fastavro import parse_schema, schemaless_reader

from heimdall.core.errors import SchemaError
from heimdall.schemas import catalog
from heimdall.schemas.catalog import SchemaEntry
from heimdall.schemas.serde import SINGLE_OBJECT_MAGIC, Payload, Serde

__all__ = ["BatchDecoder", "RecordReader", "float_array_fields"]

_SO_HEADER = len(SINGLE_OBJECT_MAGIC) + 8
_ITEM_DTYPES: dict[str, np.dtype[Any]] = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}
_NEGATIVE_LENGTH = re.compile(r"Expected -\d+ bytes")  # fastavro's EOFError for a bad length


class WireDecoder(Protocol):
    """What :class:`BatchDecoder` needs of ``heimdall.schemas.serde.Serde``."""

    def decode_dict(self, data: bytes) -> tuple[str, dict[str, Any]]: ...


def _array_item(field_type: Any) -> str | None:
    """``"float"``/``"double"`` if the field is an array of them, else None."""
    if not isinstance(field_type, Mapping) or field_type.get("type") != "array":
        return None
    items = field_type.get("items")
    if isinstance(items, Mapping) and set(items) == {"type"}:
        items = items["type"]
    return items if isinstance(items, str) and items in _ITEM_DTYPES else None


def float_array_fields(entry: SchemaEntry) -> dict[str, np.dtype[Any]]:
    """Top-level fields of ``entry`` that are arrays of float/double, with their numpy dtype."""
    out: dict[str, np.dtype[Any]] = {}
    for f in entry.expanded["fields"]:
        item = _array_item(f["type"])
        if item is not None:
            out[f["name"]] = _ITEM_DTYPES[item]
    return out


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    """Zig-zag varint at ``pos`` -> (value, position after it); IndexError when truncated."""
    b = data[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
    return (n >> 1) ^ -(n & 1), pos


class RecordReader:
    """Reads the Avro body of one record schema (writer = reader): fastavro + numpy arrays.

    Parameters
    ----------
    entry : SchemaEntry
        The schema, as the catalog holds it (UUIDs are read as ``str``, as Serde does).
    """

    def __init__(self, entry: SchemaEntry) -> None:
        self.name = entry.name
        schema = catalog.strip_uuid(entry.expanded)  # names defined where first used
        named: dict[str, Any] = {}
        # the plan: (fastavro schema of a run of fields, None, None) or (None, name, dtype)
        plan: list[tuple[Any, Any, Any]] = []
        run: list[Any] = []

        def close_run() -> None:
            if run:
                record = {"type": "record", "name": f"{self.name}__part{len(plan)}",
                          "fields": list(run)}  # fmt: skip
                plan.append((parse_schema(record, named_schemas=named), None, None))
                run.clear()

        for f in schema["fields"]:
            item = _array_item(f["type"])
            if item is None:
                run.append(f)
            else:
                close_run()
                plan.append((None, f["name"], _ITEM_DTYPES[item]))
        close_run()
        self._plan = tuple(plan)
        self.float_arrays = {name: dt for _, name, dt in plan if name is not None and dt}

    def read(self, data: bytes, offset: int) -> dict[str, Any]:
        """The record whose body starts at ``offset`` and ends with ``data``."""
        buf = io.BytesIO(data)
        buf.seek(offset)
        out: dict[str, Any] = {}
        try:
            for schema, name, dtype in self._plan:
                if schema is not None:
                    out.update(schemaless_reader(buf, schema, None))  # type: ignore[arg-type]
                else:
                    pos, out[name] = self._read_array(data, buf.tell(), name, dtype)
                    buf.seek(pos)
        except EOFError as exc:
            what = "corrupt" if _NEGATIVE_LENGTH.search(str(exc)) else "truncated"
            raise SchemaError(f"{what} {self.name} body (current schema): {exc}") from exc
        except SchemaError:
            raise
        except Exception as exc:
            raise SchemaError(
                f"corrupt {self.name} body (current schema): {type(exc).__name__}: {exc}"
            ) from exc
        if buf.tell() != len(data):
            raise SchemaError(
                f"{len(data) - buf.tell()} byte(s) left over after the {self.name} body"
            )
        return out

    def _read_array(self, data: bytes, pos: int, name: Any, dtype: Any) -> tuple[int, np.ndarray]:
        """The blocks of one float/double array from ``pos``; (end position, values)."""
        blocks: list[np.ndarray] = []
        size = dtype.itemsize
        while True:
            try:
                count, pos = _read_long(data, pos)
                if count < 0:  # |count| items preceded by the block's size in bytes
                    count = -count
                    _, pos = _read_long(data, pos)
            except IndexError:
                raise SchemaError(
                    f"truncated {self.name} body (current schema): array {name!r} "
                    "ends inside a block header"
                ) from None
            if count == 0:
                break
            if pos + count * size > len(data):
                raise SchemaError(
                    f"truncated {self.name} body (current schema): array {name!r} needs "
                    f"{count * size} bytes, {len(data) - pos} left"
                )
            blocks.append(np.frombuffer(data, dtype, count, pos))
            pos += count * size
        if len(blocks) == 1:
            return pos, blocks[0]
        return pos, (np.concatenate(blocks) if blocks else np.empty(0, dtype))


class BatchDecoder:
    """Decode payloads (either framing) to ``(record name, wire dict)``, arrays as numpy.

    Parameters
    ----------
    serde : Serde
        Decodes what the fast path does not take (see the module doc). With another
        decoder than a :class:`~heimdall.schemas.serde.Serde`, every payload goes through it.
    """

    def __init__(self, serde: WireDecoder) -> None:
        self.serde = serde
        self._fast = isinstance(serde, Serde)
        self._current = catalog.current()
        self._headers = {
            SINGLE_OBJECT_MAGIC + e.fingerprint: e.name for e in self._current
        }  # fmt: skip
        self._readers: dict[bytes, RecordReader] = {}
        self._arrays = {e.name: float_array_fields(e) for e in self._current}

    def decode_dict(self, data: Payload) -> tuple[str, dict[str, Any]]:
        """One payload; raises :class:`SchemaError` (one line) as ``Serde.decode_dict`` does."""
        if self._fast and isinstance(data, bytes) and len(data) >= _SO_HEADER:
            header = data[:_SO_HEADER]
            reader = self._readers.get(header)
            if reader is None and header in self._headers:
                reader = self._readers[header] = RecordReader(
                    self._current.entries[self._headers[header]]
                )
            if reader is not None:
                return reader.name, reader.read(data, _SO_HEADER)
        name, wire = self.serde.decode_dict(data)  # type: ignore[arg-type]
        for field, dtype in self._arrays.get(name, {}).items():
            if field in wire:
                wire[field] = np.asarray(wire[field], dtype=dtype)
        return name, wire

    def decode_many(
        self, payloads: Iterable[Payload | None]
    ) -> list[tuple[str, dict[str, Any]] | SchemaError]:
        """Every payload, in order: its ``(name, wire dict)`` or the :class:`SchemaError`."""
        out: list[tuple[str, dict[str, Any]] | SchemaError] = []
        for data in payloads:
            try:
                if data is None:
                    raise SchemaError("payload is None (a tombstone?), not bytes")
                out.append(self.decode_dict(data))
            except SchemaError as exc:
                out.append(exc)
        return out
