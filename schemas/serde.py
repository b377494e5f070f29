"""Avro encode/decode of Heimdall events in both wire framings.

Writing
    Without a Schema Registry: Avro single-object encoding, ``C3 01`` + the 8-byte
    little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form +
    the Avro binary body. With a registry: Confluent framing, ``00`` + the 4-byte big-endian
    schema id + the body. The schema is registered (self-contained, see
    :mod:`heimdall.schemas.catalog`) under the subject ``<record full name>``, e.g.
    ``heimdall.v1.IqChunk`` -- Confluent's RecordNameStrategy -- so one subject per event
    type whatever the topic is called (topic names are configurable).
    ``registry_conf={"auto.register.schemas": False}`` only looks the schema up.

Reading
    Both framings, whatever the configuration. A single-object fingerprint is looked up
    among the current schemas and every released version (``schemas/released/``), and data
    written with an older schema is resolved into the current one (Avro schema
    resolution). A Confluent schema id needs a registry; its schema is fetched once.

Every failure is a :class:`~heimdall.core.errors.SchemaError` with a one-line message,
except an event whose content is unusable after decoding (e.g. IQ bytes that are not a
whole number of pairs), which :meth:`Serde.decode` reports as
:class:`~heimdall.core.errors.InvalidEventError`.
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form
from fastavro.validation import validate

from heimdall.core.errors import InvalidEventError, SchemaError
from heimdall.core.settings import mask_url
from heimdall.schemas import catalog
from heimdall.schemas.catalog import SchemaEntry
from heimdall.schemas.models import MODELS

if TYPE_CHECKING:
    from heimdall.core.settings import HeimdallSettings

__all__ = ["CONFLUENT_MAGIC", "SINGLE_OBJECT_MAGIC", "Payload", "Serde", "subject_for"]

SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"
_SO_HEADER = 10  # C3 01 + 8-byte fingerprint
_CF_HEADER = 5  # 00 + 4-byte schema id
_NEGATIVE_LENGTH = re.compile(r"Expected -\d+ bytes")  # fastavro's EOFError for a bad length

T = TypeVar("T")
Payload = bytes | bytearray | memoryview

# mock:// registries are per client object in confluent-kafka; share one per URL so that
# the producers and consumers of a test see the same registry, like a real one.
_MOCK_CLIENTS: dict[str, Any] = {}
_MOCK_LOCK = threading.Lock()


def subject_for(name: str) -> str:
    """Schema Registry subject of a record: its full name (RecordNameStrategy)."""
    return name


@dataclass(frozen=True, slots=True)
class _Reader:
    """How to read one writer schema: fastavro writer and reader schemas (None = same)."""

    name: str
    writer: dict[str, Any]
    reader: dict[str, Any] | None
    origin: str


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _registry_client(conf: dict[str, Any]) -> Any:
    try:
        from confluent_kafka.schema_registry import SchemaRegistryClient
    except ImportError as exc:  # pragma: no cover - confluent-kafka is a dependency
        raise SchemaError(f"a schema registry needs confluent-kafka: {exc}") from exc
    url = str(conf["url"])
    try:
        if url.startswith("mock://"):
            with _MOCK_LOCK:
                if url not in _MOCK_CLIENTS:
                    _MOCK_CLIENTS[url] = SchemaRegistryClient.new_client(conf)
                return _MOCK_CLIENTS[url]
        return SchemaRegistryClient(conf)
    except Exception as exc:
        raise SchemaError(f"schema registry {url}: bad configuration: {_one_line(exc)}") from exc


class Serde:
    """Encode and decode Heimdall events.

    Parameters
    ----------
    registry_url : str, optional
        Schema Registry URL (``http(s)://…``, or ``mock://name`` in tests). Unset: write
        single-object encoding.
    registry_conf : dict, optional
        Extra ``SchemaRegistryClient`` settings (``basic.auth.user.info``, TLS, ...), and
        ``auto.register.schemas`` (default True).
    """

    @classmethod
    def from_settings(cls, settings: HeimdallSettings) -> Serde:
        """The serde of ``SCHEMA_REGISTRY_URL``, with ``SCHEMA_REGISTRY_BASIC_AUTH`` if set."""
        return cls(registry_conf=settings.schema_registry.client_conf())

    def __init__(
        self, registry_url: str | None = None, registry_conf: dict[str, Any] | None = None
    ) -> None:
        conf = dict(registry_conf or {})
        self._auto_register = bool(conf.pop("auto.register.schemas", True))
        url = registry_url or conf.get("url")
        self._registry: Any = None
        if url:
            conf["url"] = url
            self._registry = _registry_client(conf)
        # for messages: a password written in the URL is masked
        self.registry_url: str | None = mask_url(url) or None

        self._current = catalog.current()
        self._entries: dict[str, SchemaEntry] = dict(self._current.entries)
        self._so_headers = {
            n: SINGLE_OBJECT_MAGIC + e.fingerprint for n, e in self._entries.items()
        }
        self._by_fingerprint: dict[bytes, _Reader] = {}
        self._add_versions()
        self._cf_headers: dict[str, bytes] = {}
        self._by_id: dict[int, _Reader] = {}
        self._lock = threading.Lock()

    def _add_versions(self) -> None:
        for entry in self._current:
            self._by_fingerprint[entry.fingerprint] = _Reader(
                entry.name, entry.wire, None, "current"
            )
        for version, cat in catalog.released().items():
            for old in cat:
                if old.fingerprint in self._by_fingerprint or old.name not in self._entries:
                    continue
                reader = self._entries[old.name].wire
                self._by_fingerprint[old.fingerprint] = _Reader(old.name, old.wire, reader, version)

    # ------------------------------------------------------------------ encode

    def encode(self, obj: Any) -> bytes:
        """Model object (``IqChunk``, ``Measurement``, ...) -> wire bytes."""
        try:
            name = obj.SCHEMA
            to_dict = obj.to_dict
        except AttributeError:
            raise SchemaError(
                f"cannot encode a {type(obj).__name__}: not a Heimdall event"
            ) from None
        return self.encode_dict(name, to_dict())

    def encode_dict(self, schema_name: str, record: Mapping[str, Any]) -> bytes:
        """Wire dict of the current schema ``schema_name`` -> wire bytes."""
        entry = self._entries.get(schema_name)
        if entry is None:
            raise SchemaError(f"cannot encode: unknown schema {schema_name!r}")
        header = self._header(entry)
        buf = io.BytesIO()
        buf.write(header)
        try:
            schemaless_writer(buf, entry.wire, record)
        except Exception as exc:
            raise SchemaError(
                f"cannot encode {schema_name}: {self._explain(entry, record, exc)}"
            ) from exc
        return buf.getvalue()

    @staticmethod
    def _explain(entry: SchemaEntry, record: Mapping[str, Any], exc: Exception) -> str:
        """One line naming the offending field (validation runs on the failure path only)."""
        try:
            validate(record, entry.wire, raise_errors=True)
        except Exception as vexc:
            errors = getattr(vexc, "errors", None)
            if errors:
                return "; ".join(" ".join(str(e).split()) for e in errors)
        return _one_line(exc)

    def _header(self, entry: SchemaEntry) -> bytes:
        if self._registry is None:
            return self._so_headers[entry.name]
        header = self._cf_headers.get(entry.name)
        if header is None:
            schema_id = self.schema_id(entry.name)
            header = CONFLUENT_MAGIC + schema_id.to_bytes(4, "big")
            self._cf_headers[entry.name] = header
        return header

    def schema_id(self, schema_name: str) -> int:
        """Registry id of the current schema ``schema_name`` (registered on first use)."""
        if self._registry is None:
            raise SchemaError("no schema registry configured: schema ids need SCHEMA_REGISTRY_URL")
        entry = self._entries.get(schema_name)
        if entry is None:
            raise SchemaError(f"unknown schema {schema_name!r}")
        from confluent_kafka.schema_registry import Schema

        schema = Schema(entry.expanded_json, "AVRO")
        subject = subject_for(entry.name)
        try:
            if self._auto_register:
                schema_id = int(self._registry.register_schema(subject, schema))
            else:
                schema_id = int(self._registry.lookup_schema(subject, schema).schema_id)
        except Exception as exc:
            verb = "register" if self._auto_register else "look up"
            raise SchemaError(
                f"cannot {verb} {entry.name} under subject {subject!r} at {self.registry_url}: "
                f"{_one_line(exc)}"
            ) from exc
        with self._lock:
            self._by_id.setdefault(schema_id, _Reader(entry.name, entry.wire, None, "registry"))
        return schema_id

    # ------------------------------------------------------------------ decode

    @overload
    def decode(self, data: Payload, expect: type[T]) -> T: ...
    @overload
    def decode(self, data: Payload, expect: None = None) -> Any: ...

    def decode(self, data: Payload, expect: type[Any] | None = None) -> Any:
        """Wire bytes -> model object; with ``expect``, a :class:`SchemaError` if another type."""
        name, record = self.decode_dict(data)
        cls = MODELS.get(name)
        if cls is None:
            raise SchemaError(f"decoded a {name}, which has no model class")
        if expect is not None and cls is not expect:
            raise SchemaError(f"expected {getattr(expect, 'SCHEMA', expect.__name__)}, got {name}")
        try:
            return cls.from_dict(record)
        except InvalidEventError:
            raise
        except Exception as exc:
            raise SchemaError(f"cannot build {cls.__name__} from {name}: {_one_line(exc)}") from exc

    def decode_dict(self, data: Payload) -> tuple[str, dict[str, Any]]:
        """Wire bytes (either framing) -> (record full name, wire dict of the current schema)."""
        if not isinstance(data, bytes | bytearray | memoryview):
            what = "None (a tombstone?)" if data is None else type(data).__name__
            raise SchemaError(f"payload is {what}, not bytes")
        if not data:
            raise SchemaError("empty payload")
        first = data[0]
        if first == 0xC3:
            if len(data) < _SO_HEADER:
                raise SchemaError(
                    f"truncated single-object header: {len(data)} bytes, need {_SO_HEADER}"
                )
            if data[1] != 0x01:
                raise SchemaError(
                    f"bad single-object marker 0xc3 0x{data[1]:02x} (expected 0xc3 0x01)"
                )
            fp = bytes(data[2:_SO_HEADER])
            rd = self._by_fingerprint.get(fp)
            if rd is None:
                value = int.from_bytes(fp, "little")
                raise SchemaError(
                    f"unknown schema fingerprint 0x{value:016x} (not a current or released schema)"
                )
            offset = _SO_HEADER
        elif first == 0x00:
            if len(data) < _CF_HEADER:
                raise SchemaError(
                    f"truncated Confluent header: {len(data)} bytes, need {_CF_HEADER}"
                )
            schema_id = int.from_bytes(data[1:_CF_HEADER], "big")
            rd = self._by_id.get(schema_id) or self._fetch(schema_id)
            offset = _CF_HEADER
        else:
            raise SchemaError(
                f"unknown magic byte 0x{first:02x} (expected 0xc3 0x01 single-object "
                "or 0x00 Confluent framing)"
            )
        buf = io.BytesIO(data)
        buf.seek(offset)
        try:
            record = schemaless_reader(buf, rd.writer, rd.reader)
        except EOFError as exc:
            what = "corrupt" if _NEGATIVE_LENGTH.search(str(exc)) else "truncated"
            raise SchemaError(
                f"{what} {rd.name} body ({rd.origin} schema): {_one_line(exc)}"
            ) from exc
        except Exception as exc:
            raise SchemaError(
                f"corrupt {rd.name} body ({rd.origin} schema): "
                f"{type(exc).__name__}: {_one_line(exc)}"
            ) from exc
        if buf.tell() != len(data):
            raise SchemaError(
                f"{len(data) - buf.tell()} byte(s) left over after the {rd.name} body"
            )
        if not isinstance(record, dict):
            raise SchemaError(f"{rd.name} did not decode to a record")
        return rd.name, record

    def _fetch(self, schema_id: int) -> _Reader:
        """Reader for a registry schema id (fetched once, then cached)."""
        if self._registry is None:
            raise SchemaError(
                f"Confluent-framed payload (schema id {schema_id}) but no schema registry "
                "is configured to look the id up"
            )
        where = f"schema id {schema_id} at {self.registry_url}"
        try:
            schema = self._registry.get_schema(schema_id)
        except Exception as exc:
            raise SchemaError(f"cannot fetch {where}: {_one_line(exc)}") from exc
        if (schema.schema_type or "AVRO") != "AVRO":
            raise SchemaError(f"{where} is a {schema.schema_type} schema, not AVRO")
        try:
            named: dict[str, Any] = {}
            self._parse_references(schema.references or [], named, set())
            raw = catalog.strip_uuid(json.loads(schema.schema_str))
            writer: Any = parse_schema(raw, named_schemas=named)
        except SchemaError:
            raise
        except Exception as exc:
            raise SchemaError(f"{where} is not a usable Avro schema: {_one_line(exc)}") from exc
        if not isinstance(writer, dict) or writer.get("type") not in ("record", "error"):
            raise SchemaError(f"{where} is not a record schema")
        name = str(writer["name"])
        entry = self._entries.get(name)
        if entry is None:
            raise SchemaError(f"{where} is {name}, which Heimdall does not know")
        same = to_parsing_canonical_form(catalog.expand(writer)) == entry.canonical
        rd = _Reader(entry.name, writer, None if same else entry.wire, "registry")
        with self._lock:
            self._by_id[schema_id] = rd
        return rd

    def _parse_references(self, refs: list[Any], named: dict[str, Any], seen: set[str]) -> None:
        for ref in refs:
            key = f"{ref.subject}/{ref.version}"
            if key in seen:
                continue
            seen.add(key)
            registered = self._registry.get_version(ref.subject, ref.version)
            self._parse_references(registered.schema.references or [], named, seen)
            parse_schema(
                catalog.strip_uuid(json.loads(registered.schema.schema_str)),
                named_schemas=named,
            )
