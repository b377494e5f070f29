"""Write the event dataclasses from the ``.avsc`` files: ``schemas/events_generated.py``.

``python -m heimdall.schemas.codegen`` (``make schemas``) rewrites the module; ``--check``
exits 1 if it is out of date with the ``.avsc`` files (a unit test does the same). For each
Avro enum the module has a ``StrEnum`` (member names the symbols upper-cased); for each record
``<Name>Fields``, a frozen, slotted, keyword-only dataclass on
:class:`~heimdall.schemas.wire.WireModel` whose fields are the record's, in its order:

* names: the Avro field names (except the :data:`OVERRIDES`);
* types: ``boolean`` ``bool``, ``int``/``long`` ``int``, ``float``/``double`` ``float``,
  ``string`` ``str``, ``bytes`` ``bytes``, enum its ``StrEnum``, record its model class
  (:mod:`heimdall.schemas.models`), ``array`` ``tuple[T, ...]``, ``map``
  ``Mapping[str, T]``, ``["null", T]`` ``T | None``;
* defaults: the Avro default (``[]`` as ``()``, ``{}`` as an empty dict); a field
  ``event_id`` without one gets a new UUIDv7 (:func:`heimdall.core.ids.new_event_id`).

The models of :mod:`heimdall.schemas.models` subclass these and add behaviour (validation,
derived quantities, array equality); a new Avro field needs no hand-written Python.
"""

from __future__ import annotations

import argparse
import json
import keyword
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from heimdall.schemas.wire import named_types

__all__ = ["OVERRIDES", "PyField", "generate", "main", "target"]


@dataclass(frozen=True, slots=True)
class PyField:
    """A model field that differs from its wire field: its Python name and type.

    ``array``: the value is a numpy array (the model compares it with ``np.array_equal``;
    the generated class then leaves ``__eq__`` to the model). The conversion is the model's
    :class:`~heimdall.schemas.wire.FieldConverter` of the same wire field.
    """

    name: str
    type: str
    array: bool = True


#: (record full name, wire field) -> the model's field, where the model deviates from the wire.
OVERRIDES: dict[tuple[str, str], PyField] = {
    ("heimdall.v1.IqChunk", "samples"): PyField("iq", "npt.NDArray[np.complex64]"),
    ("heimdall.v1.WaterfallRow", "values"): PyField("values", "npt.NDArray[np.float32]"),
    ("heimdall.v1.AudioChunk", "samples"): PyField("samples", "npt.NDArray[np.int16]"),
}

_PRIMITIVE_TYPES = {
    "null": "None", "boolean": "bool", "int": "int", "long": "int", "float": "float",
    "double": "float", "string": "str", "bytes": "bytes",
}  # fmt: skip

_HEADER = '''\
"""GENERATED from ``schemas/avsc/*.avsc`` by ``heimdall.schemas.codegen`` -- do not edit.

Run ``make schemas`` after changing a ``.avsc`` file. The event models are the classes of
:mod:`heimdall.schemas.models`, which subclass these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from heimdall.core.ids import new_event_id
from heimdall.schemas.wire import WireModel

if TYPE_CHECKING:
    from heimdall.schemas.models import (
{models}
    )

__all__ = [
{all}
]
'''


def target() -> Path:
    """The generated module's path."""
    return Path(__file__).resolve().parent / "events_generated.py"


