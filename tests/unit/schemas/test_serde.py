"""Serde: both framings, older writers, and every way a payload can be wrong."""

from __future__ import annotations

import copy
import io
import json
import random
import uuid
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest
from confluent_kafka.schema_registry import Schema
from fastavro.utils import generate_many

from heimdall.core.errors import InvalidEventError, SchemaError
from heimdall.schemas import catalog
from heimdall.schemas.models import IqChunk, Measurement, SampleFormat, Truth
from heimdall.schemas.serde import Serde, subject_for

from .examples import examples, iq_chunk

EXAMPLES = examples()


def ids(obj: Any) -> str:
    return type(obj).__name__


def mock_url() -> str:
    return f"mock://{uuid.uuid4().hex}"


def avro_body(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record)
    return buf.getvalue()


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("obj", EXAMPLES, ids=ids)
def test_single_object_round_trip(obj: Any) -> None:
    serde = Serde()
    data = serde.encode(obj)
    entry = catalog.current()[obj.SCHEMA]
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == entry.fingerprint
    assert data[2:10] == entry.fingerprint_int.to_bytes(8, "little")
    assert serde.decode(data, expect=type(obj)) == obj
    name, record = serde.decode_dict(data)
    assert name == obj.SCHEMA
    assert type(obj).from_dict(record) == obj


@pytest.mark.parametrize("obj", EXAMPLES, ids=ids)
def test_confluent_round_trip(obj: Any) -> None:
    url = mock_url()
    producer, consumer = Serde(url), Serde(url)
    data = producer.encode(obj)
    schema_id = producer.schema_id(obj.SCHEMA)
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == schema_id
    assert producer.decode(data) == obj
    assert consumer.decode(data, expect=type(obj)) == obj  # fetches the id from the registry
    assert consumer.decode(producer.encode_dict(obj.SCHEMA, obj.to_dict())) == obj


def test_registry_subject_is_the_record_full_name() -> None:
    url = mock_url()
    serde = Serde(url)
    serde.encode(EXAMPLES[0])
    client = serde._registry
    assert client.get_subjects() == ["heimdall.v1.IqChunk"]
    assert subject_for("heimdall.v1.IqChunk") == "heimdall.v1.IqChunk"
    registered = client.get_latest_version("heimdall.v1.IqChunk")
    entry = catalog.current()["heimdall.v1.IqChunk"]
    assert json.loads(registered.schema.schema_str) == entry.expanded


def test_registry_serde_reads_single_object_and_back() -> None:
    obj = EXAMPLES[2]
    assert Serde(mock_url()).decode(Serde().encode(obj)) == obj
    url = mock_url()
    assert Serde(url).decode(Serde(url).encode(obj)) == obj


def test_lookup_only_registry_needs_the_schema_registered() -> None:
    url = mock_url()
    with pytest.raises(SchemaError, match=r"^cannot look up heimdall.v1.Truth under subject"):
        Serde(url, {"auto.register.schemas": False}).encode(EXAMPLES[5])
    Serde(url).encode(EXAMPLES[5])
    lookup = Serde(url, {"auto.register.schemas": False})
    assert lookup.decode(lookup.encode(EXAMPLES[5])) == EXAMPLES[5]


def test_model_types_are_checked() -> None:
    serde = Serde()
    data = serde.encode(EXAMPLES[0])
    assert isinstance(serde.decode(data, expect=IqChunk), IqChunk)
    with pytest.raises(
        SchemaError, match=r"^expected heimdall.v1.Measurement, got heimdall.v1.IqChunk$"
    ):
        serde.decode(data, expect=Measurement)


# ------------------------------------------------------------- older writers


def _old_iq_chunk(tmp_path: Path) -> catalog.Catalog:
    """A v0 in which IqChunk lacked gain_db, source and published_ns, and Position alt_m."""
    src = json.loads((Path(catalog.__file__).parent / "avsc" / "iq_chunk.avsc").read_text())
    src["fields"] = [
        f for f in src["fields"] if f["name"] not in {"gain_db", "source", "published_ns"}
    ]
    pos = next(f for f in src["fields"] if f["name"] == "position")["type"]
    pos["fields"] = [f for f in pos["fields"] if f["name"] != "alt_m"]
    (tmp_path / "iq_chunk.avsc").write_text(json.dumps(src))
    return catalog.load_catalog(tmp_path, "v0")


