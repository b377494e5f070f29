"""The generated event dataclasses are up to date with the ``.avsc`` files, and the models
built on them follow the schema (names, types, defaults) with no hand-written conversion."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest

from heimdall.schemas import codegen, events_generated, models, wire
from heimdall.schemas.models import MODELS

ALL_MODELS = sorted(
    {c.SCHEMA: c for c in (*MODELS.values(), models.Position, models.ObservationMember,
                           models.TdoaPair, models.Band)}.values(),
    key=lambda c: c.__name__,
)  # fmt: skip


def test_the_generated_module_is_up_to_date() -> None:
    """Fails after a ``.avsc`` change until ``make schemas`` is run."""
    assert codegen.target().read_text(encoding="utf-8") == codegen.generate(), (
        "schemas/events_generated.py is out of date with the .avsc files: run `make schemas`"
    )
    assert codegen.main(["--check"]) == 0


def test_every_avro_record_has_a_model_and_every_enum_a_strenum() -> None:
    named = wire.named_types()
    records = {n for n, t in named.items() if t["type"] == "record"}
    assert {c.SCHEMA for c in ALL_MODELS} == records
    assert set(events_generated.ENUMS) == {n for n, t in named.items() if t["type"] == "enum"}
    for name, enum in events_generated.ENUMS.items():
        assert [e.value for e in enum] == named[name]["symbols"]


@pytest.mark.parametrize("cls", ALL_MODELS, ids=lambda c: c.__name__)
def test_models_are_their_generated_fields_plus_behaviour(cls: type) -> None:
    base = getattr(events_generated, f"{cls.__name__}Fields")
    assert issubclass(cls, base)
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in dataclasses.fields(base)]
    assert cls.__slots__ == ()  # type: ignore[attr-defined]
    record = wire.named_types()[cls.SCHEMA]  # type: ignore[attr-defined]
    overrides = {w: p for (r, w), p in codegen.OVERRIDES.items() if r == cls.SCHEMA}  # type: ignore[attr-defined]
    # a field that is not the Avro field is declared for the generator and converted by the model
    assert set(cls.WIRE_FIELDS) == set(overrides)  # type: ignore[attr-defined]
    for name, conv in cls.WIRE_FIELDS.items():  # type: ignore[attr-defined]
        assert conv.attr == overrides[name].name
    want = [codegen.OVERRIDES.get((cls.SCHEMA, f["name"]), f) for f in record["fields"]]  # type: ignore[attr-defined]
    names = [w.name if isinstance(w, codegen.PyField) else w["name"] for w in want]
    assert [f.name for f in dataclasses.fields(cls)] == names


def test_defaults_come_from_the_avro_defaults() -> None:
    loc = models.Localization(
        observation_id="0190c5b8-0000-7000-8000-000000000001", channel_id="c", t_ns=1,
        position=models.Position(lat_deg=1.0, lon_deg=2.0), cov_ee_m2=1.0, cov_en_m2=0.0,
        cov_nn_m2=1.0, method="m", n_receivers=3,
    )  # fmt: skip
    assert loc.model_version is None and loc.converged is True and loc.params == {}
    assert loc.position.alt_m == 0.0 and loc.published_ns == 0
    assert len(loc.event_id) == 36  # a fresh UUIDv7 when the schema has no default
    other = dataclasses.replace(loc, event_id=loc.event_id)
    assert other == loc


def test_nested_values_are_built_as_the_models() -> None:
    from tests.unit.schemas.examples import examples

    obs = next(e for e in examples() if isinstance(e, models.Observation))
    back = models.Observation.from_dict(obs.to_dict())
    assert type(back.members[0]) is models.ObservationMember
    assert type(back.members[0].position) is models.Position
    assert type(back.members[0].clock) is models.ClockSource
    assert isinstance(back.tdoa_pairs, tuple) and type(back.tdoa_pairs[0]) is models.TdoaPair
    back.validate()


def test_a_plain_string_stands_for_an_enum_symbol_on_the_way_out() -> None:
    from tests.unit.schemas.examples import iq_chunk

    chunk = dataclasses.replace(iq_chunk(), clock="ntp")  # type: ignore[arg-type]
    d = chunk.to_dict()
    assert d["clock"] == "ntp" and type(d["clock"]) is str


def test_array_fields_keep_numpy_equality() -> None:
    from tests.unit.schemas.examples import audio_chunk, waterfall_row

    row = waterfall_row()
    assert row == dataclasses.replace(row, values=row.values.copy())
    assert row != dataclasses.replace(row, values=row.values + 1)
    audio = audio_chunk()
    back = models.AudioChunk.from_dict(audio.to_dict())
    assert back == audio and back.samples.dtype == np.int16
    assert models.IqChunk.__hash__ is None


def test_generated_annotations_resolve() -> None:
    hints = typing.get_type_hints(models.Measurement, vars(models))
    assert hints["position"] is models.Position and hints["clock"] is models.ClockSource
    assert hints["psd_dbm_hz"] == tuple[float, ...]
