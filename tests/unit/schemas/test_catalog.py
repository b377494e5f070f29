"""Catalog: the .avsc files load, resolve across files, and fingerprint per the Avro spec."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from heimdall.core.errors import SchemaError
from heimdall.core.settings import TopicNames
from heimdall.schemas import catalog

AVSC = Path(catalog.__file__).parent / "avsc"
#: The records of the released version v1 (frozen: schemas/released/v1 never changes).
RELEASED_V1 = {
    "heimdall.v1.IqChunk",
    "heimdall.v1.Measurement",
    "heimdall.v1.Observation",
    "heimdall.v1.Localization",
    "heimdall.v1.Truth",
    "heimdall.v1.ReceiverStatus",
    "heimdall.v1.ModelPointer",
    "heimdall.v1.WaterfallRow",
    "heimdall.v1.AudioChunk",
}
#: Every current record (all released in v1 so far).
RECORDS = set(RELEASED_V1)


def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO as written in the Avro specification (an independent implementation)."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for b in data:
        fp = (fp >> 8) ^ table[(fp ^ b) & 0xFF]
    return fp


def test_spec_test_vector() -> None:
    # Avro's schema-tests.txt: "int" -> 8247732601305521295
    assert crc64_avro(b'"int"') == 8247732601305521295


def test_current_schemas() -> None:
    cat = catalog.current()
    assert set(cat.names()) == RECORDS
    assert {e.file for e in cat} == {p.name for p in AVSC.glob("*.avsc")} - {"dead_letter.avsc"}


def test_topic_roles() -> None:
    roles = set(TopicNames.model_fields) - {"dlq"}
    assert set(catalog.TOPIC_SCHEMAS) == roles
    for role in roles:
        assert catalog.schema_for_role(role).name == catalog.TOPIC_SCHEMAS[role]
    with pytest.raises(SchemaError, match=r"^topic role 'dlq' has no Avro schema"):
        catalog.schema_for_role("dlq")


@pytest.mark.parametrize("name", sorted(RECORDS))
def test_entry(name: str) -> None:
    entry = catalog.current()[name]
    assert entry.fingerprint_int == crc64_avro(entry.canonical.encode())
    assert entry.fingerprint_hex == f"0x{entry.fingerprint_int:016x}"
    # The expanded JSON stands alone, defines each named type once, and has the same form.
    expanded = json.loads(entry.expanded_json)
    assert expanded == entry.expanded
    assert "__" not in entry.expanded_json
    assert to_parsing_canonical_form(parse_schema(expanded, named_schemas={})) == entry.canonical
    defined = [n for n in _named_definitions(expanded)]
    assert len(defined) == len(set(defined))
    # The uuid-free wire schema writes the same bytes.
    wire = to_parsing_canonical_form(catalog.expand(entry.wire))
    assert wire == entry.canonical
    assert '"logicalType":"uuid"' not in json.dumps(
        catalog.expand(entry.wire), separators=(",", ":")
    )


def _named_definitions(node: object) -> list[str]:
    out: list[str] = []
    if isinstance(node, list):
        for n in node:
            out += _named_definitions(n)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed"):
            out.append(node["name"])
        for key in ("fields", "items", "values", "type"):
            if key in node and not isinstance(node[key], str):
                out += _named_definitions(node[key])
    return out


def test_cross_file_references_resolve() -> None:
    loc = catalog.current()["heimdall.v1.Localization"].expanded
    pos = next(f for f in loc["fields"] if f["name"] == "position")["type"]
    assert pos["name"] == "heimdall.v1.Position"
    assert [f["name"] for f in pos["fields"]] == ["lat_deg", "lon_deg", "alt_m"]


def test_released_versions_load() -> None:
    released = catalog.released()
    assert "v1" in released
    assert set(released["v1"].names()) == RELEASED_V1


def test_versions_have_separate_names(tmp_path: Path) -> None:
    # A directory that uses Position without defining it must not borrow it from another.
    (tmp_path / "localization.avsc").write_text((AVSC / "localization.avsc").read_text())
    with pytest.raises(SchemaError, match=r"unresolved named types \(localization.avsc: unknown"):
        catalog.load_catalog(tmp_path, "broken")


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"no .avsc files"):
        catalog.load_catalog(tmp_path)
    (tmp_path / "bad.avsc").write_text("{not json")
    with pytest.raises(SchemaError, match=r"bad.avsc: cannot read"):
        catalog.load_catalog(tmp_path)
    (tmp_path / "bad.avsc").write_text('{"type": "record", "name": "X", "fields": [{"name": "a"}]}')
    with pytest.raises(SchemaError, match=r"bad.avsc: invalid Avro schema"):
        catalog.load_catalog(tmp_path)


def test_unknown_name() -> None:
    with pytest.raises(
        SchemaError, match=r"^no record schema 'heimdall.v1.Nope' in version current$"
    ):
        catalog.current()["heimdall.v1.Nope"]