def _short(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _annotation(avro: Any, named: dict[str, Any]) -> str:
    if isinstance(avro, str):
        if avro in _PRIMITIVE_TYPES:
            return _PRIMITIVE_TYPES[avro]
        return _short(avro)
    if isinstance(avro, list):
        parts = [_annotation(b, named) for b in avro if b != "null"]
        return " | ".join(parts) + (" | None" if "null" in avro else "")
    kind = avro["type"]
    if kind in ("record", "enum"):
        return _short(avro["name"])
    if kind == "array":
        return f"tuple[{_annotation(avro['items'], named)}, ...]"
    if kind == "map":
        return f"Mapping[str, {_annotation(avro['values'], named)}]"
    return _annotation(kind, named)


def _resolve(avro: Any, named: dict[str, Any]) -> Any:
    return named.get(avro, avro) if isinstance(avro, str) else avro


def _default(record: str, f: dict[str, Any], named: dict[str, Any]) -> str | None:
    """Python source of the field's default, or None when it has none."""
    if "default" not in f:
        return "field(default_factory=new_event_id)" if f["name"] == "event_id" else None
    value = f["default"]
    avro = _resolve(f["type"], named)
    if isinstance(avro, list):  # the default is of the first branch
        avro = _resolve(avro[0], named)
    kind = avro["type"] if isinstance(avro, dict) else avro
    if kind == "enum":
        return f"{_short(avro['name'])}.{value.upper()}"
    if kind == "array":
        return f"({', '.join(map(_literal, value))},)" if value else "()"
    if kind == "map":
        if value:
            raise ValueError(f"{record}.{f['name']}: a non-empty map default is not supported")
        return "field(default_factory=dict)"
    if kind in ("record", "fixed", "bytes"):
        raise ValueError(f"{record}.{f['name']}: a default of Avro type {kind} is not supported")
    return _literal(value)


def _literal(value: Any) -> str:
    """Python source of a JSON value (strings in double quotes, as the formatter writes)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _doc(text: str, indent: str = "    ") -> str:
    body = textwrap.fill(" ".join(text.split()), 92 - len(indent), break_on_hyphens=False)
    return textwrap.indent(f'"""{body}\n"""' if "\n" in body else f'"""{body}"""', indent)


def _enum(avro: dict[str, Any]) -> str:
    name = avro["name"]
    symbols = ", ".join(avro["symbols"])
    doc = avro.get("doc") or f"Avro enum ``{name}``: {symbols}."
    lines = [f"class {_short(name)}(StrEnum):", _doc(doc), ""]
    lines += [f'    {s.upper()} = "{s}"' for s in avro["symbols"]]
    return "\n".join(lines)


def _field_doc(f: dict[str, Any], annotation: str, py: str) -> list[str]:
    out = [f"{py} : {annotation}"]
    if f.get("doc"):
        wrapped = textwrap.wrap(" ".join(f["doc"].split()), 88, break_on_hyphens=False)
        out += [f"    {line}" for line in wrapped]
    return out


def _record(avro: dict[str, Any], named: dict[str, Any]) -> str:
    name = avro["name"]
    lines: list[str] = []
    arrays = False
    docs = ["Parameters", "----------"]
    for f in avro["fields"]:
        if keyword.iskeyword(f["name"]):
            raise ValueError(f"{name}.{f['name']}: a Python keyword cannot be a model field")
        over = OVERRIDES.get((name, f["name"]))
        py = over.name if over else f["name"]
        annotation = over.type if over else _annotation(f["type"], named)
        arrays = arrays or bool(over and over.array)
        default = _default(name, f, named)
        lines.append(f"    {py}: {annotation}" + ("" if default is None else f" = {default}"))
        docs += _field_doc(f, annotation, py)
    summary = avro.get("doc") or f"Avro record ``{name}``."
    head = f"Fields of ``{name}``: {summary}"
    doc = "\n".join([textwrap.fill(" ".join(head.split()), 88, break_on_hyphens=False), "", *docs])
    eq = ", eq=False" if arrays else ""
    return "\n".join([
        f"@dataclass(frozen=True, slots=True, kw_only=True{eq})",
        f"class {_short(name)}Fields(WireModel):",
        textwrap.indent(f'"""{doc}\n"""', "    ").replace("    \n", "\n"),
        "",
        f'    SCHEMA: ClassVar[str] = "{name}"',
        "",
        *lines,
    ])  # fmt: skip


def _order(named: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Enums and records in the order they are first defined across the files."""
    enums: list[str] = []
    records: list[str] = []
    for full, avro in named.items():
        (enums if avro["type"] == "enum" else records).append(full)
    return enums, records


def _nested(named: dict[str, Any]) -> set[str]:
    """Records used as the type of a field (their annotations name the model classes)."""
    out: set[str] = set()

    def walk(t: Any) -> None:
        if isinstance(t, str):
            if t in named and named[t]["type"] == "record":
                out.add(t)
        elif isinstance(t, list):
            for b in t:
                walk(b)
        elif t["type"] == "record":
            out.add(t["name"])
        elif t["type"] == "array":
            walk(t["items"])
        elif t["type"] == "map":
            walk(t["values"])

    for avro in named.values():
        for f in avro.get("fields", ()):
            walk(f["type"])
    return out


def generate() -> str:
    """The source of ``events_generated.py`` for the current ``.avsc`` files."""
    named = named_types()
    enums, records = _order(named)
    names = ["ENUMS"] + [_short(n) for n in enums] + [f"{_short(n)}Fields" for n in records]
    parts = [
        _HEADER.format(
            models="\n".join(f"        {_short(n)}," for n in sorted(_nested(named), key=_short)),
            all="\n".join(f'    "{n}",' for n in sorted(names, key=lambda n: (not n.isupper(), n))),
        )
    ]
    for n in enums:
        parts.append(_enum(named[n]))
    for n in records:
        parts.append(_record(named[n], named))
    enum_map = "\n".join(f'    "{n}": {_short(n)},' for n in enums)
    parts.append(
        "#: Avro full name -> StrEnum of every Avro enum.\n"
        f"ENUMS: dict[str, type[StrEnum]] = {{\n{enum_map}\n}}"
    )
    return "\n\n\n".join(p.rstrip("\n") for p in parts) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m heimdall.schemas.codegen", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the module is stale")
    args = parser.parse_args(argv)
    source, path = generate(), target()
    current = path.read_text(encoding="utf-8") if path.exists() else ""
    if args.check:
        if current != source:
            print(f"{path.name} is out of date with the .avsc files: run `make schemas`")
            return 1
        return 0
    if current != source:
        path.write_text(source, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