def test_decode_data_written_with_an_older_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    v0 = _old_iq_chunk(tmp_path)
    real = catalog.released()
    monkeypatch.setattr(catalog, "released", lambda: {"v0": v0, **real})
    old = v0["heimdall.v1.IqChunk"]
    assert old.fingerprint != catalog.current()["heimdall.v1.IqChunk"].fingerprint

    chunk = iq_chunk(SampleFormat.CF32)
    data = b"\xc3\x01" + old.fingerprint + avro_body(old.wire, chunk.to_dict())
    decoded = Serde().decode(data, expect=IqChunk)
    assert decoded.gain_db == 0.0 and decoded.source == "unknown" and decoded.published_ns == 0
    assert decoded.position.alt_m == 0.0
    np.testing.assert_array_equal(decoded.iq, chunk.iq)
    assert decoded.event_id == chunk.event_id and decoded.seq == chunk.seq


def test_decode_older_schema_from_the_registry(tmp_path: Path) -> None:
    old = _old_iq_chunk(tmp_path)["heimdall.v1.IqChunk"]
    url = mock_url()
    writer = Serde(url)
    old_id = writer._registry.register_schema("legacy-iq", Schema(old.expanded_json, "AVRO"))
    chunk = iq_chunk(SampleFormat.CI16)
    data = b"\x00" + old_id.to_bytes(4, "big") + avro_body(old.wire, chunk.to_dict())
    decoded = Serde(url).decode(data, expect=IqChunk)
    assert decoded.source == "unknown" and decoded.position.alt_m == 0.0
    np.testing.assert_array_equal(decoded.iq, chunk.iq)


@pytest.mark.parametrize("version", sorted(catalog.released()))
def test_every_released_version_decodes(version: str) -> None:
    serde = Serde()
    current = catalog.current()
    state = random.getstate()
    random.seed(5)  # fastavro's generator draws from the global random state
    try:
        generated = {
            old.name: list(generate_many(old.parsed, 20)) for old in catalog.released()[version]
        }
    finally:
        random.setstate(state)
    for old in catalog.released()[version]:
        records = generated[old.name]
        for record in records:
            data = b"\xc3\x01" + old.fingerprint + avro_body(old.parsed, record)
            name, decoded = serde.decode_dict(data)
            assert name == old.name
            assert list(decoded) == [f["name"] for f in current[old.name].expanded["fields"]]
    for obj in EXAMPLES:
        if obj.SCHEMA not in catalog.released()[version]:
            continue  # a record added after this version was released
        old = catalog.released()[version][obj.SCHEMA]
        data = b"\xc3\x01" + old.fingerprint + avro_body(old.wire, obj.to_dict())
        assert serde.decode(data) == obj


# ----------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def truth_bytes() -> bytes:
    return Serde().encode(EXAMPLES[5])


@pytest.mark.parametrize(
    "payload,message",
    [
        (None, r"^payload is None \(a tombstone\?\), not bytes$"),
        ("text", r"^payload is str, not bytes$"),
        (b"", r"^empty payload$"),
        (b'{"json": 1}', r"^unknown magic byte 0x7b \(expected 0xc3 0x01 single-object or 0x00"),
        (b"\xc3\x01\x00\x00", r"^truncated single-object header: 4 bytes, need 10$"),
        (b"\xc3\x02" + bytes(8), r"^bad single-object marker 0xc3 0x02 \(expected 0xc3 0x01\)$"),
        (
            b"\xc3\x01" + (0x0123456789ABCDEF).to_bytes(8, "little") + b"\x00",
            r"^unknown schema fingerprint 0x0123456789abcdef \(not a current or released",
        ),
        (b"\x00\x00\x01", r"^truncated Confluent header: 3 bytes, need 5$"),
        (
            b"\x00\x00\x00\x00\x07\x02",
            r"^Confluent-framed payload \(schema id 7\) but no schema registry is configured",
        ),
    ],
)
def test_bad_payloads(payload: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message) as err:
        Serde().decode(payload)
    assert "\n" not in str(err.value)


