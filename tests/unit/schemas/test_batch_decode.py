"""BatchDecoder: the same wire dicts as Serde.decode_dict, float arrays read by numpy."""

from __future__ import annotations

import io
import struct
import uuid
from typing import Any

import numpy as np
import pytest
from fastavro import parse_schema, schemaless_writer

from heimdall.core.errors import SchemaError
from heimdall.schemas import catalog
from heimdall.schemas.batch_decode import BatchDecoder, RecordReader, float_array_fields
from heimdall.schemas.serde import Serde
from tests.unit.schemas.examples import examples

EXAMPLES = examples()


def ids(obj: Any) -> str:
    return type(obj).__name__


def zigzag(n: int) -> bytes:
    """Avro ``long``: zig-zag, then a little-endian base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7F
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def same(decoded: dict[str, Any], reference: dict[str, Any], arrays: dict[str, Any]) -> None:
    """``decoded`` equals Serde's dict, its float arrays being numpy arrays of the dtype."""
    assert decoded.keys() == reference.keys()
    for k, v in reference.items():
        if k in arrays:
            assert isinstance(decoded[k], np.ndarray) and decoded[k].dtype == arrays[k]
            assert decoded[k].tolist() == v, k
        else:
            assert decoded[k] == v, k


@pytest.mark.parametrize("obj", EXAMPLES, ids=ids)
def test_single_object_payloads_decode_like_serde(obj: Any) -> None:
    serde = Serde()
    data = serde.encode(obj)
    name, decoded = BatchDecoder(serde).decode_dict(data)
    ref_name, reference = serde.decode_dict(data)
    assert name == ref_name == obj.SCHEMA
    arrays = float_array_fields(catalog.current()[obj.SCHEMA])
    same(decoded, reference, arrays)
    # that was the fast path: the reader of the current schema gives the same
    same(RecordReader(catalog.current()[obj.SCHEMA]).read(data, 10), reference, arrays)


@pytest.mark.parametrize("obj", EXAMPLES, ids=ids)
def test_confluent_payloads_go_through_serde(obj: Any) -> None:
    url = f"mock://{uuid.uuid4().hex}"
    data = Serde(url).encode(obj)
    assert data[0] == 0
    serde = Serde(url)
    name, decoded = BatchDecoder(serde).decode_dict(data)
    assert name == obj.SCHEMA
    same(decoded, serde.decode_dict(data)[1], float_array_fields(catalog.current()[obj.SCHEMA]))


def test_the_measurement_psd_is_the_array_read_by_numpy() -> None:
    entry = catalog.current()["heimdall.v1.Measurement"]
    assert float_array_fields(entry) == {"psd_dbm_hz": np.dtype("<f4")}
    assert RecordReader(entry).float_arrays == {"psd_dbm_hz": np.dtype("<f4")}
    truth = catalog.current()["heimdall.v1.Truth"]
    assert float_array_fields(truth) == {"velocity_enu_mps": np.dtype("<f8")}


def measurement_parts() -> tuple[bytes, bytes]:
    """A single-object Measurement split around its PSD: (header + fields before, fields after)."""
    serde = Serde()
    obj = next(o for o in EXAMPLES if o.SCHEMA == "heimdall.v1.Measurement")
    record = dict(obj.to_dict(), psd_dbm_hz=[])
    entry = catalog.current()["heimdall.v1.Measurement"]
    fields = entry.expanded["fields"]
    tail_at = [f["name"] for f in fields].index("psd_dbm_hz") + 1
    tail_schema = parse_schema(
        {"type": "record", "name": "Tail", "fields": fields[tail_at:]}, named_schemas={}
    )
    buf = io.BytesIO()
    schemaless_writer(buf, tail_schema, record)
    tail = buf.getvalue()
    empty = serde.encode_dict(entry.name, record)
    assert empty.endswith(b"\x00" + tail)  # the empty array is one 0 count, then the tail
    return empty[: -len(tail) - 1], tail


