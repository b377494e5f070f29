"""One generic conversion between the event models and their Avro wire dicts.

Every event model (:mod:`heimdall.schemas.models`) derives from a dataclass generated from its
``.avsc`` record (:mod:`heimdall.schemas.events_generated`, written by
:mod:`heimdall.schemas.codegen`) and from :class:`WireModel`, which converts it to the wire
dict the serde writes and back, field by field, by the field's Avro type:

==========================  ===============================  ==============================
Avro type                   model -> wire                    wire -> model
==========================  ===============================  ==============================
primitive, ``bytes``, uuid  as is                            as is
enum                        ``Enum(v).value``                ``Enum(x)`` (a ``StrEnum``)
record                      ``v.to_dict()``                  ``Model.from_dict(x)``
array                       ``list`` (items converted)       ``tuple`` (items converted)
map                         ``dict`` (values converted)      ``dict`` (values converted)
``["null", T]``             ``None`` or as ``T``             ``None`` or as ``T``
==========================  ===============================  ==============================

``Enum(v).value`` lets a plain string stand for a symbol, as the hand-written models allowed.
Where a model deviates from its wire (a numpy array for a ``bytes`` field), the model
declares a :class:`FieldConverter` for that field in ``WIRE_FIELDS``; the field's Python name
and type are declared for the generator in ``codegen.OVERRIDES``.

The wire dict has every field of the record (``from_dict`` takes a complete dict, as decoded;
a dict built by hand gets its defaults from :func:`heimdall.consumers.clickhouse_rows.as_decoded`
or the serde).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, cast

__all__ = ["FieldConverter", "WireModel", "named_types", "register"]


@dataclass(frozen=True, slots=True)
class FieldConverter:
    """How a model field that is not its wire value is converted (see the module doc).

    Attributes
    ----------
    attr : str
        The model's field (``iq`` for the wire's ``samples`` of an IQ chunk).
    to_wire : callable
        ``to_wire(model) -> wire value`` (it may read other fields, e.g. the sample format).
    from_wire : callable
        ``from_wire(wire dict) -> model value``.
    """

    attr: str
    to_wire: Callable[[Any], Any]
    from_wire: Callable[[Mapping[str, Any]], Any]


#: Avro full name -> the class that represents it (the domain model once registered).
_CLASSES: dict[str, type[Any]] = {}


def register(*classes: type[WireModel]) -> None:
    """Make ``classes`` the Python types of their Avro records (nested values are built as
    these: the models of :mod:`heimdall.schemas.models`, not their generated bases)."""
    for cls in classes:
        _CLASSES[cls.SCHEMA] = cls


def named_types() -> dict[str, Any]:
    """Every named Avro type (record or enum) of the current schemas, by full name, in the
    order the files define them."""
    from heimdall.schemas import catalog

    out: dict[str, Any] = {}
    for entry in catalog.current():
        for name, definition in catalog.named_definitions(entry.expanded).items():
            out.setdefault(name, definition)
    return out


class _Source:
    """Builds the Python source of one model's conversions (names of the objects they use)."""

    def __init__(self, named: Mapping[str, Any]) -> None:
        self.named = named
        self.ns: dict[str, Any] = {}

    def bind(self, obj: Any) -> str:
        name = f"_o{len(self.ns)}"
        self.ns[name] = obj
        return name

    def _type(self, avro: Any) -> Any:
        if isinstance(avro, str):
            return self.named.get(avro, avro)
        if isinstance(avro, dict) and not isinstance(avro["type"], str | dict | list):
            return avro
        if isinstance(avro, dict) and avro["type"] not in _COMPLEX:
            return self._type(avro["type"])  # {"type": "string", "logicalType": ...}
        return avro

    def expr(self, avro: Any, v: str, to_wire: bool, depth: int = 0) -> str:
        """Expression converting the value ``v`` of Avro type ``avro``: model -> wire
        (``to_wire``) or wire -> model."""
        t = self._type(avro)
        x = f"x{depth}"
        if isinstance(t, list):
            return self._nullable(t, v, lambda b: self.expr(b, v, to_wire, depth))
        if not isinstance(t, dict):
            return v  # a primitive
        kind = t["type"]
        if kind == "enum":
            enum = self.bind(_enum(t["name"]))
            return f"{enum}({v}).value" if to_wire else f"{enum}({v})"
        if kind == "record":
            model = self.bind(_model(t["name"]))
            return f"{v}.to_dict()" if to_wire else f"{model}.from_dict({v})"
        if kind == "array":
            inner = self.expr(t["items"], x, to_wire, depth + 1)
            seq = "list" if to_wire else "tuple"
            return f"{seq}({v})" if inner == x else f"{seq}([{inner} for {x} in {v}])"
        if kind == "map":
            inner = self.expr(t["values"], x, to_wire, depth + 1)
            return f"dict({v})" if inner == x else f"{{k: {inner} for k, {x} in {v}.items()}}"
        return v

    @staticmethod
    def _nullable(union: list[Any], v: str, conv: Callable[[Any], str]) -> str:
        branches = [b for b in union if b != "null"]
        if len(branches) != 1:
            raise TypeError(f"unions other than [null, T] are not supported: {union!r}")
        inner = conv(branches[0])
        return inner if inner == v else f"(None if {v} is None else {inner})"


