"""Backward-compatibility check of Avro schemas (can the new schema read old data?).

:func:`check_backward` applies the Avro schema-resolution rules with the old schema as the
writer and the new one as the reader, structurally (every rule, every nested type), then
confirms with data: random records written with the old schema must decode with the new.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Mapping
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

from heimdall.schemas.catalog import SchemaEntry, expand, named_definitions

__all__ = ["check_backward"]

SchemaLike = SchemaEntry | Mapping[str, Any] | str

# writer type -> reader types it is promoted to (Avro specification, "Schema Resolution").
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}


def _self_contained(schema: SchemaLike) -> Any:
    """A self-contained schema (JSON) with fully qualified names."""
    if isinstance(schema, SchemaEntry):
        return schema.expanded
    raw: Any = json.loads(schema) if isinstance(schema, str) else schema
    named: dict[str, Any] = {}
    return expand(parse_schema(raw, named_schemas=named), named)


def check_backward(
    new_schema: SchemaLike, old_schema: SchemaLike, *, samples: int = 200, seed: int = 0
) -> list[str]:
    """Problems that stop ``new_schema`` from reading data written with ``old_schema``.

    Parameters
    ----------
    new_schema, old_schema : SchemaEntry, dict or JSON str
        Self-contained schemas (a :class:`SchemaEntry` stands for its expanded schema).
    samples : int
        Random records of the old schema written and read back with the new (0 = skip).
    seed : int
        Seed of those records (the global ``random`` state is restored afterwards).

    Returns
    -------
    list of str
        One line per problem, naming the path (``IqChunk.position.alt_m``); empty when
        compatible.
    """
    problems: list[str] = []
    try:
        new = _self_contained(new_schema)
    except Exception as exc:
        return [f"new schema is not valid Avro: {' '.join(str(exc).split())}"]
    try:
        old = _self_contained(old_schema)
    except Exception as exc:
        return [f"old schema is not valid Avro: {' '.join(str(exc).split())}"]
    _resolve(old, new, named_definitions(old), named_definitions(new), _root(new), problems, set())
    if not problems and samples > 0:
        problems.extend(_round_trip(old, new, samples, seed))
    return problems


def _root(schema: Any) -> str:
    if isinstance(schema, dict) and "name" in schema:
        return str(schema["name"]).rsplit(".", 1)[-1]
    return "<root>"


def _deref(node: Any, names: Mapping[str, dict[str, Any]]) -> Any:
    """Replace a name reference by its definition; unwrap ``{"type": <primitive>}``."""
    if isinstance(node, str):
        return names.get(node, node)
    if isinstance(node, dict) and isinstance(node["type"], dict | list):
        return _deref(node["type"], names)
    if isinstance(node, dict) and node["type"] in names:
        return names[node["type"]]
    return node


def _kind(node: Any) -> str:
    if isinstance(node, list):
        return "union"
    if isinstance(node, dict):
        return str(node["type"])
    return str(node)


def _describe(node: Any) -> str:
    kind = _kind(node)
    if isinstance(node, dict) and "name" in node:
        return f"{kind} {node['name']}"
    return kind


def _matches(writer: Any, reader: Any, wn: Mapping[str, Any], rn: Mapping[str, Any]) -> bool:
    """Whether a writer branch and a reader branch match (first step of union resolution)."""
    w, r = _deref(writer, wn), _deref(reader, rn)
    wk, rk = _kind(w), _kind(r)
    if wk in ("record", "error", "enum", "fixed"):
        return wk == rk and _same_name(w, r)
    return wk == rk or rk in _PROMOTIONS.get(wk, ())


def _same_name(writer: Mapping[str, Any], reader: Mapping[str, Any]) -> bool:
    w = str(writer["name"])
    aliases = set(reader.get("aliases", []))
    return w == reader["name"] or w in aliases or w.rsplit(".", 1)[-1] in aliases


def _resolve(
    writer: Any,
    reader: Any,
    wn: Mapping[str, Any],
    rn: Mapping[str, Any],
    path: str,
    problems: list[str],
    visiting: set[tuple[str, str]],
) -> None:
    """Append to ``problems`` why ``reader`` cannot read what ``writer`` wrote."""
    w, r = _deref(writer, wn), _deref(reader, rn)
    wk, rk = _kind(w), _kind(r)

    if wk == "union":
        for branch in w:
            if rk == "union":
                if not any(_matches(branch, rb, wn, rn) for rb in r):
                    problems.append(
                        f"{path}: old union branch {_describe(_deref(branch, wn))} has no "
                        "match in the new union"
                    )
                    continue
                target = next(rb for rb in r if _matches(branch, rb, wn, rn))
                _resolve(branch, target, wn, rn, path, problems, visiting)
            else:
                _resolve(branch, r, wn, rn, path, problems, visiting)
        return
    if rk == "union":
        match = next((rb for rb in r if _matches(w, rb, wn, rn)), None)
        if match is None:
            problems.append(f"{path}: old type {_describe(w)} is not in the new union")
        else:
            _resolve(w, match, wn, rn, path, problems, visiting)
        return

    if wk != rk:
        if rk not in _PROMOTIONS.get(wk, ()):
            problems.append(f"{path}: type changed from {_describe(w)} to {_describe(r)}")
        return

    if wk in ("record", "error", "enum", "fixed") and not _same_name(w, r):
        problems.append(f"{path}: named type changed from {w['name']} to {r['name']}")
        return

    if wk in ("record", "error"):
        key = (str(w["name"]), str(r["name"]))
        if key in visiting:  # recursive type already being checked
            return
        visiting.add(key)
        old_fields = {f["name"]: f for f in w["fields"]}
        for f in r["fields"]:
            names = [f["name"], *f.get("aliases", [])]
            old = next((old_fields[n] for n in names if n in old_fields), None)
            fpath = f"{path}.{f['name']}"
            if old is None:
                if "default" not in f:
                    problems.append(f"{fpath}: new field without a default")
                continue
            _resolve(old["type"], f["type"], wn, rn, fpath, problems, visiting)
        visiting.discard(key)
    elif wk == "enum":
        missing = [s for s in w["symbols"] if s not in r["symbols"]]
        if missing and "default" not in r:
            problems.append(
                f"{path}: enum {r['name']} lost symbol(s) {', '.join(missing)} and has no default"
            )
    elif wk == "fixed":
        if w["size"] != r["size"]:
            problems.append(f"{path}: fixed {r['name']} size changed {w['size']} -> {r['size']}")
    elif wk == "array":
        _resolve(w["items"], r["items"], wn, rn, f"{path}[]", problems, visiting)
    elif wk == "map":
        _resolve(w["values"], r["values"], wn, rn, f"{path}{{}}", problems, visiting)


def _round_trip(old: Any, new: Any, samples: int, seed: int) -> list[str]:
    """Write random records with ``old``, read them with ``new``; return the failures."""
    writer = parse_schema(old, named_schemas={})
    reader = parse_schema(new, named_schemas={})
    state = random.getstate()
    random.seed(seed)
    try:
        records = list(generate_many(writer, samples))
    finally:
        random.setstate(state)
    failures: dict[str, None] = {}
    for rec in records:
        buf = io.BytesIO()
        schemaless_writer(buf, writer, rec)
        buf.seek(0)
        try:
            schemaless_reader(buf, writer, reader)
        except Exception as exc:
            failures[f"{_root(new)}: old data does not decode: {' '.join(str(exc).split())}"] = None
    return list(failures)