def measurement_payload(psd_encoding: bytes) -> bytes:
    head, tail = measurement_parts()
    return head + psd_encoding + tail


def test_arrays_in_several_blocks_and_blocks_with_a_byte_size() -> None:
    """Avro writers may split an array into blocks; a negative count carries the block size."""
    a, b, c = [-170.0, -160.5], [-150.25, -140.0, -130.5], [-120.0]
    psd = (
        zigzag(-len(a)) + zigzag(4 * len(a)) + struct.pack("<2f", *a)
        + zigzag(len(b)) + struct.pack("<3f", *b)
        + zigzag(len(c)) + struct.pack("<f", *c)
        + zigzag(0)
    )  # fmt: skip
    data = measurement_payload(psd)
    serde = Serde()
    _, decoded = BatchDecoder(serde).decode_dict(data)
    assert decoded["psd_dbm_hz"].tolist() == a + b + c
    same(decoded, serde.decode_dict(data)[1], {"psd_dbm_hz": np.dtype("<f4")})


def test_an_empty_array_is_an_empty_numpy_array() -> None:
    data = measurement_payload(zigzag(0))
    _, decoded = BatchDecoder(Serde()).decode_dict(data)
    assert decoded["psd_dbm_hz"].dtype == np.float32 and decoded["psd_dbm_hz"].size == 0


@pytest.mark.parametrize(
    ("psd", "message"),
    [
        (zigzag(3) + struct.pack("<2f", 1.0, 2.0), r"array 'psd_dbm_hz' needs 12 bytes"),
        (b"\x80", r"array 'psd_dbm_hz' ends inside a block header"),
    ],
)
def test_truncated_arrays(psd: bytes, message: str) -> None:
    head, _ = measurement_parts()
    decoder = BatchDecoder(Serde())
    with pytest.raises(SchemaError, match=r"^truncated heimdall\.v1\.Measurement body \(current"):
        decoder.decode_dict(head + psd)
    with pytest.raises(SchemaError, match=message):
        decoder.decode_dict(head + psd)


def test_bad_bodies_are_schema_errors_like_serde() -> None:
    serde = Serde()
    obj = next(o for o in EXAMPLES if o.SCHEMA == "heimdall.v1.Measurement")
    data = serde.encode(obj)
    decoder = BatchDecoder(serde)
    with pytest.raises(SchemaError, match=r"^truncated heimdall\.v1\.Measurement body"):
        decoder.decode_dict(data[:40])
    with pytest.raises(SchemaError, match=r"^2 byte\(s\) left over after the heimdall"):
        decoder.decode_dict(data + b"\x00\x00")
    with pytest.raises(SchemaError, match="unknown magic byte 0x7f"):
        decoder.decode_dict(b"\x7fnot avro")


def test_decode_many_keeps_the_order_and_returns_the_errors() -> None:
    serde = Serde()
    payloads = [serde.encode(o) for o in EXAMPLES]
    got = BatchDecoder(serde).decode_many([payloads[0], b"\x7fx", None, *payloads[1:]])
    assert [g[0] for g in got if not isinstance(g, SchemaError)] == [o.SCHEMA for o in EXAMPLES]
    assert isinstance(got[1], SchemaError) and "magic byte" in str(got[1])
    assert isinstance(got[2], SchemaError) and "tombstone" in str(got[2])


def test_another_decoder_is_used_for_every_payload() -> None:
    """Only a Serde is known to decode like the fast path; any other decoder is asked."""

    class Fake:
        def decode_dict(self, data: bytes) -> tuple[str, dict[str, Any]]:
            return "heimdall.v1.Truth", {"velocity_enu_mps": [1.0, 2.0], "seen": len(data)}

    data = Serde().encode(next(o for o in EXAMPLES if o.SCHEMA == "heimdall.v1.Truth"))
    name, decoded = BatchDecoder(Fake()).decode_dict(data)
    assert name == "heimdall.v1.Truth" and decoded["seen"] == len(data)
    assert decoded["velocity_enu_mps"].dtype == np.float64