_COMPLEX = frozenset({"record", "enum", "array", "map", "fixed", "error"})


def _model(name: str) -> type[Any]:
    """The registered model of a record, else its generated dataclass."""
    if name in _CLASSES:
        return _CLASSES[name]
    from heimdall.schemas import events_generated

    return getattr(events_generated, f"{name.rsplit('.', 1)[-1]}Fields")


def _enum(name: str) -> type[Any]:
    from heimdall.schemas.events_generated import ENUMS

    return ENUMS[name]


@dataclass(frozen=True, slots=True)
class _Conversion:
    """The compiled ``to_dict(model)`` and ``from_dict(cls, wire dict)`` of one model class."""

    to_dict: Callable[[Any], dict[str, Any]]
    from_dict: Callable[[type[Any], Mapping[str, Any]], Any]


_CONVERSIONS: dict[type, _Conversion] = {}


def _conversion(cls: type[WireModel]) -> _Conversion:
    """Compile the conversions of ``cls`` from its Avro record (once per class).

    Like :mod:`dataclasses`, the functions are Python source built from the field list and
    compiled, so that a model converts as fast as a hand-written ``to_dict`` would.
    """
    conv = _CONVERSIONS.get(cls)
    if conv is not None:
        return conv
    named = named_types()
    record = named.get(cls.SCHEMA)
    if record is None:
        raise TypeError(f"{cls.__name__}: no Avro record {cls.SCHEMA!r} in the current schemas")
    src = _Source(named)
    out, into = [], []
    for f in record["fields"]:
        name = f["name"]
        custom = cls.WIRE_FIELDS.get(name)
        if custom is not None:
            out.append(f"{name!r}: {src.bind(custom.to_wire)}(self)")
            into.append(f"{custom.attr}={src.bind(custom.from_wire)}(d)")
        else:
            out.append(f"{name!r}: {src.expr(f['type'], f'self.{name}', True)}")
            into.append(f"{name}={src.expr(f['type'], f'd[{name!r}]', False)}")
    code = (
        "def to_dict(self):\n    return {" + ", ".join(out) + "}\n"
        "def from_dict(cls, d):\n    return cls(" + ", ".join(into) + ")\n"
    )
    exec(compile(code, f"<wire conversion of {cls.SCHEMA}>", "exec"), src.ns)
    conv = _CONVERSIONS[cls] = _Conversion(src.ns["to_dict"], src.ns["from_dict"])
    return conv


class WireModel:
    """Base of the event models: ``to_dict``/``from_dict`` derived from the Avro record.

    ``SCHEMA`` is the record's full name; ``WIRE_FIELDS`` the fields that convert otherwise
    than by their Avro type (see the module doc).
    """

    __slots__ = ()

    SCHEMA: ClassVar[str]
    WIRE_FIELDS: ClassVar[Mapping[str, FieldConverter]] = {}

    def to_dict(self) -> dict[str, Any]:
        """The wire dict the serde writes (every field of the record)."""
        return _conversion(type(self)).to_dict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Self:
        """The model of a complete wire dict (as decoded)."""
        return cast(Self, _conversion(cls).from_dict(cls, d))