def test_truncated_body(truth_bytes: bytes) -> None:
    with pytest.raises(SchemaError, match=r"^truncated heimdall.v1.Truth body \(current schema\)"):
        Serde().decode(truth_bytes[:-7])
    with pytest.raises(SchemaError, match=r"^truncated heimdall.v1.Truth body"):
        Serde().decode(truth_bytes[:10])


def test_corrupt_body(truth_bytes: bytes) -> None:
    corrupt = truth_bytes[:10] + b"\x01" + truth_bytes[11:]  # event_id length -1
    with pytest.raises(SchemaError, match=r"^corrupt heimdall.v1.Truth body"):
        Serde().decode(corrupt)


def test_trailing_bytes(truth_bytes: bytes) -> None:
    with pytest.raises(
        SchemaError, match=r"^2 byte\(s\) left over after the heimdall.v1.Truth body$"
    ):
        Serde().decode(truth_bytes + b"\x00\x00")


def test_unknown_schema_id() -> None:
    with pytest.raises(SchemaError, match=r"^cannot fetch schema id 999 at mock://"):
        Serde(mock_url()).decode(b"\x00" + (999).to_bytes(4, "big") + b"\x00")


def test_registry_schema_heimdall_does_not_know() -> None:
    url = mock_url()
    serde = Serde(url)
    foreign = {"type": "record", "name": "Foreign", "namespace": "x", "fields": []}
    sid = serde._registry.register_schema("x.Foreign", Schema(json.dumps(foreign), "AVRO"))
    with pytest.raises(
        SchemaError, match=rf"^schema id {sid} at {url} is x.Foreign, which Heimdall"
    ):
        serde.decode(b"\x00" + sid.to_bytes(4, "big"))


def test_iq_bytes_not_whole_pairs_is_an_invalid_event() -> None:
    serde = Serde()
    d = iq_chunk(SampleFormat.CI16).to_dict()
    d["samples"] = d["samples"][:-2]
    data = serde.encode_dict("heimdall.v1.IqChunk", d)
    assert serde.decode_dict(data)[1]["samples"] == d["samples"]
    with pytest.raises(InvalidEventError, match=r"^samples: 9598 bytes is not a whole number"):
        serde.decode(data)


def test_encode_errors() -> None:
    serde = Serde()
    with pytest.raises(SchemaError, match=r"^cannot encode: unknown schema 'heimdall.v1.Nope'$"):
        serde.encode_dict("heimdall.v1.Nope", {})
    with pytest.raises(SchemaError, match=r"^cannot encode a dict: not a Heimdall event$"):
        serde.encode({"a": 1})
    record = EXAMPLES[5].to_dict()
    del record["freq_hz"]
    with pytest.raises(SchemaError, match=r"^cannot encode heimdall.v1.Truth: .*freq_hz"):
        serde.encode_dict("heimdall.v1.Truth", record)
    record = {**EXAMPLES[5].to_dict(), "t_ns": "soon"}
    with pytest.raises(SchemaError, match=r"^cannot encode heimdall.v1.Truth: .*t_ns"):
        serde.encode_dict("heimdall.v1.Truth", record)


def test_unknown_registry_schema_without_registry_configured() -> None:
    with pytest.raises(SchemaError, match=r"^no schema registry configured"):
        Serde().schema_id("heimdall.v1.IqChunk")


def test_decode_accepts_bytearray_and_memoryview(truth_bytes: bytes) -> None:
    serde = Serde()
    assert serde.decode(bytearray(truth_bytes), expect=Truth) == EXAMPLES[5]
    assert serde.decode(memoryview(truth_bytes), expect=Truth) == EXAMPLES[5]


def test_encode_does_not_mutate_input() -> None:
    record = EXAMPLES[4].to_dict()
    before = copy.deepcopy(record)
    Serde().encode_dict("heimdall.v1.Localization", record)
    assert record == before
