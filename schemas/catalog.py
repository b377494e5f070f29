"""The Avro contract as loaded objects: every record schema with its fingerprint.

The ``.avsc`` files in ``schemas/avsc/`` are the current schemas; ``schemas/released/<vN>/``
holds frozen copies of every released version. A file may use a named type defined in
another file of the same directory (``heimdall.v1.Position`` and ``heimdall.v1.ClockSource``
live in ``iq_chunk.avsc``); the loader parses the files in dependency order with one shared
``named_schemas`` per directory, so versions never see each other's definitions.

For each record schema a :class:`SchemaEntry` gives

* ``parsed``: the fastavro parsed schema (what the writer and the reader take),
* ``expanded`` / ``expanded_json``: a self-contained schema, each named type defined at its
  first use and referred to by full name after that (valid for any Avro parser, and what is
  registered with a Schema Registry),
* ``canonical``: its Parsing Canonical Form, and ``fingerprint``: the CRC-64-AVRO fingerprint
  of that form as the 8 little-endian bytes of the single-object encoding header.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from fastavro.schema import (
    SchemaParseException,
    UnknownType,
    fingerprint,
    parse_schema,
    to_parsing_canonical_form,
)

from heimdall.core.errors import SchemaError

__all__ = [
    "CURRENT",
    "TOPIC_SCHEMAS",
    "Catalog",
    "SchemaEntry",
    "current",
    "expand",
    "load_catalog",
    "named_definitions",
    "released",
    "schema_for_role",
    "strip_uuid",
]

#: Name of the version made of the files in ``schemas/avsc/``.
CURRENT = "current"

#: Topic role (a field of ``heimdall.core.settings.TopicNames``) -> record full name of its
#: values. ``dlq`` is absent: dead letters carry the rejected bytes untouched.
TOPIC_SCHEMAS: Mapping[str, str] = {
    "iq": "heimdall.v1.IqChunk",
    "features": "heimdall.v1.Measurement",
    "observations": "heimdall.v1.Observation",
    "localizations": "heimdall.v1.Localization",
    "truth": "heimdall.v1.Truth",
    "receivers": "heimdall.v1.ReceiverStatus",
    "models": "heimdall.v1.ModelPointer",
    "waterfall": "heimdall.v1.WaterfallRow",
    "audio": "heimdall.v1.AudioChunk",
    "snippets": "heimdall.v1.IqChunk",
}

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
_NAMED = frozenset({"record", "error", "enum", "fixed"})


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    """One record schema of one version.

    Attributes
    ----------
    name : str
        Full name, e.g. ``heimdall.v1.IqChunk``.
    version : str
        ``"current"`` or the released version (``"v1"``, ...).
    file : str
        The ``.avsc`` file it was read from.
    parsed : dict
        fastavro parsed schema (named types resolved through the version's named schemas).
    wire : dict
        Parsed schema with the same canonical form but without ``uuid`` logical types, so
        fastavro reads UUIDs as ``str`` (Heimdall ids are strings) instead of ``uuid.UUID``.
    expanded : dict
        Self-contained schema (no references to other files).
    expanded_json : str
        ``expanded`` as compact JSON, for a Schema Registry.
    canonical : str
        Parsing Canonical Form of the schema.
    fingerprint : bytes
        CRC-64-AVRO of ``canonical``, 8 bytes little-endian (as in the single-object header).
    """

    name: str
    version: str
    file: str
    parsed: dict[str, Any] = field(repr=False)
    wire: dict[str, Any] = field(repr=False)
    expanded: dict[str, Any] = field(repr=False)
    expanded_json: str = field(repr=False)
    canonical: str = field(repr=False)
    fingerprint: bytes

    @property
    def fingerprint_int(self) -> int:
        """The fingerprint as the unsigned 64-bit integer of the Avro specification."""
        return int.from_bytes(self.fingerprint, "little")

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint as ``0x`` + 16 hex digits of :attr:`fingerprint_int`."""
        return f"0x{self.fingerprint_int:016x}"


@dataclass(frozen=True, slots=True)
class Catalog:
    """The record schemas of one version, by full name."""

    version: str
    entries: Mapping[str, SchemaEntry]

    def __getitem__(self, name: str) -> SchemaEntry:
        try:
            return self.entries[name]
        except KeyError:
            raise SchemaError(f"no record schema {name!r} in version {self.version}") from None

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def __iter__(self) -> Iterator[SchemaEntry]:
        return iter(self.entries.values())

    def __len__(self) -> int:
        return len(self.entries)

    def names(self) -> list[str]:
        return sorted(self.entries)


def expand(parsed: Any, named: Mapping[str, Any] | None = None) -> Any:
    """Return a self-contained copy of a fastavro parsed schema.

    Each named type is defined where it is first used and referred to by its full name
    afterwards (defining it twice is an error for the Java parser that a registry runs).
    fastavro's own ``expand_schema`` inlines every use and keeps its private keys.
    ``named`` defaults to the named schemas fastavro keeps in a parsed record.
    """
    if named is None:
        named = parsed.get("__named_schemas", {}) if isinstance(parsed, dict) else {}
    return _expand(parsed, named, set())


def _expand(node: Any, named: Mapping[str, Any], seen: set[str]) -> Any:
    if isinstance(node, str):
        if node in _PRIMITIVES or node in seen:
            return node
        if node not in named:
            raise SchemaError(f"unknown named type {node!r}")
        return _expand(named[node], named, seen)
    if isinstance(node, list):
        return [_expand(branch, named, seen) for branch in node]
    out = {k: copy.deepcopy(v) for k, v in node.items() if not k.startswith("__")}
    kind = out["type"]
    if kind in _NAMED:
        seen.add(out["name"])
    if kind in ("record", "error"):
        out["fields"] = [
            {
                **{k: copy.deepcopy(v) for k, v in f.items() if not k.startswith("__")},
                "type": _expand(f["type"], named, seen),
            }
            for f in node["fields"]
        ]
    elif kind == "array":
        out["items"] = _expand(node["items"], named, seen)
    elif kind == "map":
        out["values"] = _expand(node["values"], named, seen)
    elif not (isinstance(kind, str) and kind in _PRIMITIVES | _NAMED):
        out["type"] = _expand(kind, named, seen)
    return out


def named_definitions(schema: Any) -> dict[str, dict[str, Any]]:
    """Full name -> definition of every named type in a self-contained schema, in order."""
    out: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for n in node:
                walk(n)
        elif isinstance(node, dict):
            kind = node.get("type")
            if kind in _NAMED:
                out[node["name"]] = node
            if kind in ("record", "error"):
                for f in node["fields"]:
                    walk(f["type"])
            elif kind == "array":
                walk(node["items"])
            elif kind == "map":
                walk(node["values"])
            elif isinstance(kind, dict | list):
                walk(kind)

    walk(schema)
    return out


def strip_uuid(node: Any) -> Any:
    """Copy of a schema without ``"logicalType": "uuid"`` (same canonical form)."""
    if isinstance(node, list):
        return [strip_uuid(n) for n in node]
    if isinstance(node, dict):
        return {
            k: strip_uuid(v) for k, v in node.items() if not (k == "logicalType" and v == "uuid")
        }
    return node


def _parse_in_order(sources: dict[str, Any], named: dict[str, Any], where: str) -> dict[str, Any]:
    """Parse ``sources`` (file -> JSON) in an order that defines names before their use."""
    pending = dict(sources)
    parsed: dict[str, Any] = {}
    while pending:
        progress = False
        errors: dict[str, str] = {}
        for fname, src in list(pending.items()):
            trial = dict(named)
            try:
                schema: Any = parse_schema(src, named_schemas=trial)
            except UnknownType as exc:
                errors[fname] = f"unknown type {exc.name}"
                continue
            except (SchemaParseException, ValueError, TypeError, KeyError) as exc:
                raise SchemaError(f"{where}/{fname}: invalid Avro schema: {exc}") from exc
            named.clear()
            named.update(trial)
            parsed[fname] = schema
            del pending[fname]
            progress = True
        if not progress:
            detail = "; ".join(f"{f}: {e}" for f, e in sorted(errors.items()))
            raise SchemaError(f"{where}: unresolved named types ({detail})")
    return parsed


def load_catalog(directory: Path | Traversable, version: str = CURRENT) -> Catalog:
    """Load every ``*.avsc`` file of ``directory`` as the schemas of ``version``.

    Non-record schemas (``dead_letter.avsc`` is plain ``bytes``) are parsed, so errors in them
    are reported, but not listed. Raises :class:`SchemaError` on unreadable or invalid files.
    """
    where = str(directory)
    sources: dict[str, Any] = {}
    for item in sorted(directory.iterdir(), key=lambda p: p.name):
        if not item.name.endswith(".avsc"):
            continue
        try:
            sources[item.name] = json.loads(item.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{where}/{item.name}: cannot read: {exc}") from exc
    if not sources:
        raise SchemaError(f"{where}: no .avsc files")
    parsed = _parse_in_order(sources, {}, where)
    wire = _parse_in_order({f: strip_uuid(s) for f, s in sources.items()}, {}, where)

    entries: dict[str, SchemaEntry] = {}
    for fname, schema in parsed.items():
        if not isinstance(schema, dict) or schema.get("type") not in ("record", "error"):
            continue
        expanded = expand(schema)
        canonical = to_parsing_canonical_form(expanded)
        entry = SchemaEntry(
            name=schema["name"],
            version=version,
            file=fname,
            parsed=schema,
            wire=wire[fname],
            expanded=expanded,
            expanded_json=json.dumps(expanded, separators=(",", ":")),
            canonical=canonical,
            fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
        )
        if entry.name in entries:
            raise SchemaError(f"{where}: record {entry.name} defined in two files")
        entries[entry.name] = entry
    return Catalog(version=version, entries=entries)


def _package_dir() -> Traversable:
    return files(__package__ or "heimdall.schemas")


@cache
def current() -> Catalog:
    """The schemas in ``schemas/avsc/`` (loaded once per process)."""
    return load_catalog(_package_dir() / "avsc", CURRENT)


@cache
def released() -> dict[str, Catalog]:
    """Every released version in ``schemas/released/``, oldest first (``v1``, ``v2``, ...)."""
    root = _package_dir() / "released"
    if not root.is_dir():
        return {}
    dirs = [d for d in root.iterdir() if d.is_dir() and d.name.startswith("v")]
    dirs.sort(key=lambda d: int(d.name[1:]) if d.name[1:].isdigit() else 1 << 30)
    return {d.name: load_catalog(d, d.name) for d in dirs}


def schema_for_role(role: str) -> SchemaEntry:
    """The current schema of the values of a topic role (``"iq"``, ``"features"``, ...)."""
    try:
        name = TOPIC_SCHEMAS[role]
    except KeyError:
        known = ", ".join(TOPIC_SCHEMAS)
        raise SchemaError(f"topic role {role!r} has no Avro schema (known: {known})") from None
    return current()[name]
