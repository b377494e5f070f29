"""Event models: wire dict round trip, IQ sample encodings, validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from heimdall.core.errors import InvalidEventError
from heimdall.schemas import catalog
from heimdall.schemas.models import (
    MODELS,
    ClockSource,
    IqChunk,
    Position,
    ReceiverState,
    SampleFormat,
    decode_samples,
    encode_samples,
)

from .examples import examples, iq_chunk


@pytest.mark.parametrize("obj", examples(), ids=lambda o: type(o).__name__)
def test_dict_round_trip(obj: object) -> None:
    d = obj.to_dict()  # type: ignore[attr-defined]
    assert type(obj).from_dict(d) == obj  # type: ignore[attr-defined]


@pytest.mark.parametrize("obj", examples(), ids=lambda o: type(o).__name__)
def test_field_names_are_the_avro_field_names(obj: object) -> None:
    entry = catalog.current()[obj.SCHEMA]  # type: ignore[attr-defined]
    avro = [f["name"] for f in entry.expanded["fields"]]
    assert sorted(obj.to_dict()) == sorted(avro)  # type: ignore[attr-defined]
    model_fields = {f.name for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
    if isinstance(obj, IqChunk):  # the one model whose array is not named as on the wire
        assert model_fields == set(avro) - {"samples"} | {"iq"}
    else:
        assert model_fields == set(avro)


def test_every_role_schema_has_a_model() -> None:
    assert set(MODELS) == set(catalog.TOPIC_SCHEMAS.values())


def test_enum_values_match_the_avsc() -> None:
    named = catalog.current()["heimdall.v1.IqChunk"].parsed["__named_schemas"]
    assert [c.value for c in ClockSource] == named["heimdall.v1.ClockSource"]["symbols"]
    assert [s.value for s in SampleFormat] == named["heimdall.v1.SampleFormat"]["symbols"]
    status = catalog.current()["heimdall.v1.ReceiverStatus"].parsed["__named_schemas"]
    assert [s.value for s in ReceiverState] == status["heimdall.v1.ReceiverState"]["symbols"]


def test_cf32_is_exact_and_little_endian() -> None:
    x = np.array([0.5 - 0.25j, -1.0 + 2.0j], dtype=np.complex64)
    data = encode_samples(x, SampleFormat.CF32)
    assert data == np.array([0.5, -0.25, -1.0, 2.0], dtype="<f4").tobytes()
    np.testing.assert_array_equal(decode_samples(data, SampleFormat.CF32), x)


def test_ci16_definition() -> None:
    x = np.array([0.5 - 0.25j, 1.0 + (-1.0) * 1j, 2.0 - 3.0j, 1e-5 + 0j], dtype=np.complex64)
    data = encode_samples(x, SampleFormat.CI16)
    wire = np.frombuffer(data, dtype="<i2").tolist()
    # round(x * 32768), clipped to int16: 1.0 -> 32767, -1.0 -> -32768, 1e-5 -> 0
    assert wire == [16384, -8192, 32767, -32768, 32767, -32768, 0, 0]


def test_ci16_quantisation_error_bound() -> None:
    rng = np.random.default_rng(3)
    n = 100_000
    x = rng.uniform(-1.0, 32767 / 32768, n) + 1j * rng.uniform(-1.0, 32767 / 32768, n)
    x = x.astype(np.complex64)
    y = decode_samples(encode_samples(x, SampleFormat.CI16), SampleFormat.CI16)
    assert y.dtype == np.complex64
    err = np.maximum(np.abs(y.real - x.real), np.abs(y.imag - x.imag))
    bound = 0.5 / 32768
    assert err.max() <= bound * (1 + 1e-4)  # half an LSB (float32 rounding of x aside)
    assert err.max() > 0.9 * bound  # and the bound is tight: it really is quantised


def test_ci16_refuses_nan() -> None:
    x = np.array([np.nan + 0j], dtype=np.complex64)
    with pytest.raises(InvalidEventError, match=r"^samples: NaN"):
        encode_samples(x, SampleFormat.CI16)


@pytest.mark.parametrize("fmt,size", [(SampleFormat.CI16, 4), (SampleFormat.CF32, 8)])
def test_byte_length_not_whole_pairs(fmt: SampleFormat, size: int) -> None:
    d = iq_chunk(fmt).to_dict()
    d["samples"] = d["samples"][:-1]
    with pytest.raises(InvalidEventError) as err:
        IqChunk.from_dict(d)
    msg = str(err.value)
    assert msg.startswith("samples:") and f"({size} bytes each)" in msg and "\n" not in msg


def test_iq_equality_compares_samples() -> None:
    a = iq_chunk()
    b = dataclasses.replace(a, iq=a.iq.copy())
    assert a == b
    c = dataclasses.replace(a, iq=a.iq * 2)
    assert a != c


def test_validate_accepts_a_good_chunk() -> None:
    iq_chunk().validate(max_samples=2400)


def _bad(**changes: object) -> IqChunk:
    return dataclasses.replace(iq_chunk(), **changes)  # type: ignore[arg-type]


nan_iq = iq_chunk().iq.copy()
nan_iq[[3, 10]] = np.nan
inf_iq = iq_chunk().iq.copy()
inf_iq[5] = complex(0, np.inf)


@pytest.mark.parametrize(
    "chunk,max_samples,message",
    [
        (_bad(iq=nan_iq), 4096, "samples: 2 of 2400 samples are NaN or infinite"),
        (_bad(iq=inf_iq), 4096, "samples: 1 of 2400 samples are NaN or infinite"),
        (_bad(iq=np.zeros(0, np.complex64)), 4096, "samples: no samples"),
        (iq_chunk(), 2399, "samples: 2400 samples exceed the maximum of 2399"),
        (_bad(iq=np.zeros((2, 2), np.complex64)), 4096, "samples: expected a 1-D array"),
        (_bad(sample_rate_hz=0.0), 4096, "sample_rate_hz: 0.0 is not in (0, 100e6]"),
        (_bad(sample_rate_hz=200e6), 4096, "sample_rate_hz: 200000000.0 is not in (0, 100e6]"),
        (_bad(sample_rate_hz=float("nan")), 4096, "sample_rate_hz: nan is not in"),
        (_bad(center_freq_hz=-1.0), 4096, "center_freq_hz: -1.0 is not in (0, 300e9]"),
        (_bad(center_freq_hz=301e9), 4096, "center_freq_hz: 301000000000.0 is not in"),
        (
            _bad(position=Position(lat_deg=90.5, lon_deg=0.0)),
            4096,
            "position.lat_deg: 90.5 is not in [-90, 90]",
        ),
        (
            _bad(position=Position(lat_deg=0.0, lon_deg=-180.1)),
            4096,
            "position.lon_deg: -180.1 is not in [-180, 180]",
        ),
    ],
)
def test_validate_errors(chunk: IqChunk, max_samples: int, message: str) -> None:
    with pytest.raises(InvalidEventError) as err:
        chunk.validate(max_samples=max_samples)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_models_are_frozen() -> None:
    chunk = iq_chunk()
    with pytest.raises(dataclasses.FrozenInstanceError):
        chunk.seq = 1  # type: ignore[misc]


def test_event_ids_are_uuid7_by_default() -> None:
    a, b = iq_chunk(), iq_chunk()
    assert a.event_id != b.event_id
    assert a.event_id[14] == "7"
